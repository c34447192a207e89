"""Secrets at rest: camera URLs with passwords are stored encrypted (Fernet), never in clear.

The key comes from POSEPIPE_SECRET_KEY, or from `<data_dir>/secret.key`, created with mode
0600 on first use. Every process that opens cameras (the ingester) needs the same key: set
POSEPIPE_SECRET_KEY when services run on several hosts.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken


class SecretKeyError(RuntimeError):
    """The stored secret cannot be decrypted with this key (another key encrypted it)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, secret_key: str | None, data_dir: Path) -> SecretBox:
        if secret_key:
            return cls(secret_key.encode())
        path = data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise SecretKeyError(
                "cannot decrypt a stored camera URL: POSEPIPE_SECRET_KEY (or secret.key) differs from the "
                "key that stored it"
            ) from exc


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***; safe to store, log and return."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))

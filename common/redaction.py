"""Redaction: passwords in URL-looking text replaced before it is logged, stored or shown."""

from __future__ import annotations

import re

# user:password@ in any URL-looking text; the password is replaced, never logged.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")


def mask_secrets(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)

"""API tokens in the database: create, list, revoke, and check a presented token.

A token is 32 random bytes (`pp_` + URL-safe base64), shown once when created; only its
SHA-256 is stored. A fast hash is enough here, unlike for passwords: the token has 256 bits
of entropy, so nobody can guess one from its hash, and a plain hash lets the check be one
indexed lookup. Does not know about HTTP (posepipe.api.auth does).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.db import rows_affected
from storage.models import ApiToken, TokenScope, utcnow

TOKEN_PREFIX = "pp_"
TOKEN_RANDOM_BYTES = 32
# Characters of the token kept in clear to tell tokens apart: "pp_" + 5 of its 43 random ones.
SHOWN_PREFIX_CHARS = 8
# last_used_at is written at most this often per token: a write per request would make every
# read a database write.
LAST_USED_RESOLUTION = timedelta(seconds=60)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class TokenError(ValueError):
    """A token request that cannot be carried out (bad or duplicate name, unknown token)."""


@dataclass(frozen=True)
class CreatedToken:
    """A new token: `token` exists only in this value, never in the database."""

    id: int
    name: str
    scope: TokenScope
    token: str


@dataclass(frozen=True)
class TokenIdentity:
    """Who presented a valid token."""

    id: int
    name: str
    scope: TokenScope

    def allows(self, needed: TokenScope) -> bool:
        return self.scope is TokenScope.ADMIN or needed is TokenScope.READ


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, scope: TokenScope) -> CreatedToken:
    if not NAME_PATTERN.match(name):
        raise TokenError(f"token name {name!r}: use letters, digits, '.', '_', '@' or '-' (up to 64)")
    active = session.scalar(select(ApiToken.id).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)))
    if active is not None:
        raise TokenError(f"an active token named {name!r} exists already (revoke it first)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)
    row = ApiToken(name=name, scope=scope, token_sha256=hash_token(token), prefix=token[:SHOWN_PREFIX_CHARS])
    session.add(row)
    session.flush()
    return CreatedToken(row.id, name, scope, token)


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, name: str) -> int:
    """Revoke every active token named `name`; returns how many."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if not rows_affected(result):
        raise TokenError(f"no active token named {name!r}")
    return rows_affected(result)


def verify_token(session: Session, token: str, now: datetime | None = None) -> TokenIdentity | None:
    """The identity of a valid, unrevoked token; None for anything else."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = now or utcnow()
    last = row.last_used_at
    if last is not None and last.tzinfo is None:  # SQLite hands datetimes back without a zone
        last = last.replace(tzinfo=now.tzinfo)
    if last is None or now - last >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return TokenIdentity(row.id, row.name, row.scope)

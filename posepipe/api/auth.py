"""Who may call the API: a bearer token (storage.tokens) on every route but health, with two scopes.

`require_read` admits any valid token; `require_admin` only admin tokens (every write).
A missing, unknown or revoked token gets 401 with `WWW-Authenticate: Bearer`; a read token
on a write route gets 403. The token is checked once per request (FastAPI caches the
`identity` dependency) and never logged.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from posepipe.api.state import ApiState, get_api
from storage.models import TokenScope
from storage.tokens import TokenIdentity, verify_token

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token made with `posepipe token create NAME --scope read|admin`.",
)


def identity(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    api: Annotated[ApiState, Depends(get_api)],
) -> TokenIdentity:
    if credentials is None or not credentials.credentials:
        raise _unauthorised("missing bearer token: send `Authorization: Bearer <token>`")
    with api.db.session() as session:
        found = verify_token(session, credentials.credentials)
    if found is None:
        raise _unauthorised("invalid or revoked token")
    return found


def require_read(who: Annotated[TokenIdentity, Depends(identity)]) -> TokenIdentity:
    return who


def require_admin(who: Annotated[TokenIdentity, Depends(identity)]) -> TokenIdentity:
    if not who.allows(TokenScope.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"token {who.name!r} is read-only; this needs admin")
    return who


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


# Scope names for the OpenAPI document (see app.custom_openapi).
SCOPE_OF = {require_read: TokenScope.READ.value, require_admin: TokenScope.ADMIN.value}

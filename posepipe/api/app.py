"""The FastAPI application: routes, the web UI's static files, security headers, CORS, and the lifespan.

The lifespan opens the services, starts the upload analyser (posepipe.api.analyses) and a
webhook dispatcher thread, and closes them on shutdown. Nothing is opened when the app is
only built (the OpenAPI document and docs/api.md are made without a database).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from posepipe import __version__
from posepipe.api import cameras, events, live, system, videos, webhooks
from posepipe.api.analyses import UploadAnalyses
from posepipe.api.auth import SCOPE_OF
from posepipe.api.state import UPLOADS_DIR, ApiState
from posepipe.services import Services
from posepipe.settings import Settings
from posepipe.views import SCHEMA_VERSION
from posepipe.webhook_dispatcher import WebhookDispatcher

log = logging.getLogger(__name__)

ROUTERS = (system.router, videos.router, events.router, cameras.router, live.router, webhooks.router)

WEBUI_DIR = Path(__file__).resolve().parent.parent / "webui"
OPENAPI_URL = "/api/openapi.json"
DESCRIPTION = """\
Query posepipe like a product: upload videos, manage cameras, browse events with snapshots
and clips, export poses and joint angles, and subscribe webhooks to new events.

Every route except `GET /api/health` (and this document and the web UI's static files) needs
`Authorization: Bearer <token>`; make tokens with `posepipe token create NAME --scope read|admin`.
`read` tokens may call every GET; writes need `admin` (the `x-scope` of each operation).
Times named `*_s` are seconds from the start of the video or camera session; `*_at` are
UTC wall-clock times.

An event, a video and a camera have one JSON shape each (`EventView`, `VideoView`,
`CameraView` below), the same in the API, the CLI's `--json`, webhooks, the event stream and
MQTT. Their version, `schema_version` (now 2), is in the `X-Posepipe-Schema` header of every
answer, in each page of items and in `GET /api/health`; README.md ("JSON schema") says what
changed from version 1.
"""
# The bundled UI is same-origin; its pictures and clips are fetched with the token and shown
# from blob: URLs. Nothing else may be loaded or framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]
# Every answer says which version of the JSON shapes it speaks, bare lists and streams included.
SCHEMA_HEADER = (b"x-posepipe-schema", str(SCHEMA_VERSION).encode())
RESPONSE_HEADERS = [*SECURITY_HEADERS, SCHEMA_HEADER]


class SecurityHeaders:
    """Adds RESPONSE_HEADERS (SECURITY_HEADERS and the schema version) to every HTTP response
    (pure ASGI: request bodies stream through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in RESPONSE_HEADERS if header[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.open(settings)
        analyses = UploadAnalyses(services, settings.data_dir / UPLOADS_DIR)
        state = ApiState(settings, services, analyses)
        state.make_dirs()
        app.state.api = state
        dispatcher = WebhookDispatcher.for_services(services)
        analyses.start()
        dispatcher.start()
        log.info(
            "API ready (%s queue, database %r)", "embedded" if services.embedded else "Redis", services.db
        )
        try:
            yield
        finally:
            dispatcher.stop()
            analyses.stop()
            services.close()

    app = FastAPI(
        title="posepipe",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL,
        lifespan=lifespan,
    )
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(SecurityHeaders)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=[
                "X-Frame-Time-S",
                "X-Frame-Seq",
                "X-Live-State",
                "X-Background",
                "X-Codec",
                "Content-Disposition",
            ],
            max_age=600,
        )
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.mount("/", StaticFiles(directory=WEBUI_DIR, html=True), name="webui")
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with each operation's token scope as `x-scope` (read, admin or none)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for route in (r for router in ROUTERS for r in router.routes):
        if not isinstance(route, APIRoute):
            continue
        scope = _scope(route)
        for method in route.methods or ():
            operation = document["paths"][route.path_format].get(method.lower())
            if operation is None:
                continue
            operation["x-scope"] = scope or "none"
            if scope is None:
                operation.pop("security", None)
            else:
                operation["security"] = [{"token": []}]
                operation.setdefault("responses", {}).setdefault(
                    "401", {"description": "Missing, invalid or revoked token."}
                )
                if scope == "admin":
                    operation["responses"].setdefault("403", {"description": "A read-only token."})
    app.openapi_schema = document
    return document


def _scope(route: APIRoute) -> str | None:
    found: set[str] = set()
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if dependant.call in SCOPE_OF:
            found.add(SCOPE_OF[dependant.call])
        pending.extend(dependant.dependencies)
    if "admin" in found:
        return "admin"
    return "read" if found else None

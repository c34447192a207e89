"""System routes: health (no token), who the caller is, and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from posepipe import __version__
from posepipe.api import metrics
from posepipe.api.auth import require_read
from posepipe.api.schemas import HealthOut, MeOut
from posepipe.api.state import ApiState, get_api
from storage.tokens import TokenIdentity

router = APIRouter(tags=["system"])


@router.get(
    "/api/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database or Redis does not answer."}},
    summary="Liveness and dependencies (no token needed)",
)
def health(response: Response, api: Annotated[ApiState, Depends(get_api)]) -> HealthOut:
    try:
        with api.db.session() as session:
            session.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError as exc:
        database = f"error: {type(exc).__name__}"
    redis = "ok"
    if not api.services.embedded:
        try:
            api.services.redis.ping()
        except RedisError as exc:
            redis = f"error: {type(exc).__name__}"
    healthy = database == "ok" and redis == "ok"
    if not healthy:
        response.status_code = 503
    return HealthOut(
        status="ok" if healthy else "degraded",
        version=__version__,
        database=database,
        queue="embedded" if api.services.embedded else "redis",
        redis=redis,
    )


@router.get("/api/me", response_model=MeOut, summary="The calling token's name and scope")
def me(who: Annotated[TokenIdentity, Depends(require_read)]) -> MeOut:
    return MeOut(name=who.name, scope=who.scope)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_read)],
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
    summary="Prometheus metrics (cameras, queues, workers, inference, webhooks)",
)
async def prometheus_metrics(api: Annotated[ApiState, Depends(get_api)]) -> Response:
    body = await run_in_threadpool(metrics.render, api)
    return Response(body, media_type=metrics.CONTENT_TYPE)

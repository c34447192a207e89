"""Webhook routes (admin): subscriptions and their delivery history (sent by posepipe.webhook_dispatcher)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from sqlalchemy.orm import Session

from posepipe.api.auth import require_admin
from posepipe.api.common import NOT_FOUND, Offset, RowId
from posepipe.api.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)
from posepipe.api.state import ApiState, get_api
from posepipe.views import utc
from storage import webhooks
from storage.models import DeliveryState, Webhook, WebhookDelivery

# Subscriptions hold URLs with tokens and signing secrets: even reading them is admin-only.
router = APIRouter(prefix="/api", tags=["webhooks"], dependencies=[Depends(require_admin)])


def webhook_view(hook: Webhook, counts: dict[DeliveryState, int]) -> WebhookOut:
    return WebhookOut(
        id=hook.id,
        name=hook.name,
        url_masked=hook.url_masked,
        event_types=hook.event_types,  # type: ignore[arg-type]
        enabled=hook.enabled,
        created_at=utc(hook.created_at),
        updated_at=utc(hook.updated_at),
        deliveries=counts,
    )


def _counts(session: Session, hook_id: int) -> dict[DeliveryState, int]:
    return webhooks.delivery_counts(session, hook_id)


def delivery_view(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        webhook_id=row.webhook_id,
        event_id=row.event_id,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=utc(row.next_attempt_at),
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=utc(row.delivered_at),
        created_at=utc(row.created_at),
    )


@router.get("/webhooks", response_model=list[WebhookOut], summary="Webhook subscriptions")
def list_webhooks(api: Annotated[ApiState, Depends(get_api)]) -> list[WebhookOut]:
    with api.db.session() as session:
        return [webhook_view(h, _counts(session, h.id)) for h in webhooks.list_webhooks(session)]


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses={409: {"description": "A webhook with that name exists."}, 422: {"description": "Bad URL."}},
    summary="Subscribe a URL to new events",
)
def create_webhook(body: WebhookIn, api: Annotated[ApiState, Depends(get_api)]) -> WebhookCreated:
    """Every new event of `event_types` is POSTed to `url` as JSON, signed: header
    `X-Posepipe-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Posepipe-Timestamp>." + body)>`.
    Failed deliveries are retried with capped exponential backoff. The secret is returned
    only in this response."""
    with api.db.session() as session:
        if any(h.name == body.name for h in webhooks.list_webhooks(session)):
            raise HTTPException(409, f"a webhook named {body.name!r} exists already")
        try:
            hook, secret = webhooks.create_webhook(
                session,
                api.secret_box(),
                body.name,
                body.url,
                [t.value for t in body.event_types],
                body.secret,
                body.enabled,
            )
        except webhooks.WebhookError as exc:
            raise HTTPException(422, str(exc)) from exc
        view = webhook_view(hook, {state: 0 for state in DeliveryState})
    return WebhookCreated(**view.model_dump(), secret=secret)


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, responses=NOT_FOUND, summary="One webhook")
def get_webhook(webhook_id: RowId, api: Annotated[ApiState, Depends(get_api)]) -> WebhookOut:
    with api.db.session() as session:
        try:
            hook = webhooks.get_webhook(session, webhook_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        return webhook_view(hook, _counts(session, hook.id))


@router.patch(
    "/webhooks/{webhook_id}", response_model=WebhookOut, responses=NOT_FOUND, summary="Change a webhook"
)
def update_webhook(
    webhook_id: RowId, body: WebhookPatch, api: Annotated[ApiState, Depends(get_api)]
) -> WebhookOut:
    with api.db.session() as session:
        try:
            hook = webhooks.update_webhook(
                session,
                api.secret_box(),
                webhook_id,
                url=body.url,
                event_types=None if body.event_types is None else [t.value for t in body.event_types],
                secret=body.secret,
                enabled=body.enabled,
            )
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        except webhooks.WebhookError as exc:
            raise HTTPException(422, str(exc)) from exc
        return webhook_view(hook, _counts(session, hook.id))


@router.delete("/webhooks/{webhook_id}", status_code=204, responses=NOT_FOUND, summary="Delete a webhook")
def delete_webhook(webhook_id: RowId, api: Annotated[ApiState, Depends(get_api)]) -> Response:
    with api.db.session() as session:
        try:
            webhooks.delete_webhook(session, webhook_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    responses=NOT_FOUND,
    summary="A webhook's deliveries, newest first",
)
def list_deliveries(
    webhook_id: RowId,
    *,
    state: DeliveryState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    api: Annotated[ApiState, Depends(get_api)],
) -> DeliveryPage:
    with api.db.session() as session:
        try:
            webhooks.get_webhook(session, webhook_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        total, rows = webhooks.list_deliveries(session, webhook_id, state, limit, offset)
        return DeliveryPage(total=total, limit=limit, offset=offset, items=[delivery_view(r) for r in rows])

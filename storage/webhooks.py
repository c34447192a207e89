"""Webhook subscriptions and their delivery outbox in the database.

`queue_deliveries` is called by storage.events.add_events, in the transaction that stores
the events, so an event is never stored without its deliveries nor a delivery queued for
an event that was rolled back. Dispatchers (posepipe.webhook_dispatcher) find due rows, claim one with
a compare-and-set on `claim_version` (safe with any number of processes, on SQLite and
PostgreSQL alike), POST it outside any transaction, and record the outcome only if their
claim still holds. Owns the rows; not the event document a receiver gets (posepipe.views),
HTTP, signing or timing.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from analytics.events import EventType
from storage.db import rows_affected
from storage.models import (
    DeliveryState,
    EventRow,
    Source,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from storage.secret_box import SecretBox, mask_url

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SECRET_PREFIX = "whsec_"
SECRET_RANDOM_BYTES = 32
# A receiver's own secret must be long enough that HMAC signatures mean something.
MIN_SECRET_CHARS = 16
# Rows looked at per claim round; a dispatcher claims one of them (the others stay for the
# next round or for other dispatchers).
CLAIM_CANDIDATES = 8


class WebhookError(ValueError):
    """A webhook request that cannot be carried out (bad URL, name or event type; unknown id)."""


def display_url(url: str) -> str:
    """The URL as shown anywhere: password masked and query string hidden (it often holds a token)."""
    masked = urlsplit(mask_url(url))
    return urlunsplit((masked.scheme, masked.netloc, masked.path, "***" if masked.query else "", ""))


def _check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"webhook URL {display_url(url)!r}: use http:// or https:// with a host")
    return url.strip()


def _check_types(types: Sequence[str]) -> list[str]:
    known = {t.value for t in EventType}
    unknown = sorted(set(types) - known)
    if unknown:
        raise WebhookError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return sorted(set(types))


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_RANDOM_BYTES)


def create_webhook(
    session: Session,
    box: SecretBox,
    name: str,
    url: str,
    event_types: Sequence[str],
    secret: str | None = None,
    enabled: bool = True,
) -> tuple[Webhook, str]:
    """The new subscription and its signing secret (generated unless given; shown once)."""
    if not NAME_PATTERN.match(name):
        raise WebhookError(f"webhook name {name!r}: use letters, digits, '.', '_' or '-' (up to 64)")
    if session.scalar(select(Webhook.id).where(Webhook.name == name)) is not None:
        raise WebhookError(f"a webhook named {name!r} exists already")
    if secret is not None and len(secret) < MIN_SECRET_CHARS:
        raise WebhookError(f"a webhook secret needs at least {MIN_SECRET_CHARS} characters")
    url = _check_url(url)
    secret = secret or new_secret()
    hook = Webhook(
        name=name,
        url_masked=display_url(url),
        url_secret=box.encrypt(url),
        signing_secret=box.encrypt(secret),
        event_types=_check_types(event_types),
        enabled=enabled,
    )
    session.add(hook)
    session.flush()
    return hook, secret


def update_webhook(
    session: Session,
    box: SecretBox,
    webhook_id: int,
    *,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    secret: str | None = None,
    enabled: bool | None = None,
) -> Webhook:
    hook = get_webhook(session, webhook_id)
    if url is not None:
        url = _check_url(url)
        hook.url_masked, hook.url_secret = display_url(url), box.encrypt(url)
    if event_types is not None:
        hook.event_types = _check_types(event_types)
    if secret is not None:
        if len(secret) < MIN_SECRET_CHARS:
            raise WebhookError(f"a webhook secret needs at least {MIN_SECRET_CHARS} characters")
        hook.signing_secret = box.encrypt(secret)
    if enabled is not None:
        hook.enabled = enabled
    hook.updated_at = utcnow()
    session.flush()
    return hook


def get_webhook(session: Session, webhook_id: int) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise LookupError(f"no webhook {webhook_id}")
    return hook


def list_webhooks(session: Session) -> list[Webhook]:
    return list(session.scalars(select(Webhook).order_by(Webhook.id)))


def delete_webhook(session: Session, webhook_id: int) -> None:
    """Delete the subscription and its deliveries (pending ones are never sent)."""
    session.delete(get_webhook(session, webhook_id))


def queue_deliveries(session: Session, rows: Sequence[EventRow]) -> int:
    """The outbox insert: a pending delivery per (enabled webhook, new event of its types)."""
    if not rows:
        return 0
    hooks = session.execute(select(Webhook.id, Webhook.event_types).where(Webhook.enabled.is_(True))).all()
    if not hooks:
        return 0
    session.flush()  # the events' ids
    now = utcnow()
    values = [
        {
            "webhook_id": hook_id,
            "event_id": row.id,
            "state": DeliveryState.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "claim_version": 0,
            "created_at": now,
            "updated_at": now,
        }
        for hook_id, types in hooks
        for row in rows
        if not types or row.type in types
    ]
    if values:
        session.execute(insert(WebhookDelivery), values)
    return len(values)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this dispatcher holds until `claimed_until`; `attempt` counts from 1."""

    id: int
    claim_version: int
    attempt: int
    webhook_id: int
    webhook_name: str
    url_secret: bytes
    signing_secret: bytes
    # The event and its source as loaded with the claim (detached; the dispatcher makes their view).
    event: EventRow
    source: Source


def _due(now: datetime) -> Any:
    return or_(
        and_(WebhookDelivery.state == DeliveryState.PENDING, WebhookDelivery.next_attempt_at <= now),
        and_(WebhookDelivery.state == DeliveryState.DELIVERING, WebhookDelivery.claimed_until < now),
    )


def due_candidates(session: Session, now: datetime) -> list[tuple[int, int]]:
    """(id, claim_version) of deliveries that may be claimed now, oldest due first."""
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.claim_version)
        .where(_due(now))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(CLAIM_CANDIDATES)
    )
    return [(row[0], row[1]) for row in rows]


def try_claim(
    session: Session, delivery_id: int, version: int, worker: str, lease_s: float, now: datetime
) -> ClaimedDelivery | None:
    """Compare-and-set: claim the row if nobody changed it since `version` was read.

    Run it as the first statement of its own transaction: on SQLite the UPDATE then takes
    the write lock (waiting its turn) instead of failing on a stale read snapshot.
    """
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.claim_version == version, _due(now))
        .values(
            state=DeliveryState.DELIVERING,
            claim_version=version + 1,
            claimed_by=worker[:128],
            claimed_until=now + timedelta(seconds=lease_s),
            attempts=WebhookDelivery.attempts + 1,
            updated_at=now,
        )
    )
    if rows_affected(result) != 1:
        return None
    delivery, hook, event, source = session.execute(
        select(WebhookDelivery, Webhook, EventRow, Source)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .join(EventRow, EventRow.id == WebhookDelivery.event_id)
        .join(Source, Source.id == EventRow.source_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one()
    return ClaimedDelivery(
        id=delivery.id,
        claim_version=version + 1,
        attempt=delivery.attempts,
        webhook_id=hook.id,
        webhook_name=hook.name,
        url_secret=hook.url_secret,
        signing_secret=hook.signing_secret,
        event=event,
        source=source,
    )


@dataclass(frozen=True)
class AttemptOutcome:
    """What one POST gave: the receiver's status code, or why there was none."""

    status_code: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def record_attempt(
    session: Session,
    claim: ClaimedDelivery,
    outcome: AttemptOutcome,
    retry_at: datetime | None,
    now: datetime,
) -> DeliveryState | None:
    """Store the outcome; `retry_at` None means no attempt is left. Returns the new state, or
    None if the claim had expired and another dispatcher took the row meanwhile."""
    if outcome.delivered:
        state = DeliveryState.DELIVERED
    else:
        state = DeliveryState.PENDING if retry_at is not None else DeliveryState.FAILED
    error = None
    if not outcome.delivered:
        error = outcome.error or f"HTTP {outcome.status_code}"
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claim.id,
            WebhookDelivery.claim_version == claim.claim_version,
            WebhookDelivery.state == DeliveryState.DELIVERING,
        )
        .values(
            state=state,
            last_status_code=outcome.status_code,
            last_error=None if error is None else error[:2000],
            delivered_at=now if outcome.delivered else None,
            next_attempt_at=retry_at if retry_at is not None else now,
            claimed_by=None,
            claimed_until=None,
            updated_at=now,
        )
    )
    return state if rows_affected(result) == 1 else None


def list_deliveries(
    session: Session, webhook_id: int, state: DeliveryState | None = None, limit: int = 100, offset: int = 0
) -> tuple[int, list[WebhookDelivery]]:
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset))
    return total, list(rows)


def delivery_counts(session: Session, webhook_id: int | None = None) -> dict[DeliveryState, int]:
    """Deliveries by state, of one webhook or of all."""
    query = select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
    if webhook_id is not None:
        query = query.where(WebhookDelivery.webhook_id == webhook_id)
    rows = session.execute(query).all()
    counts = {state: 0 for state in DeliveryState}
    counts.update({DeliveryState(state): int(n) for state, n in rows})
    return counts

"""The webhook dispatcher: a thread that claims due deliveries from the outbox and POSTs them, signed.

Runs in every `posepipe worker` process and in `posepipe api`; any number of them may run
at once, because each attempt is claimed with a compare-and-set (storage.webhooks). A
delivery is POSTed as JSON, `{"schema_version", "delivery_id", "webhook", "attempt", "event"}`
(the event is posepipe.views.EventView, the item of `GET /api/events`), with

    X-Posepipe-Timestamp: <unix seconds>
    X-Posepipe-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    X-Posepipe-Delivery: <delivery id>      (the same on every attempt: deduplicate on it)
    X-Posepipe-Event: <event type>

A 2xx answer delivers it; anything else (another status, a timeout, a refused connection)
is retried after a capped exponential backoff with jitter, up to `webhook_max_attempts`.
Delivery is at least once: a dispatcher that dies mid-POST loses its claim after the lease
and the delivery is attempted again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.exc import SQLAlchemyError

from common.backoff import BackoffPolicy
from common.redaction import mask_secrets
from posepipe import __version__
from posepipe.settings import Settings
from posepipe.views import SCHEMA_VERSION, EventView
from storage import webhooks
from storage.db import Database
from storage.models import DeliveryState, utcnow
from storage.secret_box import SecretBox, SecretKeyError

if TYPE_CHECKING:
    from posepipe.services import Services

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Posepipe-Signature"
TIMESTAMP_HEADER = "X-Posepipe-Timestamp"
DELIVERY_HEADER = "X-Posepipe-Delivery"
EVENT_HEADER = "X-Posepipe-Event"
USER_AGENT = f"posepipe-webhooks/{__version__}"
# An idle dispatcher looks for due deliveries this often: alerts go out within about a second.
POLL_S = 1.0
# A claim outlives the longest POST by this margin before another dispatcher may retry it.
LEASE_MARGIN_S = 30.0
# After a database error the loop waits this long (the database is likely restarting).
ERROR_PAUSE_S = 5.0
# Jitter keeps retries of many deliveries that failed together (a receiver outage) apart:
# each wait is drawn from [JITTER_LOW, 1] x the capped exponential delay.
JITTER_LOW = 0.5


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookDispatcher:
    """Delivers due webhook deliveries, one at a time, from a daemon thread (or `run_once`)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        box: Callable[[], SecretBox],
        name: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self._box_factory = box
        self._box: SecretBox | None = None
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:webhooks"
        self.retry = BackoffPolicy(base_s=settings.webhook_retry_base_s, cap_s=settings.webhook_retry_cap_s)
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # httpx logs every request's full URL at INFO, and a receiver's URL may carry a token
        # in its query: only its warnings get through.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        self._client = httpx.Client(
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        )

    @classmethod
    def for_services(cls, services: Services) -> WebhookDispatcher:
        return cls(services.db, services.settings, services.secret_box)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="posepipe-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.settings.webhook_timeout_s + 5)
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once() > 0
            except SQLAlchemyError as exc:
                log.warning("webhooks: database error, pausing %.0f s: %s", ERROR_PAUSE_S, exc)
                self._stop.wait(ERROR_PAUSE_S)
                continue
            except Exception:  # noqa: BLE001  the dispatcher outlives one bad delivery (retried after its lease)
                log.exception("webhooks: delivery round failed; pausing %.0f s", ERROR_PAUSE_S)
                self._stop.wait(ERROR_PAUSE_S)
                continue
            if not busy:
                self._stop.wait(POLL_S)

    def run_once(self, max_deliveries: int = 50) -> int:
        """Attempt due deliveries until none is due (or `max_deliveries`); returns how many."""
        done = 0
        while done < max_deliveries and not self._stop.is_set():
            claim = self._claim()
            if claim is None:
                break
            self._attempt(claim)
            done += 1
        return done

    def _claim(self) -> webhooks.ClaimedDelivery | None:
        lease_s = self.settings.webhook_timeout_s + LEASE_MARGIN_S
        with self.db.session() as session:
            candidates = webhooks.due_candidates(session, utcnow())
        for delivery_id, version in candidates:
            with self.db.session() as session:
                claim = webhooks.try_claim(session, delivery_id, version, self.name, lease_s, utcnow())
            if claim is not None:
                return claim
        return None

    def _attempt(self, claim: webhooks.ClaimedDelivery) -> None:
        try:
            box = self._secret_box()
            url, secret = box.decrypt(claim.url_secret), box.decrypt(claim.signing_secret)
        except SecretKeyError as exc:
            outcome = webhooks.AttemptOutcome(None, str(exc))
        else:
            outcome = self._post(claim, url, secret)
        now = utcnow()
        retry_at = self._retry_at(claim.attempt, now) if not outcome.delivered else None
        with self.db.session() as session:
            state = webhooks.record_attempt(session, claim, outcome, retry_at, now)
        event = claim.event
        if state is None:
            log.warning(
                "webhook=%s delivery %s: claim expired before the outcome was stored",
                claim.webhook_name,
                claim.id,
            )
        elif state is DeliveryState.DELIVERED:
            log.info(
                "webhook=%s delivered %s event %s (attempt %d)",
                claim.webhook_name,
                event.type,
                event.id,
                claim.attempt,
            )
        else:
            log.warning(
                "webhook=%s delivery %s attempt %d failed (%s)%s",
                claim.webhook_name,
                claim.id,
                claim.attempt,
                outcome.error or f"HTTP {outcome.status_code}",
                f"; next at {retry_at:%H:%M:%S}" if retry_at is not None else "; giving up",
            )

    def _retry_at(self, attempt: int, now: datetime) -> datetime | None:
        if attempt >= self.settings.webhook_max_attempts:
            return None
        ceiling = self.retry.ceiling_s(attempt - 1)
        return now + timedelta(seconds=ceiling * self._rng.uniform(JITTER_LOW, 1.0))

    def _post(self, claim: webhooks.ClaimedDelivery, url: str, secret: str) -> webhooks.AttemptOutcome:
        event = EventView.from_rows(claim.event, claim.source)
        body = json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "delivery_id": claim.id,
                "webhook": claim.webhook_name,
                "attempt": claim.attempt,
                "event": event.document(),
            },
            separators=(",", ":"),
        ).encode()
        timestamp = int(time.time())
        headers = {
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            TIMESTAMP_HEADER: str(timestamp),
            DELIVERY_HEADER: str(claim.id),
            EVENT_HEADER: event.type.value,
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # The message may quote the URL: masked before it is stored or logged.
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return webhooks.AttemptOutcome(None, mask_secrets(reason).replace(url, "<url>"))
        return webhooks.AttemptOutcome(response.status_code)

    def _secret_box(self) -> SecretBox:
        if self._box is None:
            self._box = self._box_factory()
        return self._box

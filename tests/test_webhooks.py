"""Webhooks: the outbox written with the events, signed deliveries to a real HTTP receiver on 127.0.0.1,
retries with backoff, giving up, and several dispatchers claiming the same outbox (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from analytics.events import Event, EventType
from posepipe.settings import Settings
from posepipe.views import SCHEMA_VERSION, EventView
from posepipe.webhook_dispatcher import WebhookDispatcher
from storage import events as stored_events
from storage import webhooks
from storage.db import Database
from storage.models import DeliveryState, EventRow, Source, SourceKind, Video, WebhookDelivery, utcnow
from storage.secret_box import SecretBox
from tests.services import free_port, wait_until

# How far a receiver accepts a signature's timestamp from its own clock (replay window).
SIGNATURE_TOLERANCE_S = 300


@dataclass
class Received:
    delivery_id: str
    event_type: str
    attempt: int
    body: dict[str, Any]
    signature_ok: bool
    at: float
    status: int


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that checks each signature with its own HMAC code and
    answers 500 to the first `fail_first` attempts of every delivery, then 200."""

    secret: str
    fail_first: int = 0
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verify(self, headers: Any, body: bytes) -> bool:
        timestamp = headers.get("X-Posepipe-Timestamp", "")
        signature = headers.get("X-Posepipe-Signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > SIGNATURE_TOLERANCE_S:
            return False
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(f"sha256={expected}", signature)

    def handle(self, headers: Any, body: bytes) -> int:
        ok = self.verify(headers, body)
        delivery = headers.get("X-Posepipe-Delivery", "")
        with self._lock:
            earlier = sum(1 for r in self.requests if r.delivery_id == delivery)
            status = 401 if not ok else (500 if earlier < self.fail_first else 200)
            self.requests.append(
                Received(
                    delivery,
                    headers.get("X-Posepipe-Event", ""),
                    earlier + 1,
                    json.loads(body),
                    ok,
                    time.monotonic(),
                    status,
                )
            )
        return status

    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.status == 200]


@contextmanager
def receiver(secret: str, fail_first: int = 0) -> Iterator[Receiver]:
    target = Receiver(secret, fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = target.handle(self.headers, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    target.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


def settings(tmp_path: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "webhook_retry_base_s": 0.3,
        "webhook_retry_cap_s": 1.0,
        "webhook_max_attempts": 5,
        "webhook_timeout_s": 5,
    }
    base.update(values)
    return Settings(**base)


def a_video(db: Database) -> tuple[int, int]:
    with db.session() as session:
        source = Source(kind=SourceKind.FILE, name="clip.mp4", uri="/videos/clip.mp4")
        session.add(source)
        session.flush()
        video = Video(
            source=source,
            path="/videos/clip.mp4",
            params_key="k",
            fps_target=10,
            pose_backend="x",
            run_token="r",
        )
        session.add(video)
        session.flush()
        return video.id, source.id


def fall(t: float) -> Event:
    return Event(EventType.FALL, t, t + 1.0, 1, 0.8, {"t_peak_s": t + 0.5})


def rep(t: float) -> Event:
    return Event(EventType.REP, t, t + 2.0, 1, 0.9, {"exercise": "squat"})


def deliveries(db: Database) -> list[WebhookDelivery]:
    with db.session() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def run_until(dispatcher: WebhookDispatcher, done: Any, timeout_s: float) -> None:
    def step() -> bool:
        dispatcher.run_once()
        return bool(done())

    wait_until(step, timeout_s, "the webhook deliveries", interval_s=0.05)


def test_outbox_rows_are_written_and_rolled_back_with_their_events(db: Database, box: SecretBox) -> None:
    video_id, source_id = a_video(db)
    with db.session() as session:
        falls_only, _ = webhooks.create_webhook(session, box, "falls", "http://127.0.0.1:9/a", ["fall"])
        everything, _ = webhooks.create_webhook(session, box, "all", "http://127.0.0.1:9/b", [])
        webhooks.create_webhook(session, box, "off", "http://127.0.0.1:9/c", [], enabled=False)
        falls_id, all_id = falls_only.id, everything.id
    with db.session() as session:
        stored_events.add_events(session, video_id, source_id, [fall(1.0), rep(3.0)])
    rows = deliveries(db)
    # The falls-only hook gets the fall, the catch-all both; the disabled one nothing.
    assert sorted((r.webhook_id, r.state) for r in rows) == sorted(
        [(falls_id, DeliveryState.PENDING), (all_id, DeliveryState.PENDING), (all_id, DeliveryState.PENDING)]
    )

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.session() as session:
        stored_events.add_events(session, video_id, source_id, [fall(7.0)])
        raise Boom  # the transaction rolls back: neither the event nor its deliveries stay
    assert len(deliveries(db)) == 3
    with db.session() as session:
        assert session.scalar(text("SELECT count(*) FROM events")) == 2


def test_signed_delivery_retried_with_backoff_then_delivered(
    db: Database, box: SecretBox, tmp_path: Path
) -> None:
    video_id, source_id = a_video(db)
    with receiver("s" * 32, fail_first=2) as hook_server:
        with db.session() as session:
            hook, secret = webhooks.create_webhook(session, box, "pager", hook_server.url, ["fall"], "s" * 32)
            hook_id = hook.id
        assert secret == "s" * 32
        with db.session() as session:
            stored_events.add_events(session, video_id, source_id, [fall(2.0)])
        dispatcher = WebhookDispatcher(db, settings(tmp_path), lambda: box, name="test")
        try:
            run_until(dispatcher, hook_server.delivered, 20)
        finally:
            dispatcher.stop()
        attempts = hook_server.requests
    assert [r.status for r in attempts] == [500, 500, 200]
    assert all(r.signature_ok for r in attempts)
    assert len({r.delivery_id for r in attempts}) == 1  # the same delivery id on every attempt
    assert [r.body["attempt"] for r in attempts] == [1, 2, 3]
    # Capped exponential backoff with jitter in [0.5, 1] x ceiling: 0.3 s, then 0.6 s.
    gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= 0.3 * 0.5 and gaps[1] >= 0.6 * 0.5, gaps
    assert all(r.body["schema_version"] == SCHEMA_VERSION for r in attempts)
    event = attempts[-1].body["event"]
    assert event["type"] == "fall" and event["video_id"] == video_id and event["data"]["t_peak_s"] == 2.5
    # The event as the API and the CLI give it (posepipe.views).
    with db.session() as session:
        stored = session.execute(
            select(EventRow, Source)
            .join(Source, Source.id == EventRow.source_id)
            .where(EventRow.id == event["id"])
        ).one()
    assert event == EventView.from_rows(*stored).document()
    (row,) = deliveries(db)
    assert row.webhook_id == hook_id and row.state is DeliveryState.DELIVERED
    assert row.attempts == 3 and row.last_status_code == 200 and row.last_error is None
    assert row.delivered_at is not None and row.claimed_by is None


def test_delivery_gives_up_after_the_last_attempt_with_the_error(
    db: Database, box: SecretBox, tmp_path: Path
) -> None:
    video_id, source_id = a_video(db)
    closed = f"http://127.0.0.1:{free_port()}/nobody?token=t0ps3cret"
    with db.session() as session:
        hook, _ = webhooks.create_webhook(session, box, "gone", closed, [])
        assert "t0ps3cret" not in hook.url_masked and hook.url_masked.endswith("/nobody?***")
    with db.session() as session:
        stored_events.add_events(session, video_id, source_id, [rep(1.0)])
    dispatcher = WebhookDispatcher(db, settings(tmp_path, webhook_max_attempts=2), lambda: box)
    try:
        run_until(dispatcher, lambda: deliveries(db)[0].state is DeliveryState.FAILED, 20)
    finally:
        dispatcher.stop()
    (row,) = deliveries(db)
    assert row.attempts == 2 and row.last_status_code is None
    assert "ConnectError" in (row.last_error or "") and "t0ps3cret" not in (row.last_error or "")


def test_several_dispatchers_deliver_each_event_exactly_once(
    db_url: str, db: Database, box: SecretBox, tmp_path: Path
) -> None:
    video_id, source_id = a_video(db)
    with receiver("k" * 40) as hook_server:
        with db.session() as session:
            webhooks.create_webhook(session, box, "many", hook_server.url, [], "k" * 40)
        with db.session() as session:
            stored_events.add_events(session, video_id, source_id, [fall(float(i)) for i in range(30)])
        # Each dispatcher has its own engine and connections, as separate processes would.
        engines = [Database(db_url) for _ in range(3)]
        dispatchers = [
            WebhookDispatcher(e, settings(tmp_path), lambda: box, name=f"d{i}") for i, e in enumerate(engines)
        ]
        for d in dispatchers:
            d.start()
        try:
            wait_until(lambda: len(hook_server.delivered()) >= 30, 60, "30 deliveries")
            time.sleep(1.5)  # a duplicate would arrive now
        finally:
            for d in dispatchers:
                d.stop()
            for e in engines:
                e.dispose()
        ids = [r.delivery_id for r in hook_server.requests]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert all(r.signature_ok and r.status == 200 for r in hook_server.requests)
    rows = deliveries(db)
    assert all(r.state is DeliveryState.DELIVERED and r.attempts == 1 and r.claimed_by is None for r in rows)
    assert {r.event_id for r in rows} == {int(r.body["event"]["id"]) for r in hook_server.requests}


def test_an_expired_claim_passes_to_another_dispatcher(db: Database, box: SecretBox) -> None:
    video_id, source_id = a_video(db)
    with db.session() as session:
        webhooks.create_webhook(session, box, "slow", "http://127.0.0.1:9/x", [])
    with db.session() as session:
        stored_events.add_events(session, video_id, source_id, [fall(1.0)])
    now = utcnow()
    with db.session() as session:
        ((delivery_id, version),) = webhooks.due_candidates(session, now)
    with db.session() as session:
        first = webhooks.try_claim(session, delivery_id, version, "dead", lease_s=0.0, now=now)
    with db.session() as session:
        assert webhooks.try_claim(session, delivery_id, version, "late", 30.0, now) is None  # stale version
    assert first is not None and first.attempt == 1
    later = utcnow()
    with db.session() as session:
        ((_, version2),) = webhooks.due_candidates(session, later)  # the lease ran out: due again
        second = webhooks.try_claim(session, delivery_id, version2, "alive", 30.0, later)
    assert second is not None and second.attempt == 2
    with db.session() as session:
        # The first holder comes back: its outcome is refused, the row stays with the second.
        assert webhooks.record_attempt(session, first, webhooks.AttemptOutcome(200), None, utcnow()) is None
        state = webhooks.record_attempt(session, second, webhooks.AttemptOutcome(200), None, utcnow())
    assert state is DeliveryState.DELIVERED

"""The live event stream: `GET /api/events/stream` (SSE) and `posepipe events --follow`, both on
storage.event_feed, against a real `posepipe api` and events stored by other processes, on
SQLite and PostgreSQL; the feed's hold at a gap in the ids (PostgreSQL commit order)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update

from analytics.events import Event, EventType
from posepipe.api.events import STREAM_HEARTBEAT_S
from storage.db import Database
from storage.event_feed import EventFeed, NewestEventId, claim_cursor, save_cursor
from storage.events import add_events
from storage.models import EventRow, Source, SourceKind, utcnow
from tests.services import wait_until
from tests.test_api import api_server, token
from tests.test_cli import clean_env

# The bound: an event is on the stream within a second of being stored.
LATENCY_BOUND_S = 1.0
ARRIVAL_S = 15.0

# Run by another interpreter: stores the events of argv[2] (a JSON list of {camera, type,
# sleep_s}), each in its own transaction, and prints {"id", "committed"} (time.time() right
# after the commit) per event.
WRITER = """
import json, sys, time
from sqlalchemy import func, select
from analytics.events import Event, EventType
from posepipe.api.events import STREAM_HEARTBEAT_S
from storage.db import Database
from storage.events import add_events
from storage.models import EventRow, Source, SourceKind, utcnow

db = Database(sys.argv[1])
for n, spec in enumerate(json.loads(sys.argv[2])):
    time.sleep(spec.get("sleep_s", 0))
    kind = SourceKind.CAMERA if spec["camera"] else SourceKind.FILE
    name = spec["camera"] or "clip.mp4"
    uri = f"camera:{name}" if spec["camera"] else name  # as storage.cameras.add_camera names it
    with db.session() as session:
        source = session.scalar(select(Source).where(Source.kind == kind, Source.uri == uri))
        if source is None:
            source = Source(kind=kind, name=name, uri=uri)
            session.add(source)
            session.flush()
        t = float(n)
        add_events(session, None, source.id, [Event(EventType(spec["type"]), t, t + 1, 1, 0.9, {"n": n})])
        session.flush()
        event_id = session.scalar(select(func.max(EventRow.id)))
    print(json.dumps({"id": event_id, "committed": time.time()}), flush=True)
"""


@dataclass(frozen=True)
class Stored:
    id: int
    committed: float


def store(db_url: str, specs: list[dict[str, Any]]) -> list[Stored]:
    """Store events from another process; their ids and commit times."""
    result = subprocess.run(
        [sys.executable, "-c", WRITER, db_url, json.dumps(specs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [Stored(**json.loads(line)) for line in result.stdout.splitlines()]


def spec(event_type: str, camera: str | None = None, sleep_s: float = 0.0) -> dict[str, Any]:
    return {"type": event_type, "camera": camera, "sleep_s": sleep_s}


@dataclass
class Message:
    id: int
    data: dict[str, Any]
    received: float


@dataclass
class SseReader:
    """Reads an SSE response in a thread; `close()` drops the connection like a client going away."""

    url: str
    path: str
    bearer: str
    last_event_id: int | None = None
    status: int | None = None
    messages: list[Message] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {"Authorization": f"Bearer {self.bearer}", "Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        self._conn.request("GET", self.path, headers=headers)
        self._response = self._conn.getresponse()
        self.status = self._response.status
        self.content_type = self._response.getheader("Content-Type")
        self._sock = self._conn.sock
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event_id, data = None, None
        try:
            while True:
                line = self._response.readline()
                if not line:
                    return
                text = line.decode().rstrip("\n")
                if text.startswith(":"):
                    self.comments.append(text)
                elif text.startswith("id: "):
                    event_id = int(text[4:])
                elif text.startswith("data: "):
                    data = json.loads(text[6:])
                elif text == "":
                    if data is not None:
                        assert event_id is not None
                        self.messages.append(Message(event_id, data, time.time()))
                    event_id, data = None, None
                else:
                    self.fields.append(text)
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            # close() shut the socket down under the read (http.client then fails in several ways).
            return

    def ids(self) -> list[int]:
        return [m.id for m in self.messages]

    def wait_for(self, count: int) -> None:
        wait_until(lambda: len(self.messages) >= count, ARRIVAL_S, f"{count} events on the stream")

    def close(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        assert not self._thread.is_alive()
        self._conn.close()


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[Any, str, str]]:
    env = clean_env(tmp_path / "data")
    env["POSEPIPE_DATABASE_URL"] = db_url
    reader_token = token(env, "reader", "read")
    with api_server(env, tmp_path / "api.log") as server:
        yield server, reader_token, db_url


def api_items(server: Any, bearer: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    got = httpx.get(
        f"{server.url}/api/events",
        params={"sort": "id", "limit": 500},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert got.status_code == 200, got.text
    return {item["id"]: item for item in got.json()["items"] if item["id"] in ids}


def test_stream_delivers_every_new_event_within_a_second_and_resumes_without_loss_or_duplicate(
    served: tuple[Any, str, str],
) -> None:
    server, bearer, db_url = served
    before = store(db_url, [spec("rep")])  # history: not on a stream opened without a cursor
    stream = SseReader(server.url, "/api/events/stream", bearer)
    assert stream.status == 200 and stream.content_type is not None
    assert stream.content_type.startswith("text/event-stream")
    time.sleep(1.0)  # the stream has read its starting point
    types = ["fall", "exercise_set", "rep", "long_lie", "stream_gap"]
    first = store(db_url, [spec(t, camera="hall", sleep_s=0.3) for t in types])
    stream.wait_for(len(first))
    assert stream.ids() == [s.id for s in first]
    assert before[0].id not in stream.ids()
    latencies = [m.received - s.committed for m, s in zip(stream.messages, first, strict=True)]
    print(f"SSE latency after commit: max {max(latencies) * 1000:.0f} ms, {[round(x, 3) for x in latencies]}")
    assert max(latencies) < LATENCY_BOUND_S
    # Exactly the items of GET /api/events.
    listed = api_items(server, bearer, stream.ids())
    for message in stream.messages:
        assert message.data == listed[message.id]
    assert [m.data["type"] for m in stream.messages] == types
    assert stream.fields == ["retry: 2000"]
    last = stream.messages[-1].id
    stream.close()
    wait_until(lambda: "event stream for" in (server.log.read_text()), 10, "the server to end the stream")
    assert f"closed after {len(first)} events" in server.log.read_text()

    # Events stored while nobody listens; the client comes back with the last id it got.
    missed = store(db_url, [spec("fall", camera="gym"), spec("rep")])
    again = SseReader(server.url, "/api/events/stream", bearer, last_event_id=last)
    more = store(db_url, [spec("rep", camera="gym")])
    again.wait_for(3)
    time.sleep(1.0)  # nothing else arrives
    assert again.ids() == [s.id for s in missed + more]
    again.close()

    # ?after_id= does the same for clients that cannot set the header.
    resumed = SseReader(server.url, f"/api/events/stream?after_id={last}", bearer)
    resumed.wait_for(3)
    assert resumed.ids() == [s.id for s in missed + more]
    resumed.close()


def test_stream_filters_by_camera_and_type(served: tuple[Any, str, str]) -> None:
    server, bearer, db_url = served
    hall_falls = SseReader(server.url, "/api/events/stream?camera=hall&type=fall&type=long_lie", bearer)
    gym = SseReader(server.url, "/api/events/stream?camera=gym", bearer)
    everything = SseReader(server.url, "/api/events/stream", bearer)
    time.sleep(1.0)
    stored = store(
        db_url,
        [
            spec("fall", camera="hall"),
            spec("rep", camera="hall"),
            spec("rep", camera="gym"),
            spec("fall"),  # a file's fall: no camera
            spec("long_lie", camera="hall"),
            spec("exercise_set", camera="gym"),
        ],
    )
    everything.wait_for(len(stored))
    hall_falls.wait_for(2)
    gym.wait_for(2)
    assert everything.ids() == [s.id for s in stored]
    assert hall_falls.ids() == [stored[0].id, stored[4].id]
    assert gym.ids() == [stored[2].id, stored[5].id]
    assert {m.data["camera"] for m in gym.messages} == {"gym"}
    for reader in (hall_falls, gym, everything):
        reader.close()
    # A durable consumer's backlog (the MQTT bridge's) is on /metrics.
    database = Database(db_url)
    assert claim_cursor(database, "mqtt:test", "me", 30.0) is not None
    save_cursor(database, "mqtt:test", "me", stored[1].id, 30.0)
    database.dispose()
    metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {bearer}"}).text
    assert 'posepipe_event_consumer_backlog{consumer="mqtt:test"} 4.0' in metrics
    bad = httpx.get(
        f"{server.url}/api/events/stream",
        params={"type": "jump"},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    assert bad.status_code == 422
    unauthorised = httpx.get(f"{server.url}/api/events/stream")
    assert unauthorised.status_code == 401
    garbled = httpx.get(
        f"{server.url}/api/events/stream",
        headers={"Authorization": f"Bearer {bearer}", "Last-Event-ID": "abc"},
    )
    assert garbled.status_code == 400


def test_follow_prints_new_events_as_api_items_and_resumes_after_an_id(db_url: str, tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data")
    env["POSEPIPE_DATABASE_URL"] = db_url
    follow = subprocess.Popen(
        [sys.executable, "-m", "posepipe", "events", "--follow", "--camera", "hall", "--type", "fall"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[tuple[float, dict[str, Any]]] = []
    assert follow.stderr is not None
    # Started (the schema made, the starting point read): events from here on are followed.
    started = [follow.stderr.readline() for _ in range(1)]
    while "following events after id" not in started[-1] and started[-1] and len(started) < 50:
        started.append(follow.stderr.readline())
    assert "following events after id" in started[-1], started

    def read() -> None:
        assert follow.stdout is not None
        for line in follow.stdout:
            lines.append((time.time(), json.loads(line)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stored = store(
            db_url,
            [spec("fall", camera="hall"), spec("rep", camera="hall"), spec("fall", camera="gym")]
            + [spec("fall", camera="hall", sleep_s=0.3)],
        )
        wait_until(lambda: len(lines) >= 2, ARRIVAL_S, "followed events")
        time.sleep(1.0)
        assert [item["id"] for _, item in lines] == [stored[0].id, stored[3].id]
        latencies = [at - s.committed for (at, _), s in zip(lines, [stored[0], stored[3]], strict=True)]
        print(f"--follow latency after commit: {[round(x, 3) for x in latencies]}")
        assert max(latencies) < LATENCY_BOUND_S
        assert set(lines[0][1]) >= {"id", "type", "camera", "snapshot_url", "clip_url", "data", "created_at"}
    finally:
        follow.terminate()
        follow.wait(30)
    resumed = subprocess.Popen(
        [sys.executable, "-m", "posepipe", "-q", "events", "--follow", "--after-id", str(stored[0].id)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert resumed.stdout is not None
        ids = [json.loads(resumed.stdout.readline())["id"] for _ in stored[1:]]
        assert ids == [s.id for s in stored[1:]]
    finally:
        resumed.terminate()
        resumed.wait(30)


def _source(db: Database, name: str) -> int:
    with db.session() as session:
        source = Source(kind=SourceKind.CAMERA, name=name, uri=name)
        session.add(source)
        session.flush()
        return source.id


def _event(t: float) -> Event:
    return Event(EventType.FALL, t, t + 1, 1, 0.9, {})


def test_feed_holds_at_an_uncommitted_id_until_it_commits_on_postgresql(pg_url: str) -> None:
    db = Database(pg_url)
    db.migrate()
    try:
        source_id = _source(db, "hall")
        feed = EventFeed(db, 0, gap_hold_s=30.0)
        # A long transaction takes id 1 and has not committed when a short one commits id 2.
        slow = db._sessions()
        slow.begin()
        add_events(slow, None, source_id, [_event(0)])
        slow.flush()
        with db.session() as session:
            add_events(session, None, source_id, [_event(1)])
        assert feed.poll() == []  # id 2 is visible, but passing it would lose id 1
        assert feed.cursor == 0
        slow.commit()
        slow.close()
        assert [row.id for row, _ in feed.poll()] == [1, 2]
    finally:
        db.dispose()


def test_a_feed_from_now_gets_a_lower_id_that_commits_after_it_began_on_postgresql(pg_url: str) -> None:
    db = Database(pg_url)
    db.migrate()
    try:
        source_id = _source(db, "hall")
        with db.session() as session:
            add_events(session, None, source_id, [_event(0)])  # id 1: history
        slow = db._sessions()
        slow.begin()
        add_events(slow, None, source_id, [_event(1)])  # id 2, not committed yet
        slow.flush()
        with db.session() as session:
            add_events(session, None, source_id, [_event(2)])  # id 3, committed: history too
        feed = EventFeed.from_now(db)
        assert feed.poll() == []
        slow.commit()
        slow.close()
        with db.session() as session:
            add_events(session, None, source_id, [_event(3)])  # id 4
        assert [row.id for row, _ in feed.poll()] == [2, 4]
    finally:
        db.dispose()


def test_feed_passes_a_rolled_back_id_after_the_hold_on_postgresql(pg_url: str) -> None:
    db = Database(pg_url)
    db.migrate()
    try:
        source_id = _source(db, "hall")
        now = [100.0]
        feed = EventFeed(db, 0, gap_hold_s=3.0, clock=lambda: now[0])
        lost = db._sessions()
        lost.begin()
        add_events(lost, None, source_id, [_event(0)])
        lost.flush()
        lost.rollback()  # id 1 is gone for good
        lost.close()
        with db.session() as session:
            add_events(session, None, source_id, [_event(1)])
        assert feed.poll() == []
        now[0] += 2.9
        assert feed.poll() == []
        now[0] += 0.2
        assert [row.id for row, _ in feed.poll()] == [2]
        # An old gap (a deleted video's events) is passed at once by a feed resuming far back.
        fresh = EventFeed(db, 0, gap_hold_s=3.0, clock=lambda: now[0])
        assert fresh.poll() == []  # the event behind the gap was stored just now
        with db.session() as session:
            session.execute(
                update(EventRow).where(EventRow.id == 2).values(created_at=utcnow() - timedelta(minutes=2))
            )
        assert [row.id for row, _ in EventFeed(db, 0, gap_hold_s=3.0, clock=lambda: now[0]).poll()] == [2]
    finally:
        db.dispose()


def test_feed_on_sqlite_sees_new_events_after_the_newest_were_deleted(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.migrate()
    try:
        source_id = _source(db, "hall")
        with db.session() as session:
            add_events(session, None, source_id, [_event(t) for t in range(3)])
        feed = EventFeed(db, 0)
        assert [row.id for row, _ in feed.poll()] == [1, 2, 3]
        with db.session() as session:  # e.g. its video was deleted
            session.execute(EventRow.__table__.delete().where(EventRow.id >= 2))
        assert feed.poll() == []
        with db.session() as session:
            add_events(session, None, source_id, [_event(5)])
            reused = session.scalar(select(EventRow.id).order_by(EventRow.id.desc()).limit(1))
        assert reused == 2  # SQLite handed the id out again
        assert [row.id for row, _ in feed.poll()] == [2]
    finally:
        db.dispose()


def test_a_stopping_server_ends_its_open_streams_and_exits(db_url: str, tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data")
    env["POSEPIPE_DATABASE_URL"] = db_url
    bearer = token(env, "reader", "read")
    with api_server(env, tmp_path / "api.log") as server:
        stream = SseReader(server.url, "/api/events/stream", bearer)
        # An idle stream carries a heartbeat comment (proxies close silent connections).
        wait_until(lambda: ": keepalive" in stream.comments, STREAM_HEARTBEAT_S + 5, "a heartbeat")
        started = time.monotonic()
        server.proc.terminate()
        server.proc.wait(10)  # uvicorn alone would wait for the stream's client forever
        print(f"API stopped {time.monotonic() - started:.2f} s after SIGTERM with a stream open")
        stream._thread.join(5)
        assert not stream._thread.is_alive()  # the client saw the stream end
        assert "closed after 0 events" in server.log.read_text()


def test_idle_feeds_sharing_the_newest_id_query_once_per_interval(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.migrate()
    try:
        source_id = _source(db, "hall")
        statements: list[str] = []
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        newest = NewestEventId(db, max_age_s=60.0)
        feeds = [EventFeed(db, 0, newest=newest) for _ in range(10)]
        for _ in range(3):
            assert all(feed.poll() == [] for feed in feeds)
        assert sum("FROM events" in s for s in statements) == 1  # not 30
        with db.session() as session:
            add_events(session, None, source_id, [_event(0)])
        newest.max_age_s = 0.0
        assert all([row.id for row, _ in feed.poll()] == [1] for feed in feeds)
    finally:
        db.dispose()

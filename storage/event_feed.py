"""New events in id order past a cursor: the one reader behind `GET /api/events/stream`,
`posepipe events --follow` and the MQTT bridge.

Every consumer polls the database (so it sees events stored by any process, on SQLite and
PostgreSQL alike) for events whose id is above its cursor, and moves the cursor only over ids
it is sure will not appear later. Owns that rule and the durable cursors of long-running
consumers (the MQTT bridge); not how an event is rendered or sent.

Why a cursor must not simply jump to the newest id it sees: on PostgreSQL an id is taken from
the sequence when a row is inserted, but transactions commit in any order. Event 41 may be
committed by a long transaction after event 42 was committed by a short one; a reader that saw
42 and moved its cursor there would never see 41. So the feed stops at a gap in the ids and
waits for it to fill. A gap can also be permanent (a rolled-back insert keeps its sequence
value; a deleted video's events), so the wait is bounded: after GAP_HOLD_S the feed passes the
gap. On SQLite writers hold the database's write lock from their first insert to their commit,
so ids become visible in order and a gap is always permanent: it is passed at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import Database, rows_affected
from storage.models import EventCursor, EventRow, Source, utcnow

# Consumers poll this often when idle: an event is on the stream within about this plus a query.
POLL_S = 0.25
# Longest the feed waits at a gap in the ids (PostgreSQL): longer than an analytics
# transaction takes from its insert to its commit (a live chunk: tens of ms; a 32-frame file
# chunk with its poses: well under a second), short enough that a rolled-back insert, which
# leaves a gap that never fills, holds the events behind it back only this long.
GAP_HOLD_S = 3.0
# A gap whose next event was stored this long ago is old (events of a deleted video, or a
# rollback long past): passed at once, so a client resuming from an old cursor is not held.
# Far above GAP_HOLD_S so that clocks of different writer hosts may disagree a little.
STALE_GAP_S = 60.0
# Events read per round; a consumer far behind catches up in rounds of this many.
BATCH = 500

Narrow = Callable[[Select[Any]], Select[Any]]


def latest_event_id(session: Session) -> int:
    """The highest stored event id (0 when there is none): where a feed of only new events starts."""
    return int(session.scalar(select(func.max(EventRow.id))) or 0)


class NewestEventId:
    """The newest event id, read at most once per `max_age_s` for every feed of a process that
    shares it: idle feeds (an API with many open streams) then cost one query per interval
    instead of one each (20 idle streams: 8.8 % of a core without it)."""

    def __init__(self, db: Database, max_age_s: float = POLL_S / 2) -> None:
        self.db = db
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._value = 0
        self._read_at: float | None = None

    def get(self) -> int:
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= self.max_age_s:
                with self.db.session() as session:
                    self._value = latest_event_id(session)
                self._read_at = now
            return self._value


@dataclass
class EventFeed:
    """Events with id > `cursor`, in id order, each returned once. Not thread-safe: one per consumer.

    `narrow` adds filters (e.g. posepipe.api.events.EventFilters.apply) to a query of
    (EventRow, Source); filtered-out events move the cursor like the others. The rows returned
    are detached (their attributes loaded) and may be read after the session closed.
    """

    db: Database
    cursor: int
    narrow: Narrow | None = None
    gap_hold_s: float | None = None
    clock: Callable[[], float] = time.monotonic
    # Ids above the cursor that are not to be returned (they were stored before the feed began).
    skip: frozenset[int] = frozenset()
    # Shared with other feeds: a poll while nothing is newer than the cursor reads nothing.
    newest: NewestEventId | None = None
    # First missing id of a gap -> when this feed first saw it (clock seconds).
    _gaps: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.gap_hold_s is None:
            self.gap_hold_s = 0.0 if self.db.is_sqlite else GAP_HOLD_S

    @classmethod
    def from_now(
        cls, db: Database, narrow: Narrow | None = None, newest: NewestEventId | None = None
    ) -> EventFeed:
        """A feed of the events stored from now on. Not simply those above the newest id: on
        PostgreSQL an event with a lower id may still commit. The cursor starts below the events
        of the last GAP_HOLD_S, and those already visible are skipped; the rest arrive as they commit."""
        with db.session() as session:
            latest = latest_event_id(session)
            if db.is_sqlite:
                return cls(db, latest, narrow, newest=newest)
            since = utcnow() - timedelta(seconds=GAP_HOLD_S)
            # The newest ids through the primary key's index (created_at has none).
            newest_rows = session.execute(
                select(EventRow.id, EventRow.created_at).order_by(EventRow.id.desc()).limit(BATCH)
            ).all()
            recent = {int(i) for i, created in newest_rows if _aware(created) >= since}
        if not recent:
            return cls(db, latest, narrow, newest=newest)
        return cls(db, min(recent) - 1, narrow, skip=frozenset(recent), newest=newest)

    def poll(self) -> list[tuple[EventRow, Source]]:
        """One round: the events that became safe to pass since the last call (maybe none)."""
        if self.newest is not None and not self._gaps and self.newest.get() == self.cursor:
            return []  # (a newest id below the cursor, after a deletion, is handled below)
        with self.db.session() as session:
            ids = session.execute(
                select(EventRow.id, EventRow.created_at)
                .where(EventRow.id > self.cursor)
                .order_by(EventRow.id)
                .limit(BATCH)
            ).all()
            if not ids:
                self._after_deletion(session)
                return []
            upto = self._safe_upto([(int(i), created) for i, created in ids])
            if upto == self.cursor:
                return []
            # Typed as any select: a Narrow filters the event queries of several shapes.
            query: Select[Any] = cast(
                "Select[Any]",
                select(EventRow, Source)
                .join(Source, Source.id == EventRow.source_id)
                .where(EventRow.id > self.cursor, EventRow.id <= upto),
            )
            if self.narrow is not None:
                query = self.narrow(query)
            rows = [
                (row, source)
                for row, source in session.execute(query.order_by(EventRow.id))
                if row.id not in self.skip
            ]
        self.cursor = upto
        if self.skip:
            self.skip = frozenset(i for i in self.skip if i > upto)
        self._gaps = {first: seen for first, seen in self._gaps.items() if first > upto}
        return rows

    def _safe_upto(self, ids: list[tuple[int, datetime | None]]) -> int:
        """The highest id up to which no event can appear any more."""
        upto = self.cursor
        now = self.clock()
        for event_id, created_at in ids:
            if event_id != upto + 1 and not self._gap_passed(upto + 1, created_at, now):
                break
            upto = event_id
        return upto

    def _gap_passed(self, first_missing: int, next_created_at: datetime | None, now: float) -> bool:
        seen = self._gaps.setdefault(first_missing, now)
        if now - seen >= (self.gap_hold_s or 0.0):
            return True
        if next_created_at is None:
            return False
        return utcnow() - _aware(next_created_at) > timedelta(seconds=STALE_GAP_S)

    def _after_deletion(self, session: Session) -> None:
        # SQLite gives a new row max(id) + 1: once the newest events are deleted (their video
        # was), new events reuse ids this feed has passed. Coming back down to the newest id
        # still stored keeps them visible. PostgreSQL's sequence never hands an id out twice.
        if self.db.is_sqlite:
            newest = latest_event_id(session)
            if newest < self.cursor:
                self.cursor = newest


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:  # SQLite returns stored UTC times without their zone
        return value.replace(tzinfo=utcnow().tzinfo)
    return value


class LeaseLost(Exception):
    """Another consumer holds the cursor now (this one's lease ran out): stop publishing."""


def claim_cursor(
    db: Database,
    name: str,
    owner: str,
    lease_s: float,
    start: Callable[[Session], int] = latest_event_id,
    now: datetime | None = None,
) -> int | None:
    """Take or renew the lease on a durable cursor; its position, or None while another owner's
    lease runs (so two bridges never publish at once: the second waits as a standby). A new
    cursor starts at `start` (default: the newest event, so a new consumer replays no history)."""
    at = now or utcnow()

    def work(session: Session) -> int | None:
        # Compare-and-set as the transaction's first statement (on SQLite it takes the write lock).
        taken = session.execute(
            update(EventCursor)
            .where(
                EventCursor.name == name,
                or_(
                    EventCursor.owner.is_(None),
                    EventCursor.owner == owner,
                    EventCursor.lease_until < at,
                ),
            )
            .values(owner=owner, lease_until=at + timedelta(seconds=lease_s), updated_at=at)
        )
        if rows_affected(taken) == 1:
            return int(session.scalar(select(EventCursor.last_event_id).where(EventCursor.name == name)) or 0)
        if session.get(EventCursor, name) is not None:
            return None
        position = start(session)
        session.add(
            EventCursor(
                name=name,
                last_event_id=position,
                owner=owner,
                lease_until=at + timedelta(seconds=lease_s),
                updated_at=at,
            )
        )
        session.flush()
        return position

    try:
        return db.write_retrying(work, f"event cursor {name}")
    except IntegrityError:
        return None  # another consumer created it at the same moment: it holds the lease


def save_cursor(db: Database, name: str, owner: str, last_event_id: int, lease_s: float) -> None:
    """Store the position once everything up to it was handled (for MQTT: acknowledged) and
    renew the lease; LeaseLost if another consumer took the cursor meanwhile."""
    at = utcnow()

    def work(session: Session) -> int:
        result = session.execute(
            update(EventCursor)
            .where(EventCursor.name == name, EventCursor.owner == owner)
            .values(last_event_id=last_event_id, lease_until=at + timedelta(seconds=lease_s), updated_at=at)
        )
        return rows_affected(result)

    if db.write_retrying(work, f"event cursor {name}") != 1:
        raise LeaseLost(f"event cursor {name} is held by another consumer")


def release_cursor(db: Database, name: str, owner: str) -> None:
    """Give the lease up (a clean stop): a standby takes over at its next try."""

    def work(session: Session) -> None:
        session.execute(
            update(EventCursor)
            .where(EventCursor.name == name, EventCursor.owner == owner)
            .values(owner=None, lease_until=None, updated_at=utcnow())
        )

    db.write_retrying(work, f"event cursor {name}")


def cursor_backlogs(session: Session) -> list[tuple[str, int]]:
    """(consumer, events stored past its cursor) for every durable cursor: how far the MQTT
    bridge is behind (it grows while the broker is unreachable)."""
    cursors = session.execute(select(EventCursor.name, EventCursor.last_event_id).order_by(EventCursor.name))
    return [
        (name, int(session.scalar(select(func.count()).where(EventRow.id > last)) or 0))
        for name, last in cursors
    ]

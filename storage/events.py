"""Events in the database: stored as detectors emit them, read back as analytics.events.Event."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.events import Event, EventType
from storage import webhooks
from storage.models import EventRow, Source


def add_events(
    session: Session,
    video_id: int | None,
    source_id: int,
    events: Iterable[Event],
    wall_origin: datetime | None = None,
) -> int:
    """`wall_origin`: the wall-clock time of t = 0 of a live session (gives events wall times).

    The single place events are written (files and live cameras): webhook deliveries for the
    new events are queued here too, in the caller's transaction (the outbox), so an event and
    its deliveries are stored together or not at all.
    """
    rows = [
        EventRow(
            video_id=video_id,
            source_id=source_id,
            type=e.type.value,
            track_id=e.track_id,
            t_start_s=e.t_start_s,
            t_end_s=e.t_end_s,
            confidence=e.confidence,
            data=dict(e.data),
            started_at=None if wall_origin is None else wall_origin + timedelta(seconds=e.t_start_s),
            ended_at=None if wall_origin is None else wall_origin + timedelta(seconds=e.t_end_s),
        )
        for e in events
    ]
    session.add_all(rows)
    webhooks.queue_deliveries(session, rows)
    return len(rows)


def list_events(
    session: Session,
    *,
    video_id: int | None = None,
    types: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[EventRow]:
    return [row for row, _ in list_events_with_sources(session, video_id=video_id, types=types, limit=limit)]


def list_events_with_sources(
    session: Session,
    *,
    video_id: int | None = None,
    types: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[tuple[EventRow, Source]]:
    """Events in video and time order, each with its source (what a view of it names)."""
    query = select(EventRow, Source).join(Source, Source.id == EventRow.source_id)
    if video_id is not None:
        query = query.where(EventRow.video_id == video_id)
    if types:
        query = query.where(EventRow.type.in_(list(types)))
    query = query.order_by(EventRow.video_id, EventRow.t_start_s, EventRow.id)
    if limit is not None:
        query = query.limit(limit)
    return [(row, source) for row, source in session.execute(query)]


def to_event(row: EventRow) -> Event:
    return Event(
        type=EventType(row.type),
        t_start_s=row.t_start_s,
        t_end_s=row.t_end_s,
        track_id=row.track_id,
        confidence=row.confidence,
        data=row.data or {},
    )

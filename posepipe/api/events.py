"""Event routes: filtered, sorted, paged lists (JSON or CSV); new events as they are stored
(server-sent events); one event with its evidence, picture, clip."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, func, select
from starlette.concurrency import run_in_threadpool

from analytics.events import EventType
from posepipe.api import media
from posepipe.api.auth import require_read
from posepipe.api.common import (
    NOT_FOUND,
    MaxSide,
    Offset,
    RowId,
    RowIdFilter,
    load_video,
    skeleton_style,
)
from posepipe.api.schemas import EventDetail, EventPage, EventSort
from posepipe.api.state import ApiState, get_api
from posepipe.api.streaming import stream_text
from posepipe.api.videos import jpeg_response
from posepipe.export import write_events
from posepipe.render import SkeletonStyle
from posepipe.views import EventView, utc
from storage import event_feed
from storage.models import EventRow, Source, SourceKind

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["events"], dependencies=[Depends(require_read)])

MAX_PAGE = 500
MAX_CSV_ROWS = 100_000
# An idle stream sends a comment this often: proxies and load balancers close connections
# that carry nothing for a minute or so (nginx's proxy_read_timeout defaults to 60 s).
STREAM_HEARTBEAT_S = 15.0
# How long a browser's EventSource waits before reconnecting after the stream broke.
STREAM_RETRY_MS = 2000
# Set when the server is stopping (see end_event_streams).
_STREAMS_ENDING = threading.Event()


def end_event_streams() -> None:
    """End every open event stream of this process within a poll (the server is stopping;
    clients reconnect, with their Last-Event-ID, to another or the restarted server)."""
    _STREAMS_ENDING.set()


SORTS = {
    EventSort.NEWEST: (EventRow.id.desc(),),
    EventSort.OLDEST: (EventRow.id,),
    EventSort.START: (EventRow.video_id, EventRow.t_start_s, EventRow.id),
    EventSort.START_DESC: (EventRow.video_id.desc(), EventRow.t_start_s.desc(), EventRow.id.desc()),
    EventSort.CONFIDENCE: (EventRow.confidence, EventRow.id),
    EventSort.CONFIDENCE_DESC: (EventRow.confidence.desc(), EventRow.id.desc()),
}


@dataclass(frozen=True)
class EventFilters:
    source_id: int | None
    camera: str | None
    video_id: int | None
    types: list[EventType] | None
    track_id: int | None
    t_from: float | None
    t_to: float | None
    after: datetime | None
    before: datetime | None
    min_confidence: float | None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.source_id is not None:
            query = query.where(EventRow.source_id == self.source_id)
        if self.camera is not None:
            query = query.where(Source.kind == SourceKind.CAMERA, Source.name == self.camera)
        if self.video_id is not None:
            query = query.where(EventRow.video_id == self.video_id)
        if self.types:
            query = query.where(EventRow.type.in_([t.value for t in self.types]))
        if self.track_id is not None:
            query = query.where(EventRow.track_id == self.track_id)
        if self.t_from is not None:
            query = query.where(EventRow.t_end_s >= self.t_from)
        if self.t_to is not None:
            query = query.where(EventRow.t_start_s <= self.t_to)
        when = func.coalesce(EventRow.started_at, EventRow.created_at)
        if self.after is not None:
            query = query.where(when >= utc(self.after))
        if self.before is not None:
            query = query.where(when <= utc(self.before))
        if self.min_confidence is not None:
            query = query.where(EventRow.confidence >= self.min_confidence)
        return query


def event_filters(
    source_id: RowIdFilter = None,
    camera: Annotated[str | None, Query(description="Events of this camera's sessions.")] = None,
    video_id: RowIdFilter = None,
    type: Annotated[list[EventType] | None, Query(description="Repeat for several types.")] = None,  # noqa: A002
    track_id: RowIdFilter = None,
    t_from: Annotated[
        float | None, Query(alias="from", description="Overlapping [from, to], in video seconds.")
    ] = None,
    t_to: Annotated[float | None, Query(alias="to")] = None,
    after: Annotated[
        datetime | None, Query(description="Happened (live) or found (files) at or after this time.")
    ] = None,
    before: Annotated[datetime | None, Query(description="... at or before this time.")] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> EventFilters:
    return EventFilters(
        source_id, camera, video_id, type, track_id, t_from, t_to, after, before, min_confidence
    )


def _base() -> Any:
    return select(EventRow, Source).join(Source, Source.id == EventRow.source_id)


@router.get("/events", response_model=EventPage, summary="Events, filtered, sorted and paged")
def list_events(
    filters: Annotated[EventFilters, Depends(event_filters)],
    *,
    sort: Annotated[
        EventSort, Query(description="A field; a leading - sorts descending.")
    ] = EventSort.NEWEST,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Offset = 0,
    api: Annotated[ApiState, Depends(get_api)],
) -> EventPage:
    query = filters.apply(_base())
    with api.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.execute(query.order_by(*SORTS[sort]).limit(limit).offset(offset)).all()
        items = [EventView.from_rows(row, source) for row, source in rows]
    return EventPage(total=total, limit=limit, offset=offset, items=items)


@router.get(
    "/events.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The columns of `posepipe events`."}},
    summary="Events as CSV (same filters)",
)
def events_csv(
    filters: Annotated[EventFilters, Depends(event_filters)],
    *,
    sort: Annotated[EventSort, Query()] = EventSort.START,
    limit: Annotated[int, Query(ge=1, le=MAX_CSV_ROWS)] = MAX_CSV_ROWS,
    api: Annotated[ApiState, Depends(get_api)],
) -> StreamingResponse:
    query = filters.apply(_base())

    def produce(out: Any) -> None:
        with api.db.session() as session:
            rows = session.execute(query.order_by(*SORTS[sort]).limit(limit)).all()
            write_events(out, [EventView.from_rows(row, source) for row, source in rows], "csv")

    return StreamingResponse(
        stream_text(produce, "events-export"),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="events.csv"'},
    )


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One SSE message per new event: `id` is the event id, `data` the event as an "
            "item of `GET /api/events`; a comment line every 15 s while idle.",
        },
        400: {"description": "Last-Event-ID is not an event id."},
    },
    summary="New events as they are stored (server-sent events)",
)
async def event_stream(
    request: Request,
    filters: Annotated[EventFilters, Depends(event_filters)],
    *,
    after_id: Annotated[
        int | None,
        Query(ge=0, description="Start after this event id (default: only events stored from now on)."),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(description="Sent by a reconnecting client: resume after this id (wins over after_id)."),
    ] = None,
    api: Annotated[ApiState, Depends(get_api)],
) -> StreamingResponse:
    """Each event stored from now on (or after `after_id`), within about a second, in id order,
    once: a client that reconnects with the last id it got misses nothing and gets nothing
    twice. Browsers' EventSource cannot send the bearer token; read the stream with `fetch`
    (or any SSE client that sets headers): see docs/integrations.md."""
    start = after_id
    if last_event_id is not None and last_event_id.strip():
        try:
            start = int(last_event_id.strip())
        except ValueError as exc:
            raise HTTPException(400, f"Last-Event-ID {last_event_id[:32]!r} is not an event id") from exc
        if start < 0:
            raise HTTPException(400, "Last-Event-ID must be >= 0")
    newest = _newest_event_id(api)
    if start is None:
        feed = await run_in_threadpool(event_feed.EventFeed.from_now, api.db, filters.apply, newest)
    else:
        feed = event_feed.EventFeed(api.db, start, narrow=filters.apply, newest=newest)
    client = request.client.host if request.client else "?"

    async def messages() -> AsyncIterator[str]:
        log.info("event stream opened for %s after event %d", client, feed.cursor)
        sent = 0
        try:
            yield f"retry: {STREAM_RETRY_MS}\n: posepipe events after {feed.cursor}\n\n"
            quiet_since = time.monotonic()
            while not _STREAMS_ENDING.is_set():
                rows = await run_in_threadpool(feed.poll)
                for row, source in rows:
                    yield f"id: {row.id}\ndata: {EventView.from_rows(row, source).model_dump_json()}\n\n"
                sent += len(rows)
                now = time.monotonic()
                if rows:
                    quiet_since = now
                elif now - quiet_since >= STREAM_HEARTBEAT_S:
                    yield ": keepalive\n\n"
                    quiet_since = now
                if len(rows) < event_feed.BATCH:
                    await asyncio.sleep(event_feed.POLL_S)
        finally:
            # Starlette cancels this generator when the client disconnects.
            log.info("event stream for %s closed after %d events (cursor %d)", client, sent, feed.cursor)

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# One newest-id reader per database for all the streams of this process.
_NEWEST: weakref.WeakKeyDictionary[Any, event_feed.NewestEventId] = weakref.WeakKeyDictionary()


def _newest_event_id(api: ApiState) -> event_feed.NewestEventId:
    newest = _NEWEST.get(api.db)
    if newest is None:
        newest = _NEWEST.setdefault(api.db, event_feed.NewestEventId(api.db))
    return newest


@router.get(
    "/events/{event_id}",
    response_model=EventDetail,
    responses=NOT_FOUND,
    summary="One event and its evidence",
)
def get_event(event_id: RowId, api: Annotated[ApiState, Depends(get_api)]) -> EventDetail:
    """`data` holds what the detector measured (speeds, angles, times); the snapshot shows the
    key moment and the clip the seconds around it."""
    with api.db.session() as session:
        found = session.execute(_base().where(EventRow.id == event_id)).first()
        if found is None:
            raise HTTPException(404, f"no event {event_id}")
        row, source = found
        view = EventView.from_rows(row, source)
        key_time = media.event_key_time(row)
        video = load_video(session, row.video_id) if row.video_id is not None else None
    return EventDetail(
        **view.model_dump(),
        key_time_s=round(key_time, 3),
        video=video,
        clip_unavailable=media.clip_unavailable(api.db, event_id),
    )


@router.get(
    "/events/{event_id}/snapshot",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/jpeg": {}}, "description": "JPEG of the key moment."}},
    summary="The event's key moment with the skeleton",
)
def event_snapshot(
    event_id: RowId,
    *,
    t: Annotated[
        float | None, Query(ge=0, description="Another moment (video seconds) instead of the key one.")
    ] = None,
    max_side: MaxSide = None,
    style: Annotated[SkeletonStyle, Depends(skeleton_style)],
    api: Annotated[ApiState, Depends(get_api)],
) -> Response:
    with api.db.session() as session:
        row = session.get(EventRow, event_id)
        if row is None:
            raise HTTPException(404, f"no event {event_id}")
        video_id, key_time = row.video_id, media.event_key_time(row)
    if video_id is None:
        raise HTTPException(404, f"event {event_id} belongs to no video")
    try:
        shot = media.snapshot(api.db, video_id, key_time if t is None else t, style, max_side)
    except media.MediaUnavailable as exc:
        raise HTTPException(exc.status_code, exc.detail) from exc
    return jpeg_response(shot)


@router.get(
    "/events/{event_id}/clip",
    response_class=Response,
    responses={
        **NOT_FOUND,
        200: {
            "content": {"video/mp4": {}},
            "description": "MP4 (H.264 when available; header X-Codec) with the skeleton on every frame.",
        },
        409: {"description": "A live session's event: live sessions keep no video."},
    },
    summary="A short MP4 around the event, skeleton drawn",
)
async def event_clip(
    event_id: RowId,
    *,
    pad_s: Annotated[
        float, Query(ge=0, le=10, description="Seconds before and after the event.")
    ] = media.CLIP_PAD_S,
    style: Annotated[SkeletonStyle, Depends(skeleton_style)],
    api: Annotated[ApiState, Depends(get_api)],
) -> Response:
    try:
        clip = await run_in_threadpool(media.event_clip, api.db, event_id, style, api.render_dir, pad_s)
    except media.MediaUnavailable as exc:
        raise HTTPException(exc.status_code, exc.detail) from exc
    return Response(
        clip.mp4,
        media_type="video/mp4",
        headers={
            "X-Codec": clip.codec,
            "X-Clip-From-S": f"{clip.t_from_s:.3f}",
            "X-Clip-To-S": f"{clip.t_to_s:.3f}",
            "Content-Disposition": f'inline; filename="event-{event_id}.mp4"',
        },
    )

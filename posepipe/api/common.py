"""Pieces several route modules share: the video view, skeleton style parameters, time parameters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any, overload

from fastapi import HTTPException, Path, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.source import is_photo_container
from posepipe.api.schemas import VideoOut
from posepipe.render import SkeletonStyle, parse_color
from storage.models import EventRow, Source, SourceKind, Video, VideoStatus

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No such item (the detail says what)."}}

# Both databases store 64-bit integers: a larger id or offset in a URL is refused with 422
# here instead of overflowing the driver (a 500).
MAX_DB_INT = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
RowIdFilter = Annotated[int | None, Query(ge=0, le=MAX_DB_INT)]
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
MaxSide = Annotated[int | None, Query(ge=32, le=4096, description="Scale down to this longer side.")]


class Refusal(Exception):
    """A request the API must refuse: the HTTP status to answer with, and why."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def progress(video: Video) -> float:
    """Analysed frames over what is expected (frames_total once known); 1 when done."""
    total = video.frames_total if video.frames_total is not None else video.frames_expected
    if total:
        return round(min(1.0, video.frames_done / total), 4)
    return 1.0 if video.status is VideoStatus.DONE else 0.0


def event_counts(session: Session, video_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {vid: {} for vid in video_ids}
    if not video_ids:
        return counts
    rows = session.execute(
        select(EventRow.video_id, EventRow.type, func.count())
        .where(EventRow.video_id.in_(list(video_ids)))
        .group_by(EventRow.video_id, EventRow.type)
    )
    for video_id, kind, n in rows:
        if video_id is not None:
            counts[video_id][kind] = int(n)
    return counts


def video_views(session: Session, rows: Iterable[tuple[Video, Source]]) -> list[VideoOut]:
    pairs = list(rows)
    counts = event_counts(session, [video.id for video, _ in pairs])
    return [video_view(video, source, counts[video.id]) for video, source in pairs]


def video_view(video: Video, source: Source, counts: dict[str, int]) -> VideoOut:
    live = source.kind is SourceKind.CAMERA
    return VideoOut(
        id=video.id,
        name=source.name,
        kind=source.kind,
        photo=is_photo_container(video.container),
        camera=source.name if live else None,
        status=video.status,
        error=video.error,
        progress=progress(video),
        frames_done=video.frames_done,
        frames_total=video.frames_total,
        frames_expected=video.frames_expected,
        frames_with_person=video.frames_with_person,
        fps_target=video.fps_target,
        exercise=video.exercise,  # type: ignore[arg-type]
        duration_s=video.duration_s,
        fps_native=video.fps_native,
        width=video.width,
        height=video.height,
        codec=video.codec,
        size_bytes=video.size_bytes,
        sha256=video.sha256,
        created_at=utc(video.created_at),
        started_at=utc(video.started_at),
        finished_at=utc(video.finished_at),
        event_counts=counts,
    )


def load_video(session: Session, video_id: int) -> VideoOut:
    row = session.execute(
        select(Video, Source).join(Source, Source.id == Video.source_id).where(Video.id == video_id)
    ).first()
    if row is None:
        raise HTTPException(404, f"no video {video_id}")
    return video_views(session, [(row[0], row[1])])[0]


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
@overload
def utc(value: datetime | None) -> datetime | None: ...
def utc(value: datetime | None) -> datetime | None:
    """In UTC, naive taken as UTC: stored times are UTC (SQLite returns them without a zone), and
    so are a client's times without one."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def skeleton_style(
    joint_color: Annotated[
        str, Query(description="A name (red, white, green, ...), #rrggbb or r,g,b.")
    ] = "red",
    bone_color: Annotated[str, Query(description="As joint_color.")] = "white",
    joint_radius: Annotated[
        float, Query(ge=0.001, le=0.1, description="Fraction of the image's shorter side.")
    ] = 0.008,
    bone_thickness: Annotated[
        float, Query(ge=0.001, le=0.1, description="Fraction of the shorter side.")
    ] = 0.004,
) -> SkeletonStyle:
    try:
        return SkeletonStyle(parse_color(joint_color), parse_color(bone_color), joint_radius, bone_thickness)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc

"""The one JSON view of each stored entity (an event, a video or camera session, a camera's status),
shared by the CLI, the REST API, webhooks, the event stream, `events --follow` and MQTT.

Each view is a frozen pydantic model built from storage rows by its `from_rows`; the API
uses the same models as its response schemas (docs/api.md), so the CLI's JSON of an entity
is the API's, key for key. `SCHEMA_VERSION` numbers this set of shapes: it is sent with every
JSON document (README.md, "JSON schema"). Owns the shapes and how rows become them; not the
queries that pick the rows, nor the text tables of the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from analytics.events import EventType, Exercise
from common.redaction import mask_secrets
from pipeline.source import is_photo_container
from storage.models import (
    Camera,
    CameraState,
    CameraStatusRow,
    EventRow,
    Source,
    SourceKind,
    Video,
    VideoStatus,
    utcnow,
)

# Version 2: one event shape everywhere (`t_start_s`/`t_end_s`; `analyze --json` had `t_start`/
# `t_end`), `posepipe status`/`camera list --json` give the API's video and camera views,
# cameras carry `stale`. Raise it on any change a reader could trip on (a key renamed,
# removed or retyped); adding a key is not one.
SCHEMA_VERSION = 2
# Seconds and fractions of a detector's output are stored as measured; views give them to the ms.
ROUND_DIGITS = 3
# The ingester writes a camera's status every 2 s (posepipe.camera_supervisor.STATUS_INTERVAL_S); one
# not written for this long means no ingester is watching the camera (stopped or crashed),
# whatever its last stored state says.
STALE_STATUS_S = 10.0


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class CameraViewState(str, Enum):
    """A camera's state as shown: the ingester's last (storage.models.CameraState), or never started."""

    CONNECTING = CameraState.CONNECTING.value
    ONLINE = CameraState.ONLINE.value
    RECONNECTING = CameraState.RECONNECTING.value
    OFFLINE = CameraState.OFFLINE.value
    NEVER_STARTED = "never_started"


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


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, ROUND_DIGITS)


class EventView(_View):
    """An event: of a video file or of a camera's live session."""

    id: int
    type: EventType
    video_id: int | None
    source_id: int
    source_kind: SourceKind
    source_name: str
    camera: str | None
    track_id: int | None
    t_start_s: float
    t_end_s: float
    confidence: float
    started_at: datetime | None = Field(description="Wall-clock start (live sessions only).")
    ended_at: datetime | None
    created_at: datetime
    data: dict[str, Any] = Field(description="The detector's evidence (see docs/analytics_*.md).")
    snapshot_url: str | None = Field(description="A JPEG of the event's key moment with the skeleton.")
    clip_url: str | None = Field(description="An MP4 around the event (files only; null for live sessions).")

    @classmethod
    def from_rows(cls, row: EventRow, source: Source) -> EventView:
        """A camera's source keeps the camera's name, also after the camera was removed."""
        live = source.kind is SourceKind.CAMERA
        return cls(
            id=row.id,
            type=EventType(row.type),
            video_id=row.video_id,
            source_id=row.source_id,
            source_kind=source.kind,
            source_name=source.name,
            camera=source.name if live else None,
            track_id=row.track_id,
            t_start_s=round(row.t_start_s, ROUND_DIGITS),
            t_end_s=round(row.t_end_s, ROUND_DIGITS),
            confidence=round(row.confidence, ROUND_DIGITS),
            started_at=utc(row.started_at),
            ended_at=utc(row.ended_at),
            created_at=utc(row.created_at),
            data=dict(row.data or {}),
            snapshot_url=f"/api/events/{row.id}/snapshot" if row.video_id is not None else None,
            clip_url=None if live or row.video_id is None else f"/api/events/{row.id}/clip",
        )

    def document(self) -> dict[str, Any]:
        """JSON-ready (enums as their values, times as ISO 8601 strings)."""
        return self.model_dump(mode="json")


def progress(video: Video) -> float:
    """Analysed frames over what is expected (frames_total once known); 1 when done."""
    total = video.frames_total if video.frames_total is not None else video.frames_expected
    if total:
        return round(min(1.0, video.frames_done / total), 4)
    return 1.0 if video.status is VideoStatus.DONE else 0.0


class VideoView(_View):
    """A video file's analysis, or a camera's live session: its state, progress and timings."""

    id: int
    name: str = Field(description="The uploaded or analysed file's name; a session's camera name.")
    kind: SourceKind
    photo: bool = Field(description="A single picture (JPEG, PNG, WebP, ...): one analysed frame at t = 0.")
    camera: str | None = Field(description="The camera of a live session.")
    status: VideoStatus
    error: str | None
    progress: float = Field(description="Analysed frames over expected frames, 0-1.")
    frames_done: int
    frames_total: int | None = Field(description="Known once the whole file is decoded.")
    frames_expected: int | None
    frames_with_person: int
    fps_target: float
    exercise: Exercise | None
    duration_s: float | None
    fps_native: float | None
    width: int | None
    height: int | None
    codec: str | None
    size_bytes: int | None
    sha256: str | None
    decode_errors: int = Field(description="Packets or frames the decoder could not read.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_s: float | None = Field(description="From created_at to finished_at.")
    ingest_s: float | None = Field(description="Decoding and sampling, wall-clock.")
    ingest_wait_s: float | None = Field(description="Of ingest_s, waiting for room in the frame window.")
    pose_s: float = Field(description="Posing, summed over the workers.")
    event_counts: dict[str, int] = Field(description="Stored events of this video by type.")

    @classmethod
    def from_rows(cls, video: Video, source: Source, counts: dict[str, int]) -> VideoView:
        live = source.kind is SourceKind.CAMERA
        elapsed = (
            (utc(video.finished_at) - utc(video.created_at)).total_seconds() if video.finished_at else None
        )
        return cls(
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
            exercise=Exercise(video.exercise) if video.exercise else None,
            duration_s=video.duration_s,
            fps_native=video.fps_native,
            width=video.width,
            height=video.height,
            codec=video.codec,
            size_bytes=video.size_bytes,
            sha256=video.sha256,
            decode_errors=video.decode_errors,
            created_at=utc(video.created_at),
            started_at=utc(video.started_at),
            finished_at=utc(video.finished_at),
            elapsed_s=_round(elapsed),
            ingest_s=_round(video.ingest_s),
            ingest_wait_s=_round(video.ingest_wait_s),
            pose_s=round(video.pose_s, ROUND_DIGITS),
            event_counts=counts,
        )

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def event_counts(session: Session, video_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Stored events of each video by type."""
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


def video_views(session: Session, rows: Iterable[tuple[Video, Source]]) -> list[VideoView]:
    """The views of these videos, their event counts read in one query."""
    pairs = list(rows)
    counts = event_counts(session, [video.id for video, _ in pairs])
    return [VideoView.from_rows(video, source, counts[video.id]) for video, source in pairs]


def load_video_view(session: Session, video_id: int) -> VideoView | None:
    row = session.execute(
        select(Video, Source).join(Source, Source.id == Video.source_id).where(Video.id == video_id)
    ).first()
    return None if row is None else video_views(session, [(row[0], row[1])])[0]


class CameraView(_View):
    """A camera, its settings and its status as the ingester last reported it."""

    id: int
    name: str
    url_masked: str = Field(description="The URL with its password replaced by ***.")
    fps: float
    exercise: Exercise | None
    long_lie_s: float | None = Field(description="This camera's long-lie time; null: the deployment's.")
    hands: bool = Field(description="Whether its sessions find each person's hands.")
    enabled: bool
    state: CameraViewState
    stale: bool = Field(
        description=f"No ingester wrote its status for {STALE_STATUS_S:.0f} s (`posepipe ingest` is not "
        "running), whatever `state` says."
    )
    session_video_id: int | None = Field(description="The live session's video id (its poses and events).")
    last_frame_at: datetime | None
    fps_in: float | None
    fps_analyzed: float | None
    frames_in: int
    frames_queued: int
    dropped: dict[str, int] = Field(description="Frames not analysed, by cause.")
    reconnects: int
    last_error: str | None = Field(description="Passwords masked.")
    status_updated_at: datetime | None
    created_at: datetime

    @classmethod
    def from_rows(
        cls, camera: Camera, status: CameraStatusRow | None, now: datetime | None = None
    ) -> CameraView:
        updated = utc(status.updated_at) if status is not None else None
        stale = updated is None or (now or utcnow()) - updated > timedelta(seconds=STALE_STATUS_S)
        return cls(
            id=camera.id,
            name=camera.name,
            url_masked=camera.url_masked,
            fps=camera.fps,
            exercise=Exercise(camera.exercise) if camera.exercise else None,
            long_lie_s=camera.long_lie_s,
            hands=camera.hands,
            enabled=camera.enabled,
            state=CameraViewState(status.state.value) if status else CameraViewState.NEVER_STARTED,
            stale=stale,
            session_video_id=status.session_video_id if status else None,
            last_frame_at=utc(status.last_frame_at) if status else None,
            fps_in=status.fps_in if status else None,
            fps_analyzed=status.fps_analyzed if status else None,
            frames_in=status.frames_in if status else 0,
            frames_queued=status.frames_queued if status else 0,
            dropped={str(k): int(v) for k, v in (status.dropped or {}).items()} if status else {},
            reconnects=status.reconnects if status else 0,
            last_error=mask_secrets(status.last_error) if status and status.last_error else None,
            status_updated_at=updated,
            created_at=utc(camera.created_at),
        )

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

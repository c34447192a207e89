"""Video lifecycle in the database: sources, the content-hash cache, status, progress and timings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from storage.db import rows_affected
from storage.models import (
    AnalysedFrame,
    AnalyticsState,
    Chunk,
    EventRow,
    PoseRow,
    Source,
    SourceKind,
    Video,
    VideoStatus,
    utcnow,
)


def new_run_token() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AnalysisParams:
    """Everything that changes the poses of a video; part of the cache key."""

    fps: float
    pose_backend: str
    frame_max_side: int
    min_confidence: float

    @property
    def key(self) -> str:
        return (
            f"fps={self.fps:g};backend={self.pose_backend};side={self.frame_max_side};"
            f"conf={self.min_confidence:g}"
        )


def file_source(session: Session, path: str | Path) -> Source:
    uri = str(Path(path).resolve())
    source = session.scalar(select(Source).where(Source.kind == SourceKind.FILE, Source.uri == uri))
    if source is None:
        source = Source(kind=SourceKind.FILE, name=Path(uri).name, uri=uri)
        session.add(source)
        session.flush()
    return source


def find_cached(session: Session, sha256: str, params: AnalysisParams) -> Video | None:
    """The newest finished analysis of this content with these parameters."""
    return session.scalar(
        select(Video)
        .where(Video.sha256 == sha256, Video.params_key == params.key, Video.status == VideoStatus.DONE)
        .order_by(Video.id.desc())
        .limit(1)
    )


def find_reusable(session: Session, sha256: str, params: AnalysisParams) -> Video | None:
    """Any analysis row of this content and parameters (done, failed or interrupted)."""
    return session.scalar(
        select(Video)
        .where(Video.sha256 == sha256, Video.params_key == params.key)
        .order_by(Video.id.desc())
        .limit(1)
    )


def create_video(
    session: Session,
    source: Source,
    path: str,
    sha256: str,
    size_bytes: int,
    params: AnalysisParams,
    exercise: str | None,
) -> Video:
    video = Video(
        source=source,
        path=path,
        sha256=sha256,
        size_bytes=size_bytes,
        params_key=params.key,
        fps_target=params.fps,
        pose_backend=params.pose_backend,
        exercise=exercise,
        status=VideoStatus.QUEUED,
        run_token=new_run_token(),
    )
    session.add(video)
    session.flush()
    return video


def clear_results(session: Session, video_id: int) -> None:
    """Delete everything an analysis produced (poses, frames, chunks, events, analytics state)."""
    for model in (PoseRow, AnalysedFrame, Chunk, EventRow, AnalyticsState):
        session.execute(delete(model).where(model.video_id == video_id))


def restart(session: Session, video: Video, path: str, exercise: str | None) -> Video:
    """Re-run an analysis under the same id: a new run token makes older jobs harmless."""
    clear_results(session, video.id)
    video.path = path
    video.exercise = exercise
    video.status = VideoStatus.QUEUED
    video.error = None
    video.run_token = new_run_token()
    video.frames_total = video.chunks_total = None
    video.frames_done = video.frames_with_person = video.decode_errors = 0
    video.analytics_version = None
    video.started_at = video.ingest_finished_at = video.finished_at = None
    video.ingest_s = video.ingest_wait_s = None
    video.pose_s = 0.0
    video.created_at = utcnow()
    session.flush()
    return video


def restart_analytics(session: Session, video: Video, exercise: str | None) -> None:
    """Keep the poses, recompute tracks and events (new analytics code or another exercise)."""
    for model in (EventRow, AnalyticsState):
        session.execute(delete(model).where(model.video_id == video.id))
    session.execute(update(PoseRow).where(PoseRow.video_id == video.id).values(track_id=None))
    video.exercise = exercise
    video.analytics_version = None
    video.status = VideoStatus.RUNNING
    video.finished_at = None
    session.flush()


def current(session: Session, video_id: int, run: str, *, lock: bool = False) -> Video | None:
    """The video if `run` is still its current run, else None (the job is stale)."""
    query = select(Video).where(Video.id == video_id, Video.run_token == run)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


@dataclass(frozen=True)
class LiveSession:
    """What a live chunk's job reads of its camera session before posing (one query)."""

    status: VideoStatus
    started_at: datetime | None
    source_id: int
    exercise: str | None
    pose_backend: str
    width: int | None
    height: int | None
    next_chunk: int  # the analytics cursor's: 0 before the first chunk is analysed


# Built once: a camera's jobs run it several times a second (building it costs as much as running it).
_LIVE_SESSION = (
    select(
        Video.status,
        Video.started_at,
        Video.source_id,
        Video.exercise,
        Video.pose_backend,
        Video.width,
        Video.height,
        AnalyticsState.next_chunk,
    )
    .outerjoin(AnalyticsState, AnalyticsState.video_id == Video.id)
    .where(Video.id == bindparam("video_id"), Video.run_token == bindparam("run"))
)


def live_session(session: Session, video_id: int, run: str) -> LiveSession | None:
    """The session if `run` is still its current run (as `current`), with its analytics cursor."""
    row = session.execute(_LIVE_SESSION, {"video_id": video_id, "run": run}).one_or_none()
    if row is None:
        return None
    return LiveSession(*row[:-1], next_chunk=row.next_chunk or 0)


def mark_failed(session: Session, video_id: int, run: str, error: str) -> bool:
    """Fail the run (once: the first error is the one reported). False if the run is stale."""
    result = session.execute(
        update(Video)
        .where(Video.id == video_id, Video.run_token == run, Video.status != VideoStatus.FAILED)
        .values(status=VideoStatus.FAILED, error=error[:4000], finished_at=utcnow())
    )
    return bool(rows_affected(result))

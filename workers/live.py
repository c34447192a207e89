"""Live camera jobs: pose a chunk of a camera session and analyse it in the same job, in order.

A session's jobs run one at a time (RQ RateLimit per session), so one job can pose, store
and analyse: the engine saved in analytics_state carries tracks, repetitions and fall
state across jobs. A chunk whose newest frame is older than `live_max_lag_s` when its job
starts is dropped and counted: the freshest frames matter, and posing old ones only grows
the lag; workers that are behind drop every other chunk before that (see `drop_cause`).
Each worker keeps a pose model per session and continues MediaPipe's tracking when a chunk
starts soon after the last frame that model posed, even if another worker posed a chunk in
between (a reset costs an inference on a blank frame and a detection; live results need not be
reproducible chunk by chunk the way a file's are; see workers.context).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from analytics.engine import ANALYTICS_VERSION, AnalyticsEngine, FrameOutcome
from analytics.events import Event
from pipeline import keys, payload
from pipeline.errors import FramesMissingError
from pipeline.job_types import ChunkJob, LiveChunkResult, LiveFinishResult, RunJob
from pose.types import FramePoses
from storage import analytics_state, cameras, events, poses, videos
from storage.models import VideoStatus, utcnow
from workers import live_view
from workers.context import current

log = logging.getLogger(__name__)


def live_chunk(job: ChunkJob) -> LiveChunkResult:
    ctx = current()
    video_id, run, chunk_idx, seqs = job.video_id, job.run, job.chunk_idx, job.seqs
    with ctx.db.session() as session:
        live = videos.live_session(session, video_id, run)
    if live is None or live.status is not VideoStatus.RUNNING or live.started_at is None:
        ctx.frames.release(video_id, run, seqs)
        return LiveChunkResult(video_id=video_id, chunk_idx=chunk_idx, skipped="session over")
    origin, source_id, exercise = live.started_at, live.source_id, live.exercise
    # A live session's cursor moves past each chunk posed (dropped ones are skipped).
    posed_previous = chunk_idx > 0 and live.next_chunk == chunk_idx
    resolution_wh = (live.width or 1, live.height or 1)
    try:
        blobs = ctx.frames.payloads(video_id, run, seqs)
    except FramesMissingError as exc:
        return _drop(ctx, job, "expired", f"{exc}")
    # From the newest frame's header: a chunk dropped (every other one while workers are
    # behind) is not decoded.
    lag_s = time.time() - (origin.timestamp() + payload.pts_s(blobs[-1]))
    cause = drop_cause(lag_s, posed_previous, ctx.settings.live_thin_lag_s, ctx.settings.live_max_lag_s)
    if cause is not None:
        return _drop(ctx, job, cause, f"{lag_s:.1f} s behind")
    frames = [payload.decode(blob) for blob in blobs]

    estimator = ctx.session_estimator(video_id, frames[0].pts_s, live.pose_backend)
    started = time.perf_counter()
    posed = [FramePoses.of(f.seq, f.pts_s, resolution_wh, estimator.estimate(f)) for f in frames]
    pose_s = time.perf_counter() - started
    ctx.note_session_posed(video_id, frames[-1].pts_s)

    found: list[Event] = []
    # One EXISTS a chunk: the live view costs nothing more while nobody watches.
    watched = live_view.is_watched(ctx.redis, video_id)
    tracks: tuple[live_view.TrackState, ...] | None = None
    saved: analytics_state.SavedEngine | None = None
    kept = ctx.take_session_engine(video_id)
    with ctx.db.session() as session:
        cursor = analytics_state.load(session, video_id, kept)
        outcomes: list[FrameOutcome] | None = None
        # A retried job whose chunk was analysed already stores its poses again, nothing more.
        if chunk_idx >= cursor.next_chunk and not cursor.finished:
            # A session's engine is made with its first chunk: the camera's long-lie time then.
            engine = cursor.engine or AnalyticsEngine(
                ctx.analytics_config(exercise, cameras.long_lie_s(session, source_id))
            )
            # Analysed before the poses are stored, so their rows are written with their track
            # ids rather than updated with them.
            outcomes = [engine.process(frame) for frame in posed]
        poses.write_chunk(
            session,
            poses.ChunkWrite(
                video_id,
                chunk_idx,
                seqs.start,
                seqs.stop,
                posed,
                pose_s,
                ctx.name,
                track_ids=None if outcomes is None else [o.track_ids for o in outcomes],
            ),
        )
        if outcomes is not None:
            found = [event for outcome in outcomes for event in outcome.events]
            events.add_events(session, video_id, source_id, found, origin)
            saved = analytics_state.advance(
                session, video_id, cursor.next_chunk, engine, new_next=chunk_idx + 1
            )
            if watched:
                tracks = live_view.engine_tracks(engine)
    if saved is not None:
        ctx.keep_session_engine(video_id, saved)
    elif kept is not None:  # a retried chunk, analysed already: the stored state was left as it was
        ctx.keep_session_engine(video_id, kept)
    if tracks is not None:  # after the commit: the API reads these frames' poses from the database
        live_view.publish(ctx.redis, video_id, origin.timestamp(), frames, tracks)
    ctx.frames.release(video_id, run, seqs)
    return LiveChunkResult(
        video_id=video_id, chunk_idx=chunk_idx, frames=len(posed), events=len(found), lag_s=lag_s
    )


def drop_cause(lag_s: float, posed_previous: bool, thin_lag_s: float, max_lag_s: float) -> str | None:
    """Why a live chunk this far behind is not posed, or None to pose it.

    Past `max_lag_s` a chunk is `stale`. Past `thin_lag_s` the workers are behind: every other
    chunk is dropped (`thinned`), which halves the camera's load while keeping the posed chunks
    one chunk apart, close enough for tracking to continue (workers.context.TRACKING_MAX_GAP_S).
    Without it, behind workers pose only the chunks that are just under `max_lag_s` and drop
    the runs between, so each posed chunk pays a tracking restart and they fall further behind.
    """
    if lag_s > max_lag_s:
        return "stale"
    if lag_s > thin_lag_s and posed_previous:
        return "thinned"
    return None


def _drop(ctx: Any, job: ChunkJob, cause: str, detail: str) -> LiveChunkResult:
    video_id, seqs = job.video_id, job.seqs
    ctx.frames.release(video_id, job.run, seqs)
    ctx.redis.hincrby(keys.live_drops(video_id), cause, len(seqs))
    ctx.redis.expire(keys.live_drops(video_id), ctx.settings.frame_ttl_s)
    log.info("video=%s dropped frames %d-%d (%s: %s)", video_id, seqs.start, seqs.stop - 1, cause, detail)
    return LiveChunkResult(video_id=video_id, chunk_idx=job.chunk_idx, dropped=len(seqs), cause=cause)


def live_finish(job: RunJob) -> LiveFinishResult:
    """The session ended: flush every track's open state, mark the session done."""
    ctx = current()
    video_id, run = job.video_id, job.run
    ctx.forget_session(video_id)
    with ctx.db.session() as session:
        video = videos.current(session, video_id, run)
        if video is None or video.status is not VideoStatus.RUNNING or video.started_at is None:
            return LiveFinishResult(video_id=video_id, skipped="not running")
        cursor = analytics_state.load(session, video_id)
        flushed = 0
        if cursor.engine is not None and not cursor.finished:
            found = cursor.engine.finish()
            events.add_events(session, video_id, video.source_id, found, video.started_at)
            analytics_state.advance(session, video_id, cursor.next_chunk, cursor.engine, finished=True)
            flushed = len(found)
        video.status = VideoStatus.DONE
        video.analytics_version = ANALYTICS_VERSION
        video.finished_at = utcnow()
    return LiveFinishResult(video_id=video_id, events_flushed=flushed)

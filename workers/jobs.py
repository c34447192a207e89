"""RQ jobs: pose one chunk of frames; advance a video's analytics; record a job's final failure.

Every job is idempotent. A pose job replaces its chunk's rows; analytics (in the pose job
when the cursor has reached its chunk, else in an analytics job) moves a compare-and-set
cursor in the same transaction as the events it writes; jobs of a run that was restarted or
has failed do nothing. So a retried, duplicated or abandoned job never doubles or loses a row.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from analytics.engine import ANALYTICS_VERSION, AnalyticsEngine
from analytics.events import Event
from pipeline import keys
from pipeline.errors import FramesMissingError
from pipeline.job_types import AnalyseResult, ChunkJob, PoseChunkResult, RunJob
from pipeline.queue import LIVE_JOB
from pose.estimator import PoseEstimator
from pose.types import FramePoses
from storage import analytics_state, events, poses, videos
from storage.models import Video, VideoStatus, utcnow
from workers.context import WorkerContext, current

log = logging.getLogger(__name__)


def pose_chunk(job: ChunkJob) -> PoseChunkResult:
    ctx = current()
    video_id, run, chunk_idx, seqs = job.video_id, job.run, job.chunk_idx, job.seqs
    with ctx.db.session() as session:
        video = videos.current(session, video_id, run)
        stale = _why_skip(video)
        if stale is None and poses.chunk_done(session, video_id, chunk_idx):
            stale = "chunk already stored"
        backend = video.pose_backend if video is not None else None
    if stale is not None:
        # Still release: a retry after a crash between commit and release must free the window.
        ctx.frames.release(video_id, run, seqs)
        log.info("video=%s chunk %d skipped: %s", video_id, chunk_idx, stale)
        return _result(ctx, video_id, chunk_idx, [], 0.0, skipped=stale)

    estimator = ctx.estimator(backend)  # the video's backend: part of its cache key
    estimator.reset()
    started = time.perf_counter()
    # pose_s includes waiting for frames the reader has not fetched yet: only the first batch,
    # unless Redis or the network is slower than the model.
    posed: list[FramePoses] = []
    shape: tuple[int, ...] | None = None
    for f in ctx.frames.stream(video_id, run, seqs):
        posed.append(FramePoses.of(f.seq, f.pts_s, f.resolution_wh, estimator.estimate(f)))
        shape = f.rgb.shape
    pose_s = time.perf_counter() - started
    forgetting = _forget_ahead(estimator, shape)

    def store(session: Session) -> None:
        if _why_skip(videos.current(session, video_id, run)) is None:
            poses.write_chunk(
                session, poses.ChunkWrite(video_id, chunk_idx, seqs.start, seqs.stop, posed, pose_s, ctx.name)
            )

    try:
        # Idempotent, so it may wait out a database restart instead of re-posing the chunk.
        ctx.db.write_retrying(store, f"video={video_id} chunk {chunk_idx}")
        ctx.frames.release(video_id, run, seqs)
        analysed_here = _analyse_after_posing(ctx, video_id, run, chunk_idx, posed)
        if not analysed_here:
            ctx.queue.enqueue_analytics(video_id, run)
    finally:
        if forgetting is not None:
            forgetting.join()
    return _result(ctx, video_id, chunk_idx, posed, pose_s, analysed_here=analysed_here)


def _forget_ahead(estimator: PoseEstimator, shape: tuple[int, ...] | None) -> threading.Thread | None:
    """The next pose job's reset, started now in a thread: MediaPipe poses its blank frame
    (~20 ms) on the other core while this job stores and analyses its chunk, instead of on the
    posing path of the next job (which, most often, is the same video's next chunk). Joined
    before this job ends, so no job's work outlives it."""
    if shape is None:
        return None
    thread = threading.Thread(
        target=_forget_quietly, args=(estimator, shape), name="posepipe-forget-ahead", daemon=True
    )
    thread.start()
    return thread


def _forget_quietly(estimator: PoseEstimator, shape: tuple[int, ...]) -> None:
    try:
        estimator.forget_ahead(shape)
    except Exception:
        # Nothing is lost: the next job's reset poses the blank frame itself.
        log.exception("forgetting the person ahead of the next chunk failed")


def _result(
    ctx: WorkerContext,
    video_id: int,
    chunk_idx: int,
    posed: list[FramePoses],
    pose_s: float,
    skipped: str | None = None,
    analysed_here: bool = False,
) -> PoseChunkResult:
    estimator = ctx._estimator
    return PoseChunkResult(
        video_id=video_id,
        chunk_idx=chunk_idx,
        frames=len(posed),
        frames_with_person=sum(1 for f in posed if f.poses),
        pose_s=pose_s,
        worker=ctx.name,
        estimator_id=f"{ctx.name}:{id(estimator)}" if estimator is not None else "",
        skipped=skipped,
        analysed_here=analysed_here,
    )


def _why_skip(video: Video | None) -> str | None:
    if video is None:
        return "run superseded"
    if video.status in (VideoStatus.FAILED, VideoStatus.DONE):
        return f"video is {video.status.value}"
    return None


def analyse(job: RunJob) -> AnalyseResult:
    """Feed every stored chunk not yet analysed, in order, to the video's engine; finish at the end."""
    return _analyse_stored(current(), job.video_id, job.run)


def _analyse_after_posing(
    ctx: WorkerContext, video_id: int, run: str, chunk_idx: int, posed: list[FramePoses]
) -> bool:
    """Analyse the chunk just stored (and any stored after it) in the pose job itself, if the
    video's analytics has reached it; False if it has not, or if this failed and a job must do it.

    A separate analytics job would read the chunk's poses back and cost RQ another job
    (~9 ms between two jobs of a worker, measured). Going through the same compare-and-set
    cursor keeps events exactly once, whoever gets there first.
    """
    try:
        with ctx.db.session() as session:
            if analytics_state.next_chunk(session, video_id) != chunk_idx:
                return False
        _analyse_stored(ctx, video_id, run, posed=(chunk_idx, posed))
        return True
    except Exception:
        # The pose rows are stored; an analytics job (with its own retries and failure
        # handling) now does this chunk, and reports the error if it is one.
        log.exception("video=%s analysing chunk %d after posing failed; queueing it", video_id, chunk_idx)
        return False


def _analyse_stored(
    ctx: WorkerContext, video_id: int, run: str, posed: tuple[int, list[FramePoses]] | None = None
) -> AnalyseResult:
    """`posed`: a chunk's frames already in memory, which need not be read back."""
    with ctx.db.session() as session:
        video = videos.current(session, video_id, run)
        if video is None or video.status == VideoStatus.FAILED:
            return AnalyseResult(video_id=video_id, skipped="run superseded or failed")
        cursor = analytics_state.load(session, video_id)
        if cursor.finished:
            return AnalyseResult(video_id=video_id, skipped="already finished")
        if not cursor.current_version:
            raise RuntimeError(
                f"video {video_id}: analytics state is from another analytics version; re-run with --force"
            )
        source_id, exercise = video.source_id, video.exercise
        resolution_wh = (video.width or 1, video.height or 1)
    engine = cursor.engine or AnalyticsEngine(ctx.analytics_config(exercise))
    next_chunk = cursor.next_chunk
    analysed = 0
    try:
        while True:
            with ctx.db.session() as session:
                if posed is not None and posed[0] == next_chunk:
                    # Exactly what reading them back gives: float32 landmarks either way, and
                    # the video's resolution rather than the (possibly scaled) frame's.
                    frames = [FramePoses.of(f.seq, f.pts_s, resolution_wh, f.poses) for f in posed[1]]
                else:
                    seq_range = poses.chunk_range(session, video_id, next_chunk)
                    if seq_range is None:
                        break
                    frames = poses.read_frames(session, video_id, *seq_range, resolution_wh)
                analyse_frames(session, engine, video_id, source_id, frames)
                analytics_state.advance(session, video_id, next_chunk, engine)
            next_chunk += 1
            analysed += 1
        finished = _finish_if_complete(ctx, video_id, run, source_id, next_chunk, engine)
    except analytics_state.CursorMoved as exc:
        log.info("video=%s analytics handed over: %s", video_id, exc)
        return AnalyseResult(video_id=video_id, skipped="another analytics job advanced the cursor")
    return AnalyseResult(video_id=video_id, chunks_analysed=analysed, finished=finished)


def analyse_frames(
    session: Session,
    engine: AnalyticsEngine,
    video_id: int,
    source_id: int,
    frames: list[FramePoses],
    wall_origin: datetime | None = None,
) -> list[Event]:
    """Feed frames to the engine; store their track ids and the events they complete."""
    assignments: list[tuple[int, int, int | None]] = []
    found: list[Event] = []
    for frame in frames:
        outcome = engine.process(frame)
        assignments.extend((frame.seq, person, tid) for person, tid in enumerate(outcome.track_ids))
        found.extend(outcome.events)
    poses.set_track_ids(session, video_id, assignments)
    events.add_events(session, video_id, source_id, found, wall_origin)
    return found


def _finish_if_complete(
    ctx: WorkerContext, video_id: int, run: str, source_id: int, next_chunk: int, engine: AnalyticsEngine
) -> bool:
    with ctx.db.session() as session:
        video = videos.current(session, video_id, run)
        if video is None or video.chunks_total is None or next_chunk < video.chunks_total:
            return False
        events.add_events(session, video_id, source_id, engine.finish())
        analytics_state.advance(session, video_id, next_chunk, engine, finished=True)
        video.status = VideoStatus.DONE
        video.analytics_version = ANALYTICS_VERSION
        video.finished_at = utcnow()
    log.info("video=%s done", video_id)
    return True


def on_job_failure(job: Any, connection: Any, exc_type: type, exc_value: BaseException, _tb: Any) -> None:
    """RQ failure callback (every failed attempt, and abandoned jobs): fail the video on the last one."""
    spec: RunJob = job.args[0]
    video_id, run = spec.video_id, spec.run
    if job.should_retry:
        log.warning("video=%s job %s failed, will retry: %s", video_id, job.func_name, exc_value)
        return
    reason = str(exc_value) or exc_type.__name__
    ctx = current()
    if isinstance(spec, ChunkJob) and job.func_name == LIVE_JOB:
        # A live chunk that cannot be analysed is lost frames, not a failed camera session.
        seqs = spec.seqs
        ctx.frames.release(video_id, run, seqs)
        ctx.redis.hincrby(keys.live_drops(video_id), "job_failed", len(seqs))
        log.error("video=%s live chunk failed, its %d frames dropped: %s", video_id, len(seqs), reason)
        return
    if isinstance(exc_value, FramesMissingError):
        reason = (
            f"{reason}; they expired before any worker took them (raise POSEPIPE_FRAME_TTL_S or add workers)"
        )
    with ctx.db.session() as session:
        if videos.mark_failed(session, video_id, run, f"{job.func_name.rsplit('.', 1)[-1]} failed: {reason}"):
            log.error("video=%s failed: %s", video_id, reason)
    ctx.frames.purge(video_id, run)

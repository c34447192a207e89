"""The ingest job: open a queued video, record what it is, feed its frames to the queue, record the outcome.

Runs on the ingest queue for `posepipe enqueue` (the ingester service takes it), is called
directly by `posepipe analyze`, and resumes runs whose queued work was lost (see
workers.reconcile). One process ingests a run at a time: it holds the run's lease in Redis.
If Redis goes away mid-ingest, the ingester waits for it (capped backoff with jitter) and
then resumes: the file is decoded again from the start, and every chunk already stored or
still queued is skipped, so nothing is lost and nothing is posed twice. A file that cannot be
opened or decoded fails its video only, with the reason; the frames it queued are purged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline import keys, routing
from pipeline.backoff import Backoff, BackoffPolicy
from pipeline.errors import IngestError
from pipeline.framestore import Lease
from pipeline.ingest import IngestPlan, IngestResult, IngestStopped, ingest_file
from pipeline.source import VideoFile
from storage import videos
from storage.models import Chunk, ChunkStatus, VideoStatus, utcnow
from workers.context import WorkerContext, current

log = logging.getLogger(__name__)

# The lease outlives a stalled holder by this much; the holder refreshes it every
# LEASE_REFRESH_S, also while it waits for room in the frame window.
LEASE_TTL_S = 60
LEASE_REFRESH_S = 10
# How long an ingest waits for Redis to come back before it fails its video.
REDIS_OUTAGE_LIMIT_S = 600
REDIS_RETRY = BackoffPolicy(base_s=0.5, cap_s=15.0)
# RQ states in which a pose job will still run: its chunk is not lost.
ALIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
# A worker marks a job it took from a queue started a few milliseconds after taking it; a job
# still queued but in no queue this long after being seen so is lost (its worker died between).
TAKEN_GRACE_S = 1.0


def ingest_video(video_id: int, run: str) -> dict[str, Any]:
    result = run_ingest(current(), video_id, run)
    return {"video_id": video_id, "result": asdict(result) if result else None}


def run_ingest(
    ctx: WorkerContext, video_id: int, run: str, should_stop: Callable[[], bool] = lambda: False
) -> IngestResult | None:
    """Ingest (or resume) a run to the end. None when there is nothing (more) for this caller to do."""
    lease = Lease(ctx.redis, video_id, run, owner=f"{ctx.name}:{uuid.uuid4().hex[:8]}", ttl_s=LEASE_TTL_S)
    backoff = Backoff(REDIS_RETRY)
    outage_since: float | None = None
    while True:
        try:
            if not lease.acquire():
                log.info("video=%s another process is ingesting run %s", video_id, run)
                return None
            result = _ingest_pass(ctx, video_id, run, lease, should_stop)
            break
        except RedisError as exc:
            now = time.monotonic()
            outage_since = outage_since or now
            if now - outage_since > REDIS_OUTAGE_LIMIT_S:
                _fail(ctx, video_id, run, f"Redis unavailable for over {REDIS_OUTAGE_LIMIT_S} s: {exc}")
                return None
            delay = backoff.next_delay_s()
            log.warning(
                "video=%s Redis unavailable (%s); resuming the ingest in %.1f s", video_id, exc, delay
            )
            time.sleep(delay)
    if result is None:
        return None

    def record_end(session: Session) -> None:
        video = videos.current(session, video_id, run)
        if video is None:
            return
        video.frames_total = result.frames_total
        video.chunks_total = result.chunks_total
        video.decode_errors = result.decode_errors
        video.ingest_s = (video.ingest_s or 0.0) + result.ingest_s
        video.ingest_wait_s = (video.ingest_wait_s or 0.0) + result.wait_s
        video.ingest_finished_at = utcnow()

    ctx.db.write_retrying(record_end, f"video={video_id} record the end of ingest")
    lease.release()
    # The last chunk may already be analysed; this job finishes the video if so.
    ctx.queue.enqueue_analytics(video_id, run)
    return result


def _ingest_pass(
    ctx: WorkerContext, video_id: int, run: str, lease: Lease, should_stop: Callable[[], bool]
) -> IngestResult | None:
    with ctx.db.session() as session:
        video = videos.current(session, video_id, run)
        if video is None or video.status in (VideoStatus.DONE, VideoStatus.FAILED):
            lease.release()
            return None
        path, fps = video.path, video.fps_target
        done = set(
            session.scalars(
                select(Chunk.idx).where(Chunk.video_id == video_id, Chunk.status == ChunkStatus.DONE)
            )
        )
    settings = ctx.settings
    last_refresh = time.monotonic()

    def keep_going() -> bool:
        nonlocal last_refresh
        if should_stop():
            return False
        if time.monotonic() - last_refresh >= LEASE_REFRESH_S:
            last_refresh = time.monotonic()
            if not lease.refresh():
                raise IngestStopped(f"video {video_id}: the ingest lease was taken over or lost")
        return True

    def skip_chunk(idx: int) -> bool:
        return idx in done or job_alive(ctx.redis, keys.pose_job_id(video_id, run, idx))

    try:
        with VideoFile(path) as source:
            _record_start(ctx, video_id, run, source, fps, resumed=bool(done))
            plan = IngestPlan(
                video_id=video_id,
                run=run,
                fps=fps,
                chunk_frames=settings.chunk_frames,
                max_queued_bytes=int(settings.max_queued_mb * 1e6),
                frame_max_side=settings.frame_max_side,
            )
            return ingest_file(source, plan, ctx.frames, ctx.queue, keep_going, skip_chunk)
    except IngestError as exc:
        log.error("video=%s failed: %s", video_id, exc)
        _fail(ctx, video_id, run, str(exc))
        lease.release()
        return None
    except IngestStopped as exc:
        log.warning("video=%s ingest stopped before the end (%s); the video stays unfinished", video_id, exc)
        lease.release()
        return None


def _record_start(
    ctx: WorkerContext, video_id: int, run: str, source: VideoFile, fps: float, resumed: bool
) -> None:
    info = source.info
    if resumed:
        log.info("video=%s resuming the ingest of run %s", video_id, run)

    def record(session: Session) -> None:
        video = videos.current(session, video_id, run)
        if video is None:
            return
        video.status = VideoStatus.RUNNING
        video.started_at = video.started_at or utcnow()
        video.container, video.codec = info.container, info.codec
        video.width, video.height, video.rotation_deg = info.width, info.height, info.rotation_deg
        video.fps_native, video.duration_s = info.fps_native, info.duration_s
        video.frames_expected = _expected_frames(info.duration_s, info.fps_native, fps)

    ctx.db.write_retrying(record, f"video={video_id} record the start of ingest")


def job_alive(redis: Redis, job_id: str) -> bool:
    """Will this job still run (it exists and is queued, started, scheduled or deferred)?

    A job whose status says queued but which is in no queue was taken by a worker that died
    before starting it: nobody will run it. A living worker marks a job it took started within
    milliseconds, so such a job is looked at again after `TAKEN_GRACE_S` before it is given up."""
    if not Job.exists(job_id, connection=redis):
        return False
    if Job.fetch(job_id, connection=redis).get_status() not in ALIVE_JOB_STATES:
        return False
    if routing.queued_nowhere(redis, [job_id]):
        time.sleep(TAKEN_GRACE_S)
        return not routing.queued_nowhere(redis, [job_id])
    return True


def _fail(ctx: WorkerContext, video_id: int, run: str, reason: str) -> None:
    ctx.db.write_retrying(
        lambda session: videos.mark_failed(session, video_id, run, reason), f"video={video_id} record failure"
    )
    try:
        ctx.frames.purge(video_id, run)
    except RedisError as exc:
        # The frames expire on their own (frame TTL); the failure is what must be recorded.
        log.warning("video=%s could not purge queued frames: %s", video_id, exc)


def _expected_frames(duration_s: float | None, fps_native: float | None, fps: float) -> int | None:
    if not duration_s:
        return None
    rate = fps if fps > 0 and (fps_native is None or fps < fps_native) else fps_native
    return max(1, int(round(duration_s * rate))) if rate else None

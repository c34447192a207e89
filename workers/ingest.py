"""The ingest job: open a queued video, record what it is, feed its frames to the queue, record the outcome.

Runs on the ingest queue for `posepipe enqueue` (the ingester service takes it), is called
directly by `posepipe analyze`, and resumes runs whose queued work was lost (see
workers.reconcile). One process ingests a run at a time: it holds the run's lease in Redis.
If Redis goes away mid-ingest, the ingester waits for it (capped backoff with jitter) and
then resumes: the file is decoded again from the start, and every chunk already stored or
still queued is skipped, so nothing is lost and nothing is posed twice. A file that cannot be
opened or decoded fails its video only, with the reason; the frames it queued are purged.

A long file is cut into parts (pipeline.segments) when there are workers enough to need more
than one ingester: the lease holder decodes the first part and queues the others on the
segment queue, where workers take them when they have nothing to pose (a part stops at a full
window and queues the rest of itself, so no worker waits for frames only workers release).
Every part queues the chunks it owns and adds them to the run's set of queued chunks; whoever
completes that set records the end of the ingest. A part whose frames are not the ones its
packets predicted turns the video's parts off and starts its analysis again as one pass.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.job import Job, JobStatus
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.backoff import Backoff, BackoffPolicy
from pipeline import keys, routing
from pipeline.errors import IngestError
from pipeline.framestore import Lease
from pipeline.ingest import IngestPlan, IngestStopped, SegmentMismatch, Span, ingest_file
from pipeline.job_types import IngestJobResult, IngestResult, RunJob, SegmentJob
from pipeline.segments import SegmentPlan, predict
from pipeline.source import VideoFile
from storage import videos
from storage.models import Chunk, Video, VideoStatus, utcnow
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
# A video whose decoding did not match its packets is ingested in one pass for this long.
SEGMENTS_OFF_TTL_S = 30 * 24 * 3600


def ingest_video(job: RunJob) -> IngestJobResult:
    result = run_ingest(current(), job.video_id, job.run)
    return IngestJobResult(video_id=job.video_id, ingest=result)


def run_ingest(
    ctx: WorkerContext,
    video_id: int,
    run: str,
    should_stop: Callable[[], bool] = lambda: False,
    pose_workers: int | None = None,
) -> IngestResult | None:
    """Ingest (or resume) a run to the end. None when there is nothing (more) for this caller to do.

    `pose_workers`: how many workers will pose it (None: those registered now); a long file gets
    a part for each `settings.workers_per_segment` of them."""
    lease = Lease(ctx.redis, video_id, run, owner=f"{ctx.name}:{uuid.uuid4().hex[:8]}", ttl_s=LEASE_TTL_S)
    backoff = Backoff(REDIS_RETRY)
    outage_since: float | None = None
    while True:
        try:
            if not lease.acquire():
                log.info("video=%s another process is ingesting run %s", video_id, run)
                return None
            result = _ingest_pass(ctx, video_id, run, lease, should_stop, pose_workers)
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
        except SegmentMismatch as exc:
            lease.release()
            new_run = _give_up_segments(ctx, video_id, run, str(exc))
            if new_run is None:
                return None
            return run_ingest(ctx, video_id, new_run, should_stop, pose_workers)
    if result is None:
        return None
    pass_result, parts = result
    if parts is None:
        _record_progress(ctx, video_id, run, pass_result, decode_errors_total=True)
        _record_end(ctx, video_id, run, pass_result.frames_total, pass_result.chunks_total)
    else:
        _part_done(ctx, video_id, run, parts, range(0, pass_result.frames_total), pass_result)
    lease.release()
    return pass_result


def _ingest_pass(
    ctx: WorkerContext,
    video_id: int,
    run: str,
    lease: Lease,
    should_stop: Callable[[], bool],
    pose_workers: int | None,
) -> tuple[IngestResult, SegmentPlan | None] | None:
    with ctx.db.session() as session:
        video = videos.current(session, video_id, run)
        if video is None or video.status in (VideoStatus.DONE, VideoStatus.FAILED):
            lease.release()
            return None
        path, fps = video.path, video.fps_target
        done = _stored_chunks(session, video_id)
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
            plan = _ingest_plan(ctx, video_id, run, fps)
            parts = _plan_parts(ctx, video_id, run, source, fps, pose_workers)
            if parts is None:
                return ingest_file(source, plan, ctx.frames, ctx.queue, keep_going, skip_chunk), None
            segment_plan, spans = parts
            chunk = segment_plan.chunk_frames
            for span in spans[1:]:
                owned = range(span.start // chunk, -(-span.stop // chunk))
                job_id = keys.segment_job_id(video_id, run, span.start)
                if not set(owned) <= done and not job_alive(ctx.redis, job_id):
                    ctx.queue.enqueue_segment(video_id, run, span.start, span.stop)
            first = Span(
                start_pts=None,
                first_seq=0,
                sampler=None,
                seq_from=0,
                seq_to=spans[0].stop,
                expected_pts_s=segment_plan.sampled_pts_s,
            )
            result = ingest_file(source, plan, ctx.frames, ctx.queue, keep_going, skip_chunk, first)
            return result, segment_plan
    except IngestError as exc:
        log.error("video=%s failed: %s", video_id, exc)
        _fail(ctx, video_id, run, str(exc))
        lease.release()
        return None
    except IngestStopped as exc:
        log.warning("video=%s ingest stopped before the end (%s); the video stays unfinished", video_id, exc)
        lease.release()
        return None


def _stored_chunks(session: Session, video_id: int) -> set[int]:
    return set(session.scalars(select(Chunk.idx).where(Chunk.video_id == video_id)))


def _ingest_plan(ctx: WorkerContext, video_id: int, run: str, fps: float) -> IngestPlan:
    settings = ctx.settings
    return IngestPlan(
        video_id=video_id,
        run=run,
        fps=fps,
        chunk_frames=settings.chunk_frames,
        max_queued_bytes=int(settings.max_queued_mb * 1e6),
        frame_max_side=settings.frame_max_side,
    )


def parts_wanted(ctx: WorkerContext, pose_workers: int | None = None) -> int:
    """Parts a long file is cut into: one ingester per `workers_per_segment` pose workers."""
    workers = pose_workers if pose_workers is not None else len(Worker.all(queue=ctx.queue.pose))
    return max(1, -(-workers // ctx.settings.workers_per_segment))


def _plan_parts(
    ctx: WorkerContext, video_id: int, run: str, source: VideoFile, fps: float, pose_workers: int | None
) -> tuple[SegmentPlan, list[range]] | None:
    """The run's plan and the seq range of each part, or None for one pass over the whole file."""
    settings = ctx.settings
    duration_s = source.info.duration_s
    if source.info.photo or not duration_s or duration_s < 2 * settings.segment_min_s:
        return None
    wanted = parts_wanted(ctx, pose_workers)
    if wanted < 2 or ctx.redis.exists(keys.segments_off(video_id)):
        return None
    plan_key = keys.segment_plan(video_id, run)
    stored = ctx.redis.hgetall(plan_key)
    if stored:
        # Resumed: the parts queued before keep their seqs (a new packet scan would give the same).
        segment_plan = SegmentPlan.from_redis(stored)
    else:
        started = time.monotonic()
        segment_plan = predict(source.packet_times(), fps, settings.chunk_frames)
        log.info(
            "video=%s packets read in %.2f s: %d frames to sample, %d keyframes",
            video_id,
            time.monotonic() - started,
            segment_plan.frames_total,
            len(segment_plan.keyframes),
        )
    spans = segment_plan.spans(wanted, settings.segment_min_s)
    if len(spans) < 2:
        return None
    ttl = settings.frame_ttl_s
    transaction = ctx.redis.pipeline(transaction=True)
    transaction.hset(plan_key, mapping=segment_plan.to_redis())
    for key in (plan_key, keys.segment_chunks(video_id, run), keys.segment_jobs(video_id, run)):
        transaction.expire(key, ttl)
    transaction.execute()
    log.info("video=%s decoded in %d parts: %s", video_id, len(spans), [(r.start, r.stop) for r in spans])
    return segment_plan, spans


def ingest_segment(job: SegmentJob) -> IngestJobResult:
    """RQ job: decode one part of a long file (frames [seq_from, seq_to)) and queue its chunks."""
    result = run_segment(current(), job.video_id, job.run, job.seq_from, job.seq_to)
    return IngestJobResult(video_id=job.video_id, seq_from=job.seq_from, ingest=result)


def run_segment(
    ctx: WorkerContext, video_id: int, run: str, seq_from: int, seq_to: int
) -> IngestResult | None:
    with ctx.db.session() as session:
        video = videos.current(session, video_id, run)
        if video is None or video.status in (VideoStatus.DONE, VideoStatus.FAILED):
            return None
        path, fps = video.path, video.fps_target
        done = _stored_chunks(session, video_id)
    stored = ctx.redis.hgetall(keys.segment_plan(video_id, run))
    if not stored:
        # Redis lost the run's queued work: a reconciler resumes the whole run.
        log.warning(
            "video=%s part %d-%d: the run's plan is gone; left to the resume", video_id, seq_from, seq_to
        )
        return None
    segment_plan = SegmentPlan.from_redis(stored)
    last_check = time.monotonic()

    def keep_going() -> bool:
        nonlocal last_check
        if time.monotonic() - last_check >= LEASE_REFRESH_S:
            last_check = time.monotonic()
            with ctx.db.session() as session:
                if videos.current(session, video_id, run) is None:
                    return False
        return True

    def skip_chunk(idx: int) -> bool:
        return idx in done or job_alive(ctx.redis, keys.pose_job_id(video_id, run, idx))

    try:
        key = segment_plan.start_for(seq_from)
        span = Span(
            start_pts=key.pts,
            first_seq=key.first_seq,
            sampler=key.sampler,
            seq_from=seq_from,
            seq_to=seq_to,
            expected_pts_s=segment_plan.sampled_pts_s,
            yield_when_full=True,
        )
        with VideoFile(path) as source:
            plan = _ingest_plan(ctx, video_id, run, fps)
            result = ingest_file(
                source, plan, ctx.frames, ctx.queue, keep_going, skip_chunk, span, lambda: _live_waiting(ctx)
            )
    except (SegmentMismatch, IngestError, ValueError) as exc:
        # A file that cannot be cut as predicted (or read from a keyframe) is ingested again in
        # one pass, by a reconciler (the new run's lease is free); a truly broken file fails there.
        _give_up_segments(ctx, video_id, run, str(exc))
        return None
    except IngestStopped as exc:
        log.info("video=%s part %d-%d stopped: %s", video_id, seq_from, seq_to, exc)
        return None
    covered_to = seq_to if result.resume_seq is None else result.resume_seq
    if result.resume_seq is not None:
        ctx.queue.enqueue_segment(video_id, run, result.resume_seq, seq_to)
    _part_done(ctx, video_id, run, segment_plan, range(seq_from, covered_to), result)
    return result


def _live_waiting(ctx: WorkerContext) -> bool:
    """Camera chunks wait for this worker (its own sessions, or the shared live queue): a part it
    decodes stops at its next chunk and queues the rest of itself, as live frames go stale."""
    own = Queue(keys.live_worker_queue(ctx.name), connection=ctx.redis)
    return bool(own.count or Queue(keys.QUEUE_LIVE, connection=ctx.redis).count)


def _part_done(
    ctx: WorkerContext, video_id: int, run: str, plan: SegmentPlan, seqs: range, result: IngestResult
) -> None:
    """Add a part's chunks to the run's queued set; the part that completes it ends the ingest."""
    _record_progress(ctx, video_id, run, result)
    chunk = plan.chunk_frames
    owned = list(range(seqs.start // chunk, -(-seqs.stop // chunk)))
    key = keys.segment_chunks(video_id, run)
    transaction = ctx.redis.pipeline(transaction=True)
    if owned:
        transaction.sadd(key, *owned)
    transaction.expire(key, ctx.settings.frame_ttl_s)
    transaction.scard(key)
    queued = transaction.execute()[-1]
    if queued >= plan.chunks_total:
        _record_end(ctx, video_id, run, plan.frames_total, plan.chunks_total)
        # A resume after this (a pose job lost) reads the packets again, to the same plan.
        ctx.redis.delete(keys.segment_plan(video_id, run), key)


def _give_up_segments(ctx: WorkerContext, video_id: int, run: str, reason: str) -> str | None:
    """Turn the video's parts off and start its analysis again (a new run, nothing kept): its seqs
    so far came from a prediction its decoding did not keep. The new run's token, or None if
    this run had already been replaced."""
    log.warning(
        "video=%s its parts do not decode as its packets say (%s); analysing it in one pass", video_id, reason
    )
    ctx.redis.set(keys.segments_off(video_id), reason[:500], ex=SEGMENTS_OFF_TTL_S)

    def restart(session: Session) -> str | None:
        video = videos.current(session, video_id, run, lock=True)
        if video is None or video.status in (VideoStatus.DONE, VideoStatus.FAILED):
            return None
        return videos.restart(session, video, video.path, video.exercise).run_token

    new_run = ctx.db.write_retrying(restart, f"video={video_id} restart in one pass")
    ctx.frames.purge(video_id, run)
    ctx.redis.delete(
        keys.segment_plan(video_id, run), keys.segment_chunks(video_id, run), keys.segment_jobs(video_id, run)
    )
    return new_run


def segments_alive(redis: Redis, video_id: int, run: str) -> bool:
    """Will one of this run's part jobs still run (so its queued work is not lost)?"""
    job_ids = redis.smembers(keys.segment_jobs(video_id, run))
    return any(job_alive(redis, j.decode() if isinstance(j, bytes) else j) for j in job_ids)


def _record_progress(
    ctx: WorkerContext, video_id: int, run: str, result: IngestResult, decode_errors_total: bool = False
) -> None:
    """Add a pass's (or a part's) time to the video; parts run at once, so by increments."""
    errors = result.decode_errors if decode_errors_total else Video.decode_errors + result.decode_errors

    def record(session: Session) -> None:
        session.execute(
            update(Video)
            .where(Video.id == video_id, Video.run_token == run)
            .values(
                ingest_s=func.coalesce(Video.ingest_s, 0.0) + result.ingest_s,
                ingest_wait_s=func.coalesce(Video.ingest_wait_s, 0.0) + result.wait_s,
                decode_errors=errors,
            )
        )

    ctx.db.write_retrying(record, f"video={video_id} record ingest time")


def _record_end(ctx: WorkerContext, video_id: int, run: str, frames_total: int, chunks_total: int) -> None:
    def record_end(session: Session) -> None:
        video = videos.current(session, video_id, run)
        if video is None:
            return
        video.frames_total = frames_total
        video.chunks_total = chunks_total
        video.ingest_finished_at = utcnow()

    ctx.db.write_retrying(record_end, f"video={video_id} record the end of ingest")
    # The last chunk may already be analysed; this job finishes the video if so.
    ctx.queue.enqueue_analytics(video_id, run)


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

"""Finding analyses whose queued work was lost, so they can be resumed.

Redis keeps nothing on disk: after a restart, queued frames and jobs are gone, and an
ingester that died leaves its run half-queued. The database says what is done; Redis says
what is still queued. A file run that is neither finished nor being ingested (nobody holds
its lease) and has a chunk that is neither stored nor queued is lost: its ingest must be
resumed (workers.ingest.run_ingest skips what survived). A run whose chunks are all stored
but that is not finished only needs its analytics job again.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from pipeline import keys
from storage.models import Chunk, Source, SourceKind, Video, VideoStatus
from workers.context import WorkerContext
from workers.ingest import job_alive, run_ingest, segments_alive

log = logging.getLogger(__name__)

# How often the ingester service looks for lost work: a Redis restart costs at most this
# much delay before resumed ingests refill the queue.
SERVICE_RECONCILE_S = 30.0


@dataclass(frozen=True)
class Verdict:
    video_id: int
    run: str
    resume_ingest: bool
    analytics_only: bool


def check_run(ctx: WorkerContext, video: Video, done: set[int]) -> Verdict | None:
    """What a file run needs to make progress again; None if it is fine (or not ours to judge)."""
    vid, run = video.id, video.run_token
    if ctx.redis.exists(keys.ingest_lease(vid, run)):
        return None  # somebody is ingesting it right now
    if segments_alive(ctx.redis, vid, run):
        return None  # parts of it are still queued or being decoded
    if video.ingest_finished_at is None:
        if job_alive(ctx.redis, keys.ingest_job_id(vid, run)):
            return None  # waiting for the ingester service
        return Verdict(vid, run, resume_ingest=True, analytics_only=False)
    missing = [i for i in range(video.chunks_total or 0) if i not in done]
    if any(not job_alive(ctx.redis, keys.pose_job_id(vid, run, i)) for i in missing):
        return Verdict(vid, run, resume_ingest=True, analytics_only=False)
    if not missing:
        return Verdict(vid, run, resume_ingest=False, analytics_only=True)
    return None


def stalled_runs(ctx: WorkerContext, video_ids: list[int] | None = None) -> list[Verdict]:
    """Unfinished file runs (all, or these) that need resuming."""
    with ctx.db.session() as session:
        query = (
            select(Video)
            .join(Source, Source.id == Video.source_id)
            .where(
                Source.kind == SourceKind.FILE, Video.status.in_([VideoStatus.QUEUED, VideoStatus.RUNNING])
            )
        )
        if video_ids is not None:
            query = query.where(Video.id.in_(video_ids))
        runs = list(session.scalars(query))
        done: dict[int, set[int]] = {}
        for vid, idx in session.execute(
            select(Chunk.video_id, Chunk.idx).where(Chunk.video_id.in_([v.id for v in runs]))
        ):
            done.setdefault(vid, set()).add(idx)
    verdicts = [check_run(ctx, v, done.get(v.id, set())) for v in runs]
    return [v for v in verdicts if v is not None]


class Reconciler:
    """In `posepipe ingest`: every `interval_s`, resume any file run whose queued work was lost."""

    def __init__(self, ctx: WorkerContext, interval_s: float = SERVICE_RECONCILE_S, threads: int = 2) -> None:
        self.ctx = ctx
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="posepipe-resume")
        self._running: dict[int, Future[object]] = {}
        self._thread = threading.Thread(target=self._loop, name="posepipe-reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.round()
            except (RedisError, SQLAlchemyError) as exc:
                log.warning("reconciler: cannot check for lost work yet: %s", exc)

    def round(self) -> list[Verdict]:
        self._running = {vid: f for vid, f in self._running.items() if not f.done()}
        verdicts = [v for v in stalled_runs(self.ctx) if v.video_id not in self._running]
        for verdict in verdicts:
            if verdict.resume_ingest:
                log.warning("video=%s queued work was lost; resuming it", verdict.video_id)
                self._running[verdict.video_id] = self._pool.submit(
                    run_ingest, self.ctx, verdict.video_id, verdict.run, self._stop.is_set
                )
            elif verdict.analytics_only:
                self.ctx.queue.enqueue_analytics(verdict.video_id, verdict.run)
        return verdicts

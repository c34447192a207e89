"""`posepipe analyze` and `posepipe enqueue`: turn files into queued analyses, run them, wait for the result.

Planning reuses stored work by content hash: a finished analysis of the same bytes with
the same parameters is reused (its events are recomputed from the stored poses if the
analytics changed since); `--force` starts over. Running means ingesting in this process
and posing on workers: embedded worker threads without Redis, otherwise the running
`posepipe worker`s, or local worker processes this command starts and stops.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from redis.exceptions import RedisError
from rq import Queue, Worker
from sqlalchemy.exc import SQLAlchemyError

from analytics.engine import ANALYTICS_VERSION
from pipeline import keys
from pipeline.job_types import IngestResult
from pipeline.source import first_frame_shape
from pose.estimator import pose_spec
from posepipe.services import Services
from storage import videos
from storage.models import Video, VideoStatus
from workers.ingest import job_alive, run_ingest
from workers.reconcile import stalled_runs
from workers.runtime import WorkerProcesses, WorkerThreads

log = logging.getLogger(__name__)

HASH_BLOCK_BYTES = 1 << 20
# How often a waiting `analyze` looks for its runs' lost work (after a Redis restart).
RECONCILE_S = 10.0
# Files ingested at once: decoding is CPU-bound, and the frame window already keeps the
# workers fed from one file; two keeps a short file from waiting behind a long one.
INGEST_THREADS = 2
POLL_S = 0.25
# What a folder given to `analyze` contributes: files FFmpeg reads as video or as a photo, by
# their suffix (anything else there, such as notes or CSV files, is left alone). A file named
# on the command line is always tried, whatever its name.
PHOTO_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".jp2",
        ".j2k",
        ".pgm",
        ".ppm",
        ".pbm",
        ".pnm",
        ".pam",
        ".tga",
        ".dpx",
        ".exr",
        ".sgi",
        ".pcx",
        ".qoi",
        ".xbm",
        ".xwd",
        ".sun",
        ".ras",
        ".pic",
        ".pix",
        ".hdr",
        ".dds",
        ".psd",
    }
)
VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".qt",
        ".mkv",
        ".webm",
        ".avi",
        ".ts",
        ".mts",
        ".m2ts",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".asf",
        ".flv",
        ".3gp",
        ".3g2",
        ".ogv",
        ".mxf",
        ".y4m",
        ".gif",
        ".apng",
        ".nut",
        ".dv",
    }
)


class Action(str, Enum):
    CACHED = "cached"  # finished before: nothing to do
    INGEST = "ingest"  # decode and pose from scratch
    ANALYTICS = "analytics"  # poses stored; recompute tracks and events only
    ATTACH = "attach"  # already being processed by running services: wait for it
    FAILED = "failed"  # could not even be registered (missing file, unreadable)


PENDING_ACTIONS = (Action.INGEST, Action.ANALYTICS, Action.ATTACH)


@dataclass(frozen=True)
class AnalyzeOptions:
    fps: float
    exercise: str | None = None
    force: bool = False
    workers: int | None = None  # None: embedded 1 thread; with Redis, 1 process unless workers are running


@dataclass(frozen=True)
class Target:
    path: str
    action: Action
    video_id: int | None = None
    run: str | None = None
    sha256: str | None = None
    error: str | None = None


def expand_folders(paths: Sequence[str]) -> list[str]:
    """Each folder replaced by its videos and photos (by suffix, sorted, not recursing); a
    folder with none stays as it is, so it fails with a reason."""
    out: list[str] = []
    for path in paths:
        folder = Path(path)
        if not folder.is_dir():
            out.append(path)
            continue
        media = sorted(
            str(f)
            for f in folder.iterdir()
            if f.is_file()
            and not f.name.startswith(".")
            and f.suffix.lower() in PHOTO_SUFFIXES | VIDEO_SUFFIXES
        )
        out.extend(media or [path])
    return out


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def plan(services: Services, path: str, options: AnalyzeOptions) -> Target:
    file = Path(path)
    if not file.is_file():
        if file.is_dir():
            reason = "a folder with no video or photo in it"
        else:
            reason = "file does not exist" if not file.exists() else "not a regular file"
        return Target(path, Action.FAILED, error=f"{path}: {reason}")
    try:
        sha256, size = hash_file(file)
    except OSError as exc:
        return Target(path, Action.FAILED, error=f"{path}: cannot read ({exc.strerror or exc})")
    settings = services.settings
    params = videos.AnalysisParams(
        options.fps,
        pose_spec(settings.pose_backend, settings.pose_model, settings.hands),
        settings.frame_max_side,
        settings.pose_min_confidence,
    )
    with services.db.session() as session:
        source = videos.file_source(session, file)
        cached = None if options.force else videos.find_cached(session, sha256, params)
        if cached is not None:
            if cached.analytics_version == ANALYTICS_VERSION and cached.exercise == options.exercise:
                return Target(path, Action.CACHED, cached.id, cached.run_token, sha256)
            videos.restart_analytics(session, cached, options.exercise)
            return Target(path, Action.ANALYTICS, cached.id, cached.run_token, sha256)
        existing = videos.find_reusable(session, sha256, params)
        if existing is not None and not options.force and _in_progress_elsewhere(services, existing):
            return Target(path, Action.ATTACH, existing.id, existing.run_token, sha256)
        if existing is not None:
            video = videos.restart(session, existing, str(file), options.exercise)
        else:
            video = videos.create_video(session, source, str(file), sha256, size, params, options.exercise)
        return Target(path, Action.INGEST, video.id, video.run_token, sha256)


def _in_progress_elsewhere(services: Services, video: Video) -> bool:
    """Is another process (the ingester service, or its workers) already on this run?

    Only with Redis: in embedded mode nothing outlives the command that started it, so an
    unfinished row is a leftover and is restarted.
    """
    if services.embedded or video.status not in (VideoStatus.QUEUED, VideoStatus.RUNNING):
        return False
    if video.ingest_finished_at is not None:
        return True  # all frames queued; the workers will finish it
    return job_alive(services.redis, keys.ingest_job_id(video.id, video.run_token))


def enqueue(services: Services, paths: Sequence[str], options: AnalyzeOptions) -> list[Target]:
    """Register files and queue their ingest for the ingester service; returns at once."""
    if services.embedded:
        raise RuntimeError("enqueue needs a shared queue: set REDIS_URL (or use `posepipe analyze`)")
    targets = [plan(services, p, options) for p in paths]
    ctx = services.worker_context()
    for t in targets:
        if t.action is Action.INGEST and t.video_id is not None and t.run is not None:
            ctx.queue.enqueue_ingest(t.video_id, t.run)
        elif t.action is Action.ANALYTICS and t.video_id is not None and t.run is not None:
            ctx.queue.enqueue_analytics(t.video_id, t.run)
    return targets


def live_workers(services: Services) -> int:
    return len(Worker.all(queue=Queue(keys.QUEUE_POSE, connection=services.redis)))


ProgressCallback = Callable[[list[Video]], None]


def run(
    services: Services,
    targets: Sequence[Target],
    options: AnalyzeOptions,
    on_progress: ProgressCallback | None = None,
) -> None:
    """Process the targets to completion (done or failed)."""
    pending = [t for t in targets if t.action in PENDING_ACTIONS and t.video_id is not None and t.run]
    if pending:
        _Batch(services, pending, options, on_progress).run()


class DatabaseUnreachable(RuntimeError):
    """The database stayed away longer than `settings.db_outage_s` while `analyze` waited."""


class _Batch:
    """One `analyze` call's videos: ingest threads, local workers, the wait, and resumes
    of runs whose queued work was lost (a Redis restart, see workers.reconcile)."""

    def __init__(
        self,
        services: Services,
        pending: list[Target],
        options: AnalyzeOptions,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.services = services
        self.pending = pending
        self.options = options
        self.on_progress = on_progress
        self.stop = threading.Event()
        self.ctx = services.worker_context()
        self.ingests: dict[int, Future[IngestResult | None]] = {}
        self._last_reconcile = time.monotonic()
        self._db_down_since: float | None = None
        # Workers this command starts are not registered yet when the first file is planned.
        self.pose_workers: int | None = None

    def run(self) -> None:
        first = next((t.path for t in self.pending if t.action is Action.INGEST), None)
        workers, self.pose_workers = _start_workers(self.services, self.options, first)
        try:
            with ThreadPoolExecutor(INGEST_THREADS, thread_name_prefix="posepipe-ingest") as self.pool:
                try:
                    for t in self.pending:
                        if t.action is Action.ANALYTICS:
                            self.ctx.queue.enqueue_analytics(t.video_id, t.run)  # type: ignore[arg-type]
                        elif t.action is Action.INGEST:
                            self._ingest(t.video_id, t.run)  # type: ignore[arg-type]
                    while not self._finished():
                        if isinstance(workers, WorkerProcesses):
                            workers.check()
                            time.sleep(POLL_S)
                        else:
                            # Embedded: looks again as soon as a job ends (the last one ends
                            # the video) rather than up to POLL_S later.
                            workers.wait_for_a_job(POLL_S)
                finally:
                    # Before the pool waits for its ingest threads: on an error they must stop too.
                    self.stop.set()
        finally:
            workers.stop()

    def _ingest(self, video_id: int, run: str) -> None:
        self.ingests[video_id] = self.pool.submit(
            run_ingest, self.services.worker_context(), video_id, run, self.stop.is_set, self.pose_workers
        )

    def _finished(self) -> bool:
        try:
            with self.services.db.session() as session:
                rows = [session.get(Video, t.video_id) for t in self.pending]
        except SQLAlchemyError as exc:
            # A restarting database comes back and the workers retry their writes; one that
            # stays away ends the wait with an error instead of a silent hang.
            now = time.monotonic()
            self._db_down_since = self._db_down_since or now
            limit = self.services.settings.db_outage_s
            if now - self._db_down_since >= limit:
                raise DatabaseUnreachable(
                    f"the database has been unreachable for {limit:.0f} s "
                    f"({exc.__class__.__name__}); giving up the wait"
                ) from exc
            log.warning("database unavailable while waiting (%s); retrying", exc.__class__.__name__)
            return False
        self._db_down_since = None
        present = [r for r in rows if r is not None]
        if self.on_progress:
            self.on_progress(present)
        for vid, future in self.ingests.items():
            if future.done() and future.exception() is not None:
                _fail_crashed_ingest(self.services, vid, future.exception())
        if all(r.status in (VideoStatus.DONE, VideoStatus.FAILED) for r in present):
            return True
        if time.monotonic() - self._last_reconcile >= RECONCILE_S:
            self._last_reconcile = time.monotonic()
            self._reconcile()
        return False

    def _reconcile(self) -> None:
        ours = [t.video_id for t in self.pending if t.video_id is not None]
        busy = {vid for vid, f in self.ingests.items() if not f.done()}
        try:
            verdicts = stalled_runs(self.ctx, [vid for vid in ours if vid not in busy])
            for verdict in verdicts:
                if verdict.resume_ingest:
                    log.warning("video=%s queued work was lost; resuming it", verdict.video_id)
                    self._ingest(verdict.video_id, verdict.run)
                elif verdict.analytics_only:
                    self.ctx.queue.enqueue_analytics(verdict.video_id, verdict.run)
        except (RedisError, SQLAlchemyError) as exc:
            log.warning("cannot check for lost work yet: %s", exc)


def _start_workers(
    services: Services, options: AnalyzeOptions, first_path: str | None = None
) -> tuple[WorkerThreads | WorkerProcesses, int | None]:
    """The workers, and how many will pose (None: whichever are registered when a file is planned).
    `first_path`: the first file to be ingested, whose frame size embedded workers warm up for."""
    if services.embedded:
        count = max(1, options.workers or 1)
        max_side = services.settings.frame_max_side
        shape = None if first_path is None else (lambda: first_frame_shape(first_path, max_side))
        threads = WorkerThreads([services.worker_context() for _ in range(count)], first_frame_shape=shape)
        threads.start()
        return threads, count
    running = live_workers(services)
    count = options.workers if options.workers is not None else (0 if running else 1)
    processes = WorkerProcesses(services.settings, count)
    processes.start()
    if count:
        log.info("started %d local worker process(es)", count)
    return processes, (running + count if count else None)


def _fail_crashed_ingest(services: Services, video_id: int, exc: BaseException | None) -> None:
    with services.db.session() as session:
        video = session.get(Video, video_id)
        if video is not None and video.status not in (VideoStatus.DONE, VideoStatus.FAILED):
            log.error("video=%s ingest crashed: %r", video_id, exc)
            videos.mark_failed(session, video_id, video.run_token, f"ingest crashed: {exc!r}")

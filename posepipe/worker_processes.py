"""Worker processes and threads: RQ workers (workers.runtime) run from the deployment's settings.

`WorkerProcesses` runs N workers as separate processes and restarts any that dies, or that
ended itself because its memory passed `worker_max_rss_mb` (workers.memory); each process sets
up logging, opens the services and runs a webhook dispatcher thread (`run_worker_process`).
`WorkerThreads` runs workers as threads on the embedded queue (MediaPipe and PyAV release the
GIL, so threads do overlap).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError
from rq import Queue

from common.backoff import Backoff, BackoffPolicy
from pipeline import keys
from posepipe.logs import filter_native_noise, setup_logging
from posepipe.services import Services
from posepipe.settings import Settings
from workers import reaper
from workers.context import WorkerContext, bound
from workers.memory import MIN_LIFETIME_S, MemoryLimit
from workers.runtime import PosepipeWorker, ThreadWorker, rq_log_level, wake_up

log = logging.getLogger(__name__)

# An idle embedded worker thread starts a new RQ worker after this long (see WorkerThreads._run);
# a stop does not wait for it (WorkerThreads.stop wakes the threads).
THREAD_IDLE_S = 1
# A worker loop that ends on its own (Redis went away under it) starts again after a capped,
# jittered wait; a loop that ran this long counts as healthy and resets the backoff.
WORKER_RESTART_BACKOFF = BackoffPolicy(base_s=0.5, cap_s=15.0)
WORKER_HEALTHY_S = 60
# Restart pacing for crashed worker processes: capped exponential backoff with jitter.
PROCESS_RESTART_BACKOFF = BackoffPolicy(base_s=1.0, cap_s=30.0)
# How often the supervisor looks for dead workers. A dead worker's RQ scheduler (a fork of it)
# keeps its Redis connection open until the supervisor kills it, and Redis may hand that
# connection's pending pop a camera job meanwhile. Polled: the process sentinels cannot be
# waited on, as the forked scheduler holds them open too.
CHECK_INTERVAL_S = 0.1
# Exit status of a worker process that ended itself to be replaced (its memory passed the limit).
RECYCLE_EXIT_CODE = 75


def run_worker_process(
    settings: Settings,
    queues: Sequence[str] = keys.WORKER_QUEUES,
    burst: bool = False,
    max_rss_mb: float = 0.0,
    recycle_after_s: float = MIN_LIFETIME_S,
) -> bool:
    """Entry point of one worker process (and of `posepipe worker --burst`). Every worker
    process also runs a webhook dispatcher thread (posepipe.webhook_dispatcher).

    Returns True when the worker stopped because its memory passed `max_rss_mb` (0: no limit;
    checked after each job, once the process is `recycle_after_s` old): the caller replaces
    the process."""
    # Here, not at the top: only a worker process needs it, and `analyze` need not import httpx.
    from posepipe.webhook_dispatcher import WebhookDispatcher

    filter_native_noise()
    setup_logging(settings.log_level)
    services = Services.open(settings)
    context = services.worker_context()
    stop = threading.Event()
    backoff = Backoff(WORKER_RESTART_BACKOFF)
    dispatcher = WebhookDispatcher.for_services(services)
    dispatcher.start()
    memory_limit = MemoryLimit(max_rss_mb, min_lifetime_s=recycle_after_s)
    try:
        while not stop.is_set():
            started = time.monotonic()
            worker: PosepipeWorker | None = None
            try:
                worker = PosepipeWorker(queues, context=context, memory_limit=memory_limit)
                worker.work(burst=burst, with_scheduler=True, logging_level=rq_log_level(settings.log_level))
            except RedisError as exc:
                log.warning("worker lost Redis: %s", exc)
            if worker is not None and worker.recycle_rss_mb is not None:
                log.warning(
                    "worker pid=%s: resident memory %.0f MiB is over the %g MiB limit "
                    "(POSEPIPE_WORKER_MAX_RSS_MB); replacing the process",
                    os.getpid(),
                    worker.recycle_rss_mb,
                    max_rss_mb,
                )
                return True
            # RQ's work() also returns when Redis failed under it; only a requested stop ends us.
            if burst or (worker is not None and worker.stop_signalled):
                break
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            if time.monotonic() - started > WORKER_HEALTHY_S:
                backoff.reset()
            delay = backoff.next_delay_s()
            log.warning("worker loop ended unexpectedly; starting it again in %.1f s", delay)
            stop.wait(delay)
    finally:
        dispatcher.stop()
        context.close()
        services.close()
    return False


def _worker_process_main(
    settings: Settings, queues: Sequence[str], max_rss_mb: float, recycle_after_s: float
) -> None:
    # A process group of its own, holding RQ's scheduler process too (a fork of this one): a
    # worker killed with SIGKILL leaves that child running forever, and holding the scheduler
    # lock; WorkerProcesses ends the whole group once the worker is gone.
    os.setpgid(0, 0)
    if run_worker_process(settings, queues, max_rss_mb=max_rss_mb, recycle_after_s=recycle_after_s):
        sys.exit(RECYCLE_EXIT_CODE)


class WorkerProcesses:
    """N worker processes, restarted with backoff when one dies unexpectedly, and at once when
    one ended itself to be replaced (memory limit)."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        queues: Sequence[str] = keys.WORKER_QUEUES,
        recycle_after_s: float = MIN_LIFETIME_S,
    ) -> None:
        self.settings = settings
        self.count = count
        self.queues = tuple(queues)
        self.recycle_after_s = recycle_after_s
        self.recycled = 0  # processes replaced because of the memory limit
        self._mp = multiprocessing.get_context("spawn")
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._restarts = Backoff(PROCESS_RESTART_BACKOFF)
        self._stopping = False
        self._context: WorkerContext | None = None  # the reaper's, opened when a worker first dies

    def start(self) -> None:
        for _ in range(self.count):
            self._procs.append(self._spawn())

    def _spawn(self) -> multiprocessing.process.BaseProcess:
        args = (self.settings, self.queues, self.settings.worker_max_rss_mb, self.recycle_after_s)
        proc = self._mp.Process(target=_worker_process_main, args=args, daemon=False)
        proc.start()
        log.info("started worker process pid=%s", proc.pid)
        return proc

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None and p.is_alive()]

    def check(self) -> None:
        """Replace workers that died (pacing restarts so a crash loop cannot spin), handing
        their work back first."""
        for i, proc in enumerate(self._procs):
            if proc.is_alive() or self._stopping:
                continue
            self._bury(proc)
            if proc.exitcode == RECYCLE_EXIT_CODE:
                self.recycled += 1
                self._procs[i] = self._spawn()
                continue
            delay = self._restarts.next_delay_s()
            log.warning("worker pid=%s exited with %s; restarting in %.1f s", proc.pid, proc.exitcode, delay)
            time.sleep(delay)
            self._procs[i] = self._spawn()

    def supervise(self) -> None:
        """Run until SIGTERM/SIGINT, then stop the workers (each finishes its current job)."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        while not stop.wait(CHECK_INTERVAL_S):
            self.check()
        self.stop()

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stopping = True
        for proc in self._procs:
            if proc.is_alive() and proc.pid is not None:
                proc.terminate()  # SIGTERM: RQ's warm shutdown finishes the job in hand
        deadline = time.monotonic() + timeout_s
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker pid=%s did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.join()
            self._bury(proc)
        self._procs.clear()
        if self._context is not None:
            self._context.db.dispose()
            self._context = None

    def _reaper_context(self) -> WorkerContext:
        # A failure callback (a job out of retries) needs a worker context; no model is loaded.
        if self._context is None:
            self._context = Services.open(self.settings, migrate=False).worker_context()
        return self._context

    def _bury(self, proc: multiprocessing.process.BaseProcess) -> None:
        """A worker process is gone: end what is left of its group, and hand its running jobs
        and its camera sessions to the other workers now rather than when its heartbeat lapses
        (workers.reaper). A worker that stopped cleanly deregistered itself: nothing to do."""
        _end_group(proc)
        if proc.pid is None:
            return
        try:
            context = self._reaper_context()
            with bound(context):
                reaper.reap(context.redis, proc.pid)
        except RedisError as exc:
            # Redis is away: the heartbeat path retries the jobs once it is back.
            log.warning("worker pid=%s: could not hand its jobs back: %s", proc.pid, exc)


def _end_group(proc: multiprocessing.process.BaseProcess) -> None:
    """Kill what is left of a dead worker process's group (its RQ scheduler, if the worker
    could not stop it)."""
    if proc.pid is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return  # nothing left: the worker stopped its scheduler itself
    log.warning("worker pid=%s left processes behind; killed them", proc.pid)


class WorkerThreads:
    """Embedded mode: N workers as threads of this process, on the in-process queue.

    Each thread also listens, first, on a queue of its own where `stop()` puts a `wake_up` job:
    an idle thread waits for work in a blocking pop for up to THREAD_IDLE_S, and a command that
    has its result would otherwise wait that long (1 s of `posepipe analyze`'s time to result).
    """

    def __init__(
        self,
        contexts: Sequence[WorkerContext],
        queues: Sequence[str] = keys.WORKER_QUEUES,
        first_frame_shape: Callable[[], tuple[int, ...] | None] | None = None,
    ) -> None:
        """`first_frame_shape`: the shape of the first frame the threads will pose (see _warm_up)."""
        self._stop = threading.Event()
        self._job_done = threading.Event()
        self._first_frame_shape = first_frame_shape
        self._shape_lock = threading.Lock()
        self._shape: tuple[int, ...] | None = None
        self._shape_asked = False
        # Unique per thread: a wake-up is only ever taken by the thread it is for.
        self._wake_queues = [f"{keys.PREFIX}:wake:{uuid.uuid4().hex}" for _ in contexts]
        self._threads = [
            threading.Thread(
                target=self._run, args=(ctx, (wake, *queues)), name=f"posepipe-worker-{i}", daemon=True
            )
            for i, (ctx, wake) in enumerate(zip(contexts, self._wake_queues, strict=True))
        ]
        self.contexts = list(contexts)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _run(self, ctx: WorkerContext, queues: tuple[str, ...]) -> None:
        # A new RQ worker each round, as run_worker_process does. One worker reused for every
        # round once failed to register its birth ("There exists an active worker named ...
        # already", CI, 2026-11-29; why is not known); the exception ended the thread and the
        # analysis waited for ever. Whatever ends a round, the thread goes on.
        backoff = Backoff(WORKER_RESTART_BACKOFF)
        try:
            self._warm_up(ctx)
        except Exception:
            # The first job that needs the model fails with the same error, on its video.
            log.exception("embedded worker could not load the pose model ahead of its first job")
        while not self._stop.is_set():
            try:
                ThreadWorker(queues, context=ctx, stopping=self._stop, job_done=self._job_done).work(
                    max_idle_time=THREAD_IDLE_S, logging_level="WARNING"
                )
                backoff.reset()
            except Exception:
                delay = backoff.next_delay_s()
                log.exception("embedded worker failed; starting it again in %.1f s", delay)
                self._stop.wait(delay)

    def _warm_up(self, ctx: WorkerContext) -> None:
        """Load the model now, while the ingester decodes the first chunk, not after it; and,
        when the first frame's shape is known, pose the blank frame the first pose job's reset
        would pose (workers.jobs._forget_ahead does the same between jobs): MediaPipe sets up its
        inference on its first frame (0.2-0.4 s), which is then off the path to the first pose.
        The graph sees the same frames in the same order as without it."""
        estimator = ctx.estimator()
        with self._shape_lock:  # asked once for all threads
            if not self._shape_asked and self._first_frame_shape is not None:
                self._shape_asked = True
                self._shape = self._first_frame_shape()
        if self._shape is not None:
            estimator.forget_ahead(self._shape)

    def wait_for_a_job(self, timeout_s: float) -> None:
        """Return when one of the threads has finished a job since the last call, or after
        `timeout_s`: whoever waits for a result looks as soon as it may be there."""
        if self._job_done.wait(timeout_s):
            self._job_done.clear()

    def stop(self) -> None:
        self._stop.set()
        wakes = [
            Queue(name, connection=ctx.redis)
            for ctx, name in zip(self.contexts, self._wake_queues, strict=True)
        ]
        for wake in wakes:
            try:
                wake.enqueue(wake_up, result_ttl=0)
            except RedisError as exc:
                # Only a Redis that went away: the thread still stops when its wait times out.
                log.warning("could not wake an embedded worker to stop it: %s", exc)
        for thread in self._threads:
            thread.join()
        for wake in wakes:
            try:
                wake.delete(delete_jobs=True)  # a wake-up its thread did not need (it was busy)
            except RedisError as exc:
                log.warning("could not remove an embedded worker's wake-up queue: %s", exc)
        for ctx in self.contexts:
            ctx.close()

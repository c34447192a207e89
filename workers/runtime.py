"""Worker runtime: RQ workers that keep one WorkerContext, and so one pose model, for their whole life.

RQ's default worker forks a child per job, which would load the model again for every
job; these run jobs in their own process (SimpleWorker). `WorkerProcesses` runs N of them
as separate processes and restarts any that dies, or that ended itself because its memory
passed `worker_max_rss_mb` (workers.memory); `WorkerThreads` runs them as threads on the
embedded queue (MediaPipe and PyAV release the GIL, so threads do overlap).
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
from typing import Any

from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry, clean_registries
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus

from common.backoff import Backoff, BackoffPolicy
from pipeline import keys, routing
from posepipe.settings import Settings
from workers import reaper
from workers.context import WorkerContext, bound
from workers.memory import MIN_LIFETIME_S, MemoryLimit

log = logging.getLogger(__name__)

# Abandoned jobs (their worker was killed) are found by a worker's maintenance pass; RQ's
# default of 10 minutes is far too slow to re-pose a killed worker's frames.
MAINTENANCE_INTERVAL_S = 15
# An idle embedded worker thread starts a new RQ worker after this long (see WorkerThreads._run);
# a stop does not wait for it (WorkerThreads.stop wakes the threads).
THREAD_IDLE_S = 1
# A running job's registry entry lives this long unless refreshed; it is refreshed every
# HEARTBEAT_INTERVAL_S while the job runs, so a job whose worker was killed is seen as
# abandoned (and retried) within HEARTBEAT_TTL_S + MAINTENANCE_INTERVAL_S.
HEARTBEAT_TTL_S = 30
HEARTBEAT_INTERVAL_S = 5
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
# How soon a worker's RQ scheduler notices it is asked to stop, within its 1 s sleep between rounds.
SCHEDULER_STOP_POLL_S = 0.05


def rq_log_level(level: str) -> str:
    """RQ logs three INFO lines per job; at thousands of jobs per video that is noise."""
    return "DEBUG" if level == "DEBUG" else "WARNING"


class PromptScheduler(RQScheduler):
    """RQ's scheduler (a fork of its worker that queues due retries), stopping within
    SCHEDULER_STOP_POLL_S of a SIGTERM.

    RQ's own finishes its `interval` sleep (1 s) first, and a stopping worker waits for it:
    0.5 s on average at the end of every `posepipe analyze` with worker processes. The loop is
    RQ's, with only the sleep cut short when a stop is asked for.
    """

    def work(self) -> None:
        self._install_signal_handlers()
        self.register_birth()
        while True:
            if self._stop_requested:
                self.stop()
                break
            if self.should_reacquire_locks:
                self.acquire_locks()
            self.heartbeat()
            self.enqueue_scheduled_jobs()
            self._sleep()

    def _sleep(self) -> None:
        until = time.monotonic() + self.interval
        while not self._stop_requested and (left := until - time.monotonic()) > 0:
            time.sleep(min(left, SCHEDULER_STOP_POLL_S))


class PosepipeWorker(SimpleWorker):
    """Executes jobs in-process with its WorkerContext bound (also for failure callbacks).

    RQ's SimpleWorker registers a running job for its whole timeout + 60 s and never
    refreshes it, so a killed worker's job would wait minutes to be retried. This one keeps
    a short heartbeat alive from a side thread while the job runs, as RQ's forking worker
    does from its monitor loop.
    """

    def __init__(
        self,
        queues: Sequence[str],
        *,
        context: WorkerContext,
        memory_limit: MemoryLimit | None = None,
        **kwargs: Any,
    ) -> None:
        # An idle worker blocks in its dequeue for worker_ttl - 15 s and only then runs
        # maintenance (which retries abandoned jobs); RQ's 420 s default would leave a killed
        # worker's job waiting for minutes.
        if keys.QUEUE_LIVE in queues:
            # Before any other: the camera sessions the ingester routes to this worker, whose
            # pose models it holds (pipeline.routing).
            queues = [keys.live_worker_queue(context.name), *queues]
        super().__init__(
            list(queues),
            connection=context.redis,
            maintenance_interval=MAINTENANCE_INTERVAL_S,
            worker_ttl=MAINTENANCE_INTERVAL_S + 15,
            **kwargs,
        )
        self.context = context
        self.stop_signalled = False
        self.memory_limit = memory_limit
        self.recycle_rss_mb: float | None = None  # set when this worker stopped to be replaced
        self._taken_last_pass: set[tuple[str, str]] = set()

    def work(self, *args: Any, **kwargs: Any) -> bool:
        with bound(self.context):
            return super().work(*args, **kwargs)

    def request_stop(self, signum: int, frame: object) -> None:
        # RQ flags a stop only when busy (when idle it just raises); remember it either way.
        self.stop_signalled = True
        super().request_stop(signum, frame)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return HEARTBEAT_TTL_S

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        # RQ's, with PromptScheduler in place of RQScheduler.
        self.scheduler = PromptScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    def clean_registries(self) -> None:
        super().clean_registries()
        self._tend_other_live_queues()
        self._put_back_lost_session_jobs()

    def _put_back_lost_session_jobs(self) -> None:
        """Camera jobs taken from a queue but never started, on two maintenance passes in a row:
        their worker died between the two steps (pipeline.routing.taken_not_started), on a
        queue that others listen to too, so no one worker's death explains them."""
        taken = routing.taken_not_started(self.connection)
        lost = [t for t in taken if t in self._taken_last_pass]
        self._taken_last_pass = set(taken) - set(lost)
        if lost and (queued := routing.put_back(self.connection, lost)):
            log.warning("%d live jobs taken by a worker that died before starting them: queued again", queued)

    def _tend_other_live_queues(self) -> None:
        """Finish what a killed worker left on its own live queue: nobody else cleans it.

        RQ cleans a queue's registries only from workers that listen to it, and a worker
        killed mid-job stays registered until that job's timeout. Its camera job would stay
        "started" for ever, holding the session's RateLimit slot, and the camera's later jobs
        would never run. So RQ's own cleanup runs here on every other worker's live queue: it
        only touches jobs whose heartbeat has lapsed (failure callback, retry onto that queue).
        Jobs then left waiting at the head of a queue nobody takes go to the shared live queue.
        A queue no registered worker listens to is its dead worker's: camera jobs that worker
        had taken but not started are put back, everything goes to the shared queue, and the
        empty queue is forgotten. (A supervisor that saw its worker die did all this at once:
        workers.reaper.)
        """
        mine = keys.live_worker_queue(self.context.name)
        redis = self.connection
        listened: set[str] | None = None
        for queue in routing.live_worker_queues(redis):
            if queue.name == mine or not queue.acquire_maintenance_lock():
                continue  # ours, or another worker is on it
            try:
                if listened is None:
                    listened = {name for w in Worker.all(connection=redis) for name in w.queue_names()}
                orphaned = queue.name not in listened
                started = StartedJobRegistry(queue.name, connection=redis)
                abandoned = started.get_expired_job_ids()
                clean_registries(queue, self._exc_handlers)
                moved = 0
                if orphaned:
                    _, moved = routing.hand_over_dead_queue(redis, queue.name)
                # A job abandoned there means its worker is gone: no need to wait for the next.
                elif abandoned or routing.head_waited_s(redis, queue.name) > routing.STUCK_AFTER_S:
                    moved = routing.evacuate(redis, queue.name, keys.QUEUE_LIVE)
                if moved:
                    log.warning("%d live jobs nobody took on %s went to the shared queue", moved, queue.name)
                if orphaned and queue.count == 0 and started.count == 0:
                    queue.delete(delete_jobs=False)
            finally:
                queue.release_maintenance_lock()

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        done = threading.Event()
        beat = threading.Thread(
            target=self._beat, args=(job, execution, done), name="posepipe-heartbeat", daemon=True
        )
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beat.join()
        self.set_state(WorkerStatus.IDLE)
        if self.memory_limit is not None and (over := self.memory_limit.exceeded()) is not None:
            # RQ's loop ends before taking another job; the process is then replaced.
            self.recycle_rss_mb = over
            self._stop_requested = True

    def _beat(self, job: Job, execution: Execution, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_INTERVAL_S):
            try:
                self.maintain_heartbeats(job, execution)
            except RedisError as exc:
                # Redis is away: the job goes on; if Redis stays away long enough the job
                # is retried elsewhere, and its writes are idempotent.
                log.warning("job %s: heartbeat failed: %s", job.id, exc)


class ThreadWorker(PosepipeWorker):
    """A worker in a non-main thread: timeouts by timer, and no signal handlers (only the
    main thread may install them); it stops by going idle, or when `stopping` is set, before
    it takes another job."""

    death_penalty_class = TimerDeathPenalty

    def __init__(
        self,
        queues: Sequence[str],
        *,
        context: WorkerContext,
        stopping: threading.Event | None = None,
        job_done: threading.Event | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(queues, context=context, **kwargs)
        self.stopping = stopping or threading.Event()
        self.job_done = job_done or threading.Event()

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            self.job_done.set()

    def _install_signal_handlers(self) -> None:
        return None

    def check_for_suspension(self, burst: bool) -> None:
        # RQ calls this at the top of every round of its work loop, before it waits for a job,
        # and ends the loop on StopRequested: the one place a stop is taken between jobs.
        if self.stopping.is_set():
            raise StopRequested
        super().check_for_suspension(burst)


def wake_up() -> None:
    """The job WorkerThreads.stop queues for each of its threads: it does nothing, but taking it
    ends the thread's wait for work at once, and the thread then sees that it should stop."""


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
    from posepipe.logs import filter_native_noise, setup_logging
    from posepipe.services import Services
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
        from posepipe.services import Services

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

"""Worker runtime: RQ workers that keep one WorkerContext, and so one pose model, for their whole life.

RQ's default worker forks a child per job, which would load the model again for every
job; these run jobs in their own process (SimpleWorker). Running them (as processes that
are restarted, or as threads of `analyze`) is posepipe.worker_processes's: it needs the
deployment's settings, logging, services and webhook dispatcher, which live in posepipe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from rq import Queue, Worker
from rq.exceptions import StopRequested
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty

from pipeline import keys, routing
from pipeline.rq_private import HeartbeatWorker, head_waited_s, put_back
from workers.context import WorkerContext, bound
from workers.memory import MemoryLimit

log = logging.getLogger(__name__)

# Abandoned jobs (their worker was killed) are found by a worker's maintenance pass; RQ's
# default of 10 minutes is far too slow to re-pose a killed worker's frames.
MAINTENANCE_INTERVAL_S = 15
# A running job's registry entry lives this long unless refreshed; it is refreshed every
# HEARTBEAT_INTERVAL_S while the job runs, so a job whose worker was killed is seen as
# abandoned (and retried) within HEARTBEAT_TTL_S + MAINTENANCE_INTERVAL_S.
HEARTBEAT_TTL_S = 30
HEARTBEAT_INTERVAL_S = 5


def rq_log_level(level: str) -> str:
    """RQ logs three INFO lines per job; at thousands of jobs per video that is noise."""
    return "DEBUG" if level == "DEBUG" else "WARNING"


class PosepipeWorker(HeartbeatWorker):
    """Executes jobs in-process with its WorkerContext bound (also for failure callbacks).

    RQ's SimpleWorker registers a running job for its whole timeout + 60 s and never
    refreshes it, so a killed worker's job would wait minutes to be retried. This one keeps
    a short heartbeat alive from a side thread while the job runs (pipeline.rq_private), as
    RQ's forking worker does from its monitor loop.
    """

    heartbeat_interval_s = HEARTBEAT_INTERVAL_S

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
        if lost and (queued := put_back(self.connection, lost)):
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
                self.clean_queue_registries(queue)
                moved = 0
                if orphaned:
                    _, moved = routing.hand_over_dead_queue(redis, queue.name)
                # A job abandoned there means its worker is gone: no need to wait for the next.
                elif abandoned or head_waited_s(redis, queue.name) > routing.STUCK_AFTER_S:
                    moved = routing.evacuate(redis, queue.name, keys.QUEUE_LIVE)
                if moved:
                    log.warning("%d live jobs nobody took on %s went to the shared queue", moved, queue.name)
                if orphaned and queue.count == 0 and started.count == 0:
                    queue.delete(delete_jobs=False)
            finally:
                queue.release_maintenance_lock()

    def after_job(self) -> None:
        if self.memory_limit is not None and (over := self.memory_limit.exceeded()) is not None:
            # RQ's loop ends before taking another job; the process is then replaced.
            self.recycle_rss_mb = over
            self.stop_before_next_job()


class ThreadWorker(PosepipeWorker):
    """A worker in a non-main thread: timeouts by timer, and no signal handlers (only the
    main thread may install them); it stops by going idle, or when `stopping` is set, before
    it takes another job."""

    death_penalty_class = TimerDeathPenalty
    handles_signals = False

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

    def check_for_suspension(self, burst: bool) -> None:
        # RQ calls this at the top of every round of its work loop, before it waits for a job,
        # and ends the loop on StopRequested: the one place a stop is taken between jobs.
        if self.stopping.is_set():
            raise StopRequested
        super().check_for_suspension(burst)


def wake_up() -> None:
    """The job posepipe.worker_processes.WorkerThreads.stop queues for each of its threads: it
    does nothing, but taking it ends the thread's wait for work at once, and the thread then sees
    that it should stop."""

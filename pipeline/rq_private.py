"""RQ's private layout: every place posepipe reads or writes what RQ does not publish, and nothing else.

Job hashes and queue lists read and rewritten in Lua (for pipeline.routing), the started
registry's executions and the scheduler's locks (for workers.reaper), and the parts of RQ's
worker and scheduler loops that posepipe's workers replace (for workers.runtime). RQ is held to
one minor line in pyproject.toml, and tests/test_rq_contract.py checks each piece here against
the installed release. It lives in `pipeline` because pipeline.routing uses it (pipeline may
not import workers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry, clean_registries
from rq.scheduler import SCHEDULER_LOCKING_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.timeouts import TimerDeathPenalty
from rq.utils import as_text, now, utcformat, utcparse
from rq.worker import WorkerStatus

log = logging.getLogger(__name__)

# How soon a worker's RQ scheduler notices it is asked to stop, within its 1 s sleep between rounds.
SCHEDULER_STOP_POLL_S = 0.05
# RQ refreshes its worker's key (three Redis commands, each a round trip) in its work loop and
# before and after each dequeue, besides with each job's preparation: three times a job, and a
# live camera makes several jobs a second. A refresh this soon after one that gave the key at
# least as long to live (worker_ttl + 60 s: 90 s here) changes nothing anyone reads: skipped.
HEARTBEAT_MIN_GAP_S = 1.0
# The started-registry score (an expiry, Unix seconds) given to a dead worker's executions:
# long past, so RQ's cleanup with this cut-off takes exactly them and nothing still running.
_LONG_EXPIRED = 1

# ---- Job hashes and queue lists (pipeline.routing) ----

# Point jobs at a new queue: their origin (where RateLimit will push the held ones), and the
# list they are queued in, where they count as queued now (the stuck test reads that time).
# Atomic, so a job is never in both queues, or in neither.
# KEYS: old queue list, new queue list. ARGV: job key prefix, new queue name, now, job ids.
_MOVE = """
local moved = 0
for i = 4, #ARGV do
  local job_key = ARGV[1] .. ARGV[i]
  if redis.call('EXISTS', job_key) == 1 then
    redis.call('HSET', job_key, 'origin', ARGV[2])
    if redis.call('LREM', KEYS[1], 0, ARGV[i]) > 0 then
      redis.call('HSET', job_key, 'enqueued_at', ARGV[3])
      redis.call('RPUSH', KEYS[2], ARGV[i])
      moved = moved + 1
    end
  end
end
return moved
"""

# Queue jobs again that a dead worker took: only a job still queued and in no list.
# ARGV: job key prefix, queue key prefix, then (job id, queue name) pairs, newest first.
_PUT_BACK = """
local queued = 0
for i = 3, #ARGV, 2 do
  local queue_key = ARGV[2] .. ARGV[i + 1]
  if redis.call('HGET', ARGV[1] .. ARGV[i], 'status') == 'queued'
     and not redis.call('LPOS', queue_key, ARGV[i]) then
    redis.call('LPUSH', queue_key, ARGV[i])
    queued = queued + 1
  end
end
return queued
"""


def move_jobs(redis: Redis, old: str, new: str, job_ids: list[str]) -> int:
    """Point these jobs at queue `new`, moving those queued on `old` to it; returns how many moved."""
    if not job_ids:
        return 0
    old_key, new_key = (Queue(q, connection=redis).key for q in (old, new))
    args = [Job.redis_job_namespace_prefix, new, utcformat(now()), *job_ids]
    return int(redis.register_script(_MOVE)(keys=[old_key, new_key], args=args))


def put_back(redis: Redis, taken: list[tuple[str, str]]) -> int:
    """Queue these (job id, origin) again at the head of their origin, oldest first, each only if
    it is still queued and in no list (so two workers doing this at once queue it once); returns
    how many were queued."""
    if not taken:
        return 0
    args = [Job.redis_job_namespace_prefix, Queue.redis_queue_namespace_prefix]
    for job_id, origin in reversed(taken):
        args += [job_id, origin]
    return int(redis.register_script(_PUT_BACK)(keys=[], args=args))


def job_origins(redis: Redis, job_ids: list[str]) -> list[str | None]:
    """Each job's origin (the queue it is or was queued on), None for a job that is gone."""
    with redis.pipeline() as pipe:
        for job_id in job_ids:
            pipe.hget(Job.key_for(job_id), "origin")
        origins = pipe.execute()
    return [as_text(origin) if origin else None for origin in origins]


def queued_nowhere(
    redis: Redis, job_ids: list[str], origins: set[str] | None = None
) -> list[tuple[str, str]]:
    """Of these jobs, those whose status says queued but that are in no queue list (taken by a
    worker that has not started them, or never will), with their origin: [(job id, origin)].
    Only those from `origins`, if given."""
    with redis.pipeline() as pipe:
        for job_id in job_ids:
            pipe.hmget(Job.key_for(job_id), "origin", "status")
        states = pipe.execute()
    queued = [
        (job_id, as_text(origin))
        for job_id, (origin, status) in zip(job_ids, states, strict=True)
        if origin is not None
        and (origins is None or as_text(origin) in origins)
        and as_text(status or b"") == JobStatus.QUEUED.value
    ]
    with redis.pipeline() as pipe:
        for job_id, origin in queued:
            pipe.lpos(Queue(origin, connection=redis).key, job_id)
        positions = pipe.execute()
    return [taken for taken, position in zip(queued, positions, strict=True) if position is None]


def head_waited_s(redis: Redis, queue_name: str) -> float:
    """How long the job at the head of this queue has waited there (0 when it is empty)."""
    head = redis.lindex(Queue(queue_name, connection=redis).key, 0)
    enqueued = redis.hget(Job.key_for(as_text(head)), "enqueued_at") if head else None
    if not enqueued:
        return 0.0
    return time.time() - utcparse(as_text(enqueued)).timestamp()


# ---- The started registry and the scheduler's locks (workers.reaper) ----


def abandon_execution(redis: Redis, job_id: str, composite_key: str) -> bool:
    """Run RQ's abandoned-job handling on this execution now; False if it is no longer running."""
    origin = redis.hget(Job.key_for(job_id), "origin")
    if origin is None:
        return False  # the job expired or was deleted
    # A timer, not SIGALRM, bounds the failure callback: the supervisor may not be the main thread.
    registry = StartedJobRegistry(as_text(origin), connection=redis, death_penalty_class=TimerDeathPenalty)
    # XX: only an entry still there (the job may have finished as the worker died).
    if not redis.zadd(registry.key, {composite_key: _LONG_EXPIRED}, xx=True, ch=True):
        return False
    registry.cleanup(timestamp=_LONG_EXPIRED)
    return True


def scheduler_locks(redis: Redis) -> Iterator[tuple[str, str]]:
    """Every scheduler lock held: (queue name, name of the RQ scheduler holding it)."""
    for key in redis.scan_iter(match=SCHEDULER_LOCKING_KEY_TEMPLATE % "*"):
        holder = redis.get(key)
        if holder is not None:
            yield as_text(key).removeprefix(SCHEDULER_LOCKING_KEY_TEMPLATE % ""), as_text(holder)


def release_scheduler_lock(redis: Redis, queue_name: str, holder: str) -> bool:
    """Free this queue's scheduler lock if `holder` still holds it."""
    return bool(release_lock(redis, SCHEDULER_LOCKING_KEY_TEMPLATE % queue_name, holder))


# ---- RQ's worker and scheduler loops (workers.runtime) ----


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


class HeartbeatWorker(SimpleWorker):
    """RQ's SimpleWorker with what posepipe's workers (workers.runtime) change of its private flow:
    the PromptScheduler in place of RQ's, a job run with a heartbeat kept from a side thread,
    a stop taken before the next job, and no signal handlers when `handles_signals` is off.

    RQ's SimpleWorker registers a running job for its whole timeout + 60 s and never refreshes
    it; this one refreshes its registration every `heartbeat_interval_s` while the job runs, as
    RQ's forking worker does from its monitor loop.
    """

    heartbeat_interval_s: float  # set by each subclass
    handles_signals: bool = True  # only the main thread may install them

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

    _key_expires_at: float = float("-inf")  # time.monotonic() when the worker key expires

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        ttl = timeout or self.worker_ttl + 60
        beat_at = time.monotonic()
        if pipeline is None and self._key_expires_at >= beat_at + ttl - HEARTBEAT_MIN_GAP_S:
            return
        super().heartbeat(timeout, pipeline)
        self._key_expires_at = beat_at + ttl

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
        self.after_job()

    def after_job(self) -> None:
        """Called after each job that ran to its end, before the worker takes another."""

    def stop_before_next_job(self) -> None:
        """End RQ's work loop before it takes another job."""
        self._stop_requested = True

    def clean_queue_registries(self, queue: Queue) -> None:
        """RQ's own cleanup of a queue's registries, with this worker's exception handlers (as it
        runs them on the queues the worker listens to)."""
        clean_registries(queue, self._exc_handlers)

    def _install_signal_handlers(self) -> None:
        if self.handles_signals:
            super()._install_signal_handlers()

    def _beat(self, job: Job, execution: Execution, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_interval_s):
            try:
                self.maintain_heartbeats(job, execution)
            except RedisError as exc:
                # Redis is away: the job goes on; if Redis stays away long enough the job
                # is retried elsewhere, and its writes are idempotent.
                log.warning("job %s: heartbeat failed: %s", job.id, exc)

"""What posepipe relies on of RQ's private layout, one test each (issue 20, item 2).

pyproject.toml admits one minor line of RQ; a release that changes any of these fails here
first, rather than in a worker. Where each is used is named in its test.
"""

from __future__ import annotations

import inspect

import fakeredis
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry, clean_registries
from rq.scheduler import SCHEDULER_LOCKING_KEY_TEMPLATE, RQScheduler
from rq.timeouts import TimerDeathPenalty
from rq.utils import now, utcformat

from pipeline import rq_private


@pytest.fixture
def redis() -> fakeredis.FakeStrictRedis:
    return fakeredis.FakeStrictRedis()


def test_a_worker_has_its_exception_handlers_and_stop_flag(redis: fakeredis.FakeStrictRedis) -> None:
    # pipeline.rq_private.HeartbeatWorker: clean_registries(queue, self._exc_handlers) on other
    # workers' live queues; `_stop_requested = True` ends RQ's loop before the next job (memory limit).
    worker = SimpleWorker([Queue("a", connection=redis)], connection=redis)
    assert isinstance(worker._exc_handlers, list)
    assert worker._stop_requested is False
    assert list(inspect.signature(clean_registries).parameters) == ["queue", "exception_handlers"]


def test_the_scheduler_loop_is_made_of_what_prompt_scheduler_calls(redis: fakeredis.FakeStrictRedis) -> None:
    # pipeline.rq_private.PromptScheduler.work is RQ's loop with a shorter sleep: it reads these.
    scheduler = RQScheduler([Queue("a", connection=redis)], connection=redis)
    assert scheduler._stop_requested is False
    assert scheduler.interval > 0
    for name in (
        "_install_signal_handlers",
        "register_birth",
        "register_death",
        "stop",
        "heartbeat",
        "enqueue_scheduled_jobs",
        "acquire_locks",
        "release_locks",
    ):
        assert callable(getattr(scheduler, name)), name
    assert isinstance(scheduler.should_reacquire_locks, bool)
    worker = SimpleWorker([Queue("a", connection=redis)], connection=redis)
    # pipeline.rq_private.HeartbeatWorker replaces RQ's _start_scheduler (same parameters) and
    # execute_job, and skips _install_signal_handlers in a thread.
    assert list(inspect.signature(worker._start_scheduler).parameters) == [
        "burst",
        "logging_level",
        "date_format",
        "log_format",
    ]
    for name in (
        "prepare_execution",
        "perform_job",
        "maintain_heartbeats",
        "set_state",
        "_install_signal_handlers",
    ):
        assert callable(getattr(worker, name)), name


def test_a_scheduler_lock_is_a_key_named_by_the_template_holding_the_scheduler(
    redis: fakeredis.FakeStrictRedis,
) -> None:
    # pipeline.rq_private.scheduler_locks scans these keys and release_scheduler_lock frees one
    # (for workers.reaper.release_dead_schedulers).
    scheduler = RQScheduler([Queue("a", connection=redis)], connection=redis)
    scheduler.acquire_locks()
    key = SCHEDULER_LOCKING_KEY_TEMPLATE % "a"
    assert scheduler.acquired_locks == {"a"}
    assert redis.get(key).decode() == scheduler.name
    assert list(rq_private.scheduler_locks(redis)) == [("a", scheduler.name)]
    assert not rq_private.release_scheduler_lock(redis, "a", "another-scheduler")
    assert rq_private.release_scheduler_lock(redis, "a", scheduler.name)
    assert redis.get(key) is None


def test_a_queued_job_is_a_hash_and_an_id_in_its_queue_list(redis: fakeredis.FakeStrictRedis) -> None:
    # pipeline.rq_private's Lua (_MOVE, _PUT_BACK) and reads: job key = prefix + id with `origin`, `status`,
    # `enqueued_at`; queue list = prefix + name, holding ids.
    queue = Queue("a", connection=redis)
    job = queue.enqueue("builtins.print", 1)
    assert job.key == Job.redis_job_namespace_prefix + job.id
    assert queue.key == Queue.redis_queue_namespace_prefix + "a"
    fields = redis.hgetall(job.key)
    assert fields[b"origin"] == b"a" and fields[b"status"] == b"queued" and b"enqueued_at" in fields
    assert redis.lrange(queue.key, 0, -1) == [job.id.encode()]


def test_moving_a_job_in_lua_is_what_rq_then_reads(redis: fakeredis.FakeStrictRedis) -> None:
    # pipeline.rq_private._MOVE rewrites origin and enqueued_at; RQ must read them back as such.
    old, new = Queue("a", connection=redis), Queue("b", connection=redis)
    job = old.enqueue("builtins.print", 1)
    stamp = utcformat(now())
    args = [Job.redis_job_namespace_prefix, "b", stamp, job.id]
    assert redis.register_script(rq_private._MOVE)(keys=[old.key, new.key], args=args) == 1
    fetched = Job.fetch(job.id, connection=redis)
    assert fetched.origin == "b"
    assert utcformat(fetched.enqueued_at) == stamp
    assert new.job_ids == [job.id] and old.job_ids == []


def test_an_execution_expired_in_the_started_registry_is_handled_as_abandoned(
    redis: fakeredis.FakeStrictRedis,
) -> None:
    # pipeline.rq_private.abandon_execution: a dead worker's execution is the member job_id:execution_id of
    # the started registry, scored by its expiry; scoring it in the past and cleaning up runs
    # RQ's abandoned-job handling (failure callback, retry or the failed registry) at once.
    queue = Queue("a", connection=redis)
    worker = SimpleWorker([queue], connection=redis)
    worker.register_birth()
    queue.enqueue("builtins.print", 1)
    job, _ = Queue.dequeue_any([queue], None, connection=redis)
    worker.prepare_job_execution(job)
    execution = worker.prepare_execution(job)
    assert execution.composite_key == f"{job.id}:{execution.id}"
    registry = StartedJobRegistry("a", connection=redis, death_penalty_class=TimerDeathPenalty)
    assert job.get_status(refresh=True) == JobStatus.STARTED
    assert redis.zadd(registry.key, {execution.composite_key: 1}, xx=True, ch=True) == 1
    registry.cleanup(timestamp=1)
    assert redis.zcard(registry.key) == 0
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert FailedJobRegistry("a", connection=redis).get_job_ids() == [job.id]


def test_a_worker_refreshes_its_key_once_however_often_rq_asks_within_a_second(
    redis: fakeredis.FakeStrictRedis,
) -> None:
    # pipeline.rq_private.HeartbeatWorker.heartbeat: RQ's (timeout, pipeline), skipped when the
    # key was just given at least as long to live; one asking for longer, or pipelined, goes.
    class Worker(rq_private.HeartbeatWorker):
        heartbeat_interval_s = 5

    assert list(inspect.signature(SimpleWorker.heartbeat).parameters) == ["self", "timeout", "pipeline"]
    worker = Worker([Queue("a", connection=redis)], connection=redis)
    worker.heartbeat()
    assert redis.ttl(worker.key) == worker.worker_ttl + 60  # RQ's default
    redis.expire(worker.key, 5)  # as if the refresh had not happened: a skipped one sends nothing
    worker.heartbeat()
    assert redis.ttl(worker.key) == 5
    worker.heartbeat(timeout=worker.worker_ttl + 600)
    assert redis.ttl(worker.key) == worker.worker_ttl + 600
    with redis.pipeline() as pipeline:
        worker.heartbeat(30, pipeline=pipeline)  # with a job's preparation: always sent
        pipeline.execute()
    assert redis.ttl(worker.key) == 30
    worker.heartbeat()  # the key now lives shorter than RQ's default: refreshed
    assert redis.ttl(worker.key) == worker.worker_ttl + 60

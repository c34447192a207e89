"""Live session routing on a real Redis with real RQ registrations: one worker per camera
session, sessions balanced (also with a worker that starts late, and by load), a session
moved with its waiting jobs when its worker goes, and a session's jobs released by RQ's
RateLimit in chunk order."""

import time
from collections import Counter

import pytest
import redis
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.rate_limit import RateLimitRegistry, release_slot

from pipeline import keys
from pipeline.queue import JobQueue
from pipeline.routing import LiveRouter


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def register(client: redis.Redis, name: str) -> Worker:
    """A worker as `posepipe worker` registers it: its own live queue first."""
    worker = Worker([keys.live_worker_queue(name), keys.QUEUE_LIVE], connection=client, name=name)
    worker.register_birth()
    return worker


def job_queue(client: redis.Redis, stuck_after_s: float = 5.0) -> JobQueue:
    queue = JobQueue(client, job_timeout_s=60, retries=1)
    queue.router = LiveRouter(client, stuck_after_s=stuck_after_s, refresh_s=0)
    return queue


def queued_ids(client: redis.Redis, queue_name: str) -> list[str]:
    return Queue(queue_name, connection=client).get_job_ids()


def test_sessions_stay_on_one_worker_and_are_balanced(client: redis.Redis) -> None:
    register(client, "a")
    register(client, "b")
    router = LiveRouter(client, refresh_s=0)
    first = {video: router.queue_for(video) for video in (1, 2, 3)}
    assert set(first.values()) == {keys.live_worker_queue("a"), keys.live_worker_queue("b")}
    assert sorted(Counter(first.values()).values()) == [1, 2]
    assert {video: router.queue_for(video) for video in (1, 2, 3)} == first
    router.forget(2)
    assert router.queue_for(4) == first[2]  # the freed place is the least loaded


def test_a_worker_that_starts_after_the_cameras_gets_its_share(client: redis.Redis) -> None:
    a, b = keys.live_worker_queue("a"), keys.live_worker_queue("b")
    register(client, "a")
    router = LiveRouter(client, refresh_s=0)
    assert {router.queue_for(video) for video in (1, 2, 3, 4)} == {a}
    register(client, "b")
    placed = {video: router.queue_for(video) for video in (1, 2, 3, 4)}
    assert Counter(placed.values()) == {a: 2, b: 2}
    assert {video: router.queue_for(video) for video in (1, 2, 3, 4)} == placed


def placed_three(
    client: redis.Redis, lag_s: float, **router_options: float
) -> tuple[LiveRouter, str, list[int], str]:
    """Three cameras on two workers: the router, the worker with two and its cameras, the other."""
    register(client, "a")
    register(client, "b")
    router = LiveRouter(client, refresh_s=0, **router_options)
    placed = {video: router.queue_for(video, lag_s) for video in (1, 2, 3)}
    busy = Counter(placed.values()).most_common(1)[0][0]
    (spare,) = set(placed.values()) - {busy}
    return router, busy, [video for video, q in placed.items() if q == busy], spare


def test_a_worker_behind_hands_a_camera_to_one_keeping_up_in_turns(client: redis.Redis) -> None:
    router, busy, (first, second), spare = placed_three(client, 0.3, rebalance_every_s=0)
    assert router.queue_for(first, lag_s=1.5) == spare
    # Now the other worker holds two; when it is the one behind, a camera comes back.
    assert router.queue_for(second, lag_s=0.3) == busy
    assert router.queue_for(first, lag_s=1.6) == busy


def test_no_move_between_workers_equally_behind_or_too_soon_again(client: redis.Redis) -> None:
    router, busy, (first, second), spare = placed_three(client, 1.2, rebalance_every_s=0)
    assert [router.queue_for(video, 1.3) for video in (first, second)] == [busy, busy]

    client.flushdb()
    router, busy, (first, second), spare = placed_three(client, 0.3)  # 5 s between moves
    assert router.queue_for(first, lag_s=1.5) == spare
    assert router.queue_for(first, lag_s=0.3) == spare
    assert router.queue_for(second, lag_s=0.3) == busy
    assert router.queue_for(first, lag_s=1.6) == spare  # behind again, but it just moved


def test_no_move_for_load_to_a_worker_holding_as_many(client: redis.Redis) -> None:
    register(client, "a")
    register(client, "b")
    router = LiveRouter(client, refresh_s=0, rebalance_every_s=0)
    placed = {video: router.queue_for(video, 0.2) for video in (1, 2, 3, 4)}
    # Two each: a move would leave one and three, which the count rule would undo.
    assert {video: router.queue_for(video, 1.8) for video in (1, 3)} == {1: placed[1], 3: placed[3]}


def test_without_workers_of_their_own_jobs_use_the_shared_queue(client: redis.Redis) -> None:
    assert LiveRouter(client, refresh_s=0).queue_for(1) == keys.QUEUE_LIVE


def test_a_session_moves_with_its_jobs_when_its_worker_leaves(client: redis.Redis) -> None:
    workers = {"a": register(client, "a"), "b": register(client, "b")}
    queue = job_queue(client)
    for chunk in range(3):  # the first is queued, RQ's RateLimit holds the others
        queue.enqueue_live(7, "r1", chunk, 3 * chunk, 3 * chunk + 3)
    owner = queue.router.queue_for(7)
    assert queued_ids(client, owner) == [keys.live_job_id(7, "r1", 0)]

    gone = next(name for name in workers if keys.live_worker_queue(name) == owner)
    workers[gone].register_death()
    queue.enqueue_live(7, "r1", 3, 9, 12)

    other = queue.router.queue_for(7)
    assert other != owner and keys.is_live_worker_queue(other)
    assert queued_ids(client, owner) == []
    assert queued_ids(client, other) == [keys.live_job_id(7, "r1", 0)]
    held = RateLimitRegistry(keys.live_rate_limit(7), connection=client).get_rate_limited_job_ids()
    assert held == [keys.live_job_id(7, "r1", c) for c in (1, 2, 3)]
    assert {Job.fetch(job_id, connection=client).origin for job_id in held} == {other}


def test_a_worker_that_takes_no_jobs_loses_its_sessions(client: redis.Redis) -> None:
    register(client, "a")
    register(client, "b")
    queue = job_queue(client, stuck_after_s=0.3)
    queue.enqueue_live(7, "r1", 0, 0, 3)
    owner = queue.router.queue_for(7)
    assert queue.router.queue_for(7) == owner  # its job is young: the worker is taking jobs
    time.sleep(0.4)  # nobody takes the queued job
    queue.enqueue_live(7, "r1", 1, 3, 6)
    other = queue.router.queue_for(7)
    assert other != owner
    assert queued_ids(client, other) == [keys.live_job_id(7, "r1", 0)]
    # Moved, the job counts as queued anew: the session stays where it went.
    assert queue.router.queue_for(7) == other


def test_a_sessions_jobs_are_released_in_chunk_order(client: redis.Redis) -> None:
    """RQ's RateLimit orders the jobs it holds by whole seconds, then by id; a camera queues
    several a second, all enqueued here within one second."""
    queue = job_queue(client)
    for chunk in range(12):
        queue.enqueue_live(7, "r1", chunk, 3 * chunk, 3 * chunk + 3)
    queue.enqueue_live_finish(7, "r1")
    ran = []
    shared = Queue(keys.QUEUE_LIVE, connection=client)
    while (popped := client.lpop(shared.key)) is not None:  # as a worker takes them
        job = Job.fetch(popped.decode(), connection=client)
        ran.append(job.id)
        job.set_status(JobStatus.FINISHED)
        release_slot(job)
    assert ran == [keys.live_job_id(7, "r1", c) for c in range(12)] + [keys.live_finish_job_id(7, "r1")]


def running_camera_job(
    client: redis.Redis, worker_name: str, video_id: int, pid: int | None = None
) -> tuple[str, str, Worker]:
    """A session's first chunk running on a worker of its own live queue (as RQ starts it),
    and its second chunk queued, which the session's RateLimit slot holds back:
    (running job id, held job id, the worker)."""
    from rq import Retry, SimpleWorker
    from rq.rate_limit import RateLimit

    from pipeline.job_types import ChunkJob
    from pipeline.queue import LIVE_JOB

    queue = Queue(keys.live_worker_queue(worker_name), connection=client)
    job_ids = [keys.live_job_id(video_id, "r1", chunk) for chunk in (0, 1)]
    for chunk, job_id in enumerate(job_ids):
        queue.enqueue(
            LIVE_JOB, ChunkJob(video_id, "r1", chunk, 3 * chunk, 3 * chunk + 3),
            job_id=job_id, retry=Retry(max=1),
            rate_limit=RateLimit(keys.live_rate_limit(video_id), concurrency=1),
        )  # fmt: skip
        if chunk == 0:
            worker = SimpleWorker([queue], connection=client, name=worker_name)
            worker.pid = worker.pid if pid is None else pid
            worker.register_birth()
            job, _ = worker.dequeue_job_and_maintain_ttl(timeout=1)
            worker.prepare_execution(job)
            worker.prepare_job_execution(job)
    return job_ids[0], job_ids[1], worker


def test_a_killed_workers_camera_job_is_retried_on_the_shared_queue(
    client: redis.Redis, redis_url: str, make_settings, open_services
) -> None:
    """RQ cleans a queue's registries only from workers listening to it: the camera job a
    killed worker was running would stay started, holding the session's slot, for ever."""
    from rq.registry import StartedJobRegistry

    from workers.context import bound
    from workers.runtime import PosepipeWorker

    job_id, held_id, _ = running_camera_job(client, "dead", 7)
    dead_queue = Queue(keys.live_worker_queue("dead"), connection=client)
    # Killed while running it: its heartbeat then lapsed.
    started = StartedJobRegistry(dead_queue.name, connection=client)
    client.zadd(started.key, dict.fromkeys(client.zrange(started.key, 0, -1), 1))

    ctx = open_services(make_settings(redis_url=redis_url)).worker_context()
    with bound(ctx):
        PosepipeWorker([keys.QUEUE_LIVE], context=ctx)._tend_other_live_queues()
    assert_handed_to_the_shared_queue(client, job_id, held_id, dead_queue.name)


def assert_handed_to_the_shared_queue(
    client: redis.Redis, job_id: str, held_id: str, dead_queue: str
) -> None:
    assert Job.fetch(job_id, connection=client).get_status() == JobStatus.QUEUED
    assert queued_ids(client, keys.QUEUE_LIVE) == [job_id]
    assert Job.fetch(job_id, connection=client).origin == keys.QUEUE_LIVE
    assert queued_ids(client, dead_queue) == []
    # Released after it, the held chunk goes to the shared queue too, not back to the dead one.
    assert Job.fetch(held_id, connection=client).origin == keys.QUEUE_LIVE
    held = RateLimitRegistry(keys.live_rate_limit(7), connection=client).get_rate_limited_job_ids()
    assert held == [held_id]


def test_a_dead_workers_camera_job_is_handed_back_before_its_heartbeat_lapses(
    client: redis.Redis, redis_url: str, make_settings, open_services
) -> None:
    """What a supervisor does when it sees its worker process die (workers.reaper): the job that
    worker was running is retried at once, on the shared queue with the held chunk behind it;
    the worker leaves RQ's registry; another worker's running job is left alone."""
    from workers.context import bound
    from workers.reaper import reap

    # Another process on this machine, which its supervisor saw die.
    job_id, held_id, _ = running_camera_job(client, "dead", 7, pid=999_999)
    other_id, _, other = running_camera_job(client, "alive", 8)

    ctx = open_services(make_settings(redis_url=redis_url)).worker_context()
    with bound(ctx):
        (reaped,) = reap(client, 999_999)
    assert reaped.abandoned_job_ids == (job_id,)
    assert_handed_to_the_shared_queue(client, job_id, held_id, keys.live_worker_queue("dead"))
    assert {w.name for w in Worker.all(connection=client)} == {"alive"}
    assert Job.fetch(other_id, connection=client).get_status() == JobStatus.STARTED
    assert other.get_current_job_id() == other_id
    # Nothing of that process is left to hand back.
    assert reap(client, 999_999) == []


def taken_but_not_started(client: redis.Redis, queue_name: str) -> tuple[str, str]:
    """A session's first chunk taken from `queue_name` by a pop that the worker died before
    acting on (status queued, in no list, holding the session's slot), and the second chunk
    held behind it."""
    from rq import Retry
    from rq.rate_limit import RateLimit

    from pipeline.job_types import ChunkJob
    from pipeline.queue import LIVE_JOB

    queue = Queue(queue_name, connection=client)
    job_ids = [keys.live_job_id(7, "r1", chunk) for chunk in (0, 1)]
    for chunk, job_id in enumerate(job_ids):
        queue.enqueue(
            LIVE_JOB, ChunkJob(7, "r1", chunk, 3 * chunk, 3 * chunk + 3), job_id=job_id, retry=Retry(max=1),
            rate_limit=RateLimit(keys.live_rate_limit(7), concurrency=1),
        )  # fmt: skip
    assert client.lpop(queue.key) == job_ids[0].encode()
    return job_ids[0], job_ids[1]


def register_dead(client: redis.Redis, name: str, pid: int) -> None:
    """A worker listening to its own live queue, in a process that has just died."""
    worker = Worker([keys.live_worker_queue(name), keys.QUEUE_LIVE], connection=client, name=name)
    worker.pid = pid
    worker.register_birth()


def test_a_camera_job_its_dead_worker_took_but_never_started_is_put_back(
    client: redis.Redis, redis_url: str, make_settings, open_services
) -> None:
    """Taken by a pop, the job is in no list and no registry, yet holds the session's slot: left
    so, the camera is never analysed again."""
    from workers.context import bound
    from workers.reaper import reap

    register_dead(client, "dead", pid=999_999)
    job_id, held_id = taken_but_not_started(client, keys.live_worker_queue("dead"))
    ctx = open_services(make_settings(redis_url=redis_url)).worker_context()
    with bound(ctx):
        (reaped,) = reap(client, 999_999)
    assert reaped.abandoned_job_ids == () and reaped.restored_jobs == 1
    assert_handed_to_the_shared_queue(client, job_id, held_id, keys.live_worker_queue("dead"))


def test_without_its_supervisor_a_dead_workers_taken_job_is_put_back_by_maintenance(
    client: redis.Redis, redis_url: str, make_settings, open_services
) -> None:
    """The supervisor died too: once the worker's registration is gone, another worker's
    maintenance finds its queue orphaned and does the same."""
    from workers.context import bound
    from workers.runtime import PosepipeWorker

    job_id, held_id = taken_but_not_started(client, keys.live_worker_queue("dead"))
    ctx = open_services(make_settings(redis_url=redis_url)).worker_context()
    with bound(ctx):
        PosepipeWorker([keys.QUEUE_LIVE], context=ctx)._tend_other_live_queues()
    assert_handed_to_the_shared_queue(client, job_id, held_id, keys.live_worker_queue("dead"))
    # Forgotten once empty: nobody listens to it.
    assert keys.live_worker_queue("dead") not in {q.name for q in Queue.all(connection=client)}


def test_a_living_workers_taken_job_is_left_alone(
    client: redis.Redis, redis_url: str, make_settings, open_services
) -> None:
    """The same state on a queue a registered worker listens to is a job being started."""
    from workers.context import bound
    from workers.runtime import PosepipeWorker

    register_dead(client, "busy", pid=4242)  # registered: for all anyone knows, starting the job
    job_id, _ = taken_but_not_started(client, keys.live_worker_queue("busy"))
    ctx = open_services(make_settings(redis_url=redis_url)).worker_context()
    with bound(ctx):
        PosepipeWorker([keys.QUEUE_LIVE], context=ctx)._tend_other_live_queues()
    assert queued_ids(client, keys.QUEUE_LIVE) == []
    assert Job.fetch(job_id, connection=client).origin == keys.live_worker_queue("busy")


def test_a_camera_job_taken_from_the_shared_queue_and_never_started_is_queued_again(
    client: redis.Redis, redis_url: str, make_settings, open_services
) -> None:
    """On the shared queue no one worker's death explains it: a worker may be starting it right
    now. Seen taken on two maintenance passes in a row, it is lost: queued again, once, however
    many workers see it."""
    from workers.context import bound
    from workers.runtime import PosepipeWorker

    job_id, held_id = taken_but_not_started(client, keys.QUEUE_LIVE)
    ctx = open_services(make_settings(redis_url=redis_url)).worker_context()
    with bound(ctx):
        one, other = (PosepipeWorker([keys.QUEUE_LIVE], context=ctx) for _ in range(2))
        one._put_back_lost_session_jobs()
        assert queued_ids(client, keys.QUEUE_LIVE) == []
        other._put_back_lost_session_jobs()
        one._put_back_lost_session_jobs()
        assert queued_ids(client, keys.QUEUE_LIVE) == [job_id]
        other._put_back_lost_session_jobs()
    assert queued_ids(client, keys.QUEUE_LIVE) == [job_id]
    held = RateLimitRegistry(keys.live_rate_limit(7), connection=client).get_rate_limited_job_ids()
    assert held == [held_id]


def test_the_scheduler_locks_of_a_dead_workers_scheduler_are_freed(client: redis.Redis) -> None:
    """Killed with its worker, RQ's scheduler would hold its queues' locks for a minute, and the
    file chunks it was to retry would wait that long. Only a scheduler of this machine whose
    process is gone loses them."""
    import os
    import socket

    from rq.scheduler import RQScheduler

    from workers.reaper import release_dead_schedulers

    def scheduler_holding(queue_name: str, hostname: str, pid: int) -> RQScheduler:
        scheduler = RQScheduler([queue_name], connection=client)
        scheduler.acquire_locks()
        scheduler.register_birth()
        client.hset(scheduler.key, mapping={"hostname": hostname, "pid": pid})
        return scheduler

    here = socket.gethostname()
    scheduler_holding("dead", here, 999_999)
    alive = scheduler_holding("alive", here, os.getpid())
    elsewhere = scheduler_holding("elsewhere", "another-machine", 999_999)
    assert release_dead_schedulers(client, here) == ["dead"]
    assert client.get(RQScheduler.get_locking_key("dead")) is None
    assert client.get(RQScheduler.get_locking_key("alive")) == alive.name.encode()
    assert client.get(RQScheduler.get_locking_key("elsewhere")) == elsewhere.name.encode()

"""Worker runtime: the RQ scheduler a worker forks queues due jobs and stops as soon as it is asked."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import redis
from rq import Queue
from rq.scheduler import RQScheduler

from pipeline.rq_private import PromptScheduler


def test_the_workers_scheduler_queues_due_jobs_and_stops_at_once(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = Queue("prompt-scheduler", connection=client)
    job = queue.enqueue_in(timedelta(seconds=0), "os.getpid")
    scheduler = PromptScheduler([queue.name], connection=client, interval=1)
    scheduler.acquire_locks()
    process = scheduler.start()  # forked, as a worker starts it
    try:
        deadline = time.monotonic() + 10
        while job.id not in queue.get_job_ids():
            assert time.monotonic() < deadline, "the scheduler did not queue the due job"
            time.sleep(0.02)
        time.sleep(0.1)  # it now sleeps for the rest of its 1 s round
        asked = time.monotonic()
        os.kill(process.pid, signal.SIGTERM)
        process.join(10)
        stopped_s = time.monotonic() - asked
    finally:
        if process.is_alive():
            process.kill()
    assert process.exitcode == 0
    # RQ's own scheduler finishes its sleep first: ~0.9 s here.
    assert stopped_s < 0.5
    assert client.get(RQScheduler.get_locking_key(queue.name)) is None  # its lock released

"""A worker killed with SIGKILL mid-job: another worker poses its frames again, none lost, none doubled."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import as_text

from pipeline import keys
from posepipe import analyze as analysis
from posepipe.services import Services
from posepipe.worker_processes import WorkerProcesses
from tests.services import fresh_pg_database, wait_until
from tests.test_pipeline import MULTI_CHUNK, analyse_in_background, assert_same_as_clean_run, clean_rows
from workers.ingest import job_alive


def analyse_on_these_workers(services: Services, clip: Path) -> tuple[analysis.Target, threading.Thread]:
    """`analyze` in the background, starting no workers of its own: the test's take the jobs."""
    opts = analysis.AnalyzeOptions(fps=10, workers=0)
    target = analysis.plan(services, str(clip), opts)
    return target, analyse_in_background(services, target, opts)


@dataclass(frozen=True)
class FaultRun:
    """The multi-chunk clip, the rows of a clean run of it, and services on Redis and a fresh
    PostgreSQL database for the faulty run."""

    clip: Path
    expected_rows: list[tuple[int, int, bytes, bytes | None]]
    services: Services


@pytest.fixture
def fault_run(  # type: ignore[no-untyped-def]
    make_settings, open_services, media_dir: Path, redis_url: str, pg_admin: str
) -> Iterator[FaultRun]:
    clip = media_dir / MULTI_CHUNK
    expected_rows = clean_rows(make_settings, open_services, clip)
    with fresh_pg_database(pg_admin) as pg_url:
        yield FaultRun(
            clip, expected_rows, open_services(make_settings(redis_url=redis_url, database_url=pg_url))
        )


def in_group(pgid: int) -> list[int]:
    """The live processes of a process group (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while being read
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def test_sigkilled_worker_is_recovered_without_loss_or_duplicates(fault_run: FaultRun) -> None:
    clip, expected_rows, services = fault_run.clip, fault_run.expected_rows, fault_run.services
    settings = services.settings
    pose_queue = Queue(keys.QUEUE_POSE, connection=services.redis)
    first, second = WorkerProcesses(settings, 1), WorkerProcesses(settings, 1)
    first.start()
    try:
        wait_until(lambda: len(Worker.all(queue=pose_queue)) == 1, 60, "the first worker")
        target, runner = analyse_on_these_workers(services, clip)
        started = StartedJobRegistry(keys.QUEUE_POSE, connection=services.redis)
        wait_until(lambda: started.count >= 1, 60, "a pose job to start")
        killed = first.pids[0]
        assert in_group(killed) != [], "the worker's group: itself at least"
        os.kill(killed, signal.SIGKILL)
        killed_at = time.monotonic()
        second.start()
        runner.join(timeout=240)
        recovery_s = time.monotonic() - killed_at
        assert not runner.is_alive(), "the analysis did not finish after the worker was killed"
    finally:
        first.stop()
        second.stop()
    # RQ's scheduler, a child of the killed worker, was ended with it, not left running.
    assert in_group(killed) == []
    assert_same_as_clean_run(services, target.video_id, clip, expected_rows)
    print(f"recovered from SIGKILL in {recovery_s:.1f} s")
    # Heartbeat TTL (30 s) + maintenance interval (15 s) + retry interval, with room.
    assert recovery_s < 90


def busy_worker(redis: Redis) -> tuple[int, str, Execution]:
    """Freeze (SIGSTOP) a worker process in the middle of a job: (pid, worker name, execution).
    Frozen, it cannot finish the job between being seen running it and being killed."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for worker in Worker.all(connection=redis):
            execution = worker.execution
            if execution is None or worker.pid is None:
                continue
            os.kill(worker.pid, signal.SIGSTOP)
            if Job.fetch(execution.job_id, connection=redis).get_status() == JobStatus.STARTED:
                return worker.pid, worker.name, execution
            os.kill(worker.pid, signal.SIGCONT)  # it finished as it was frozen: another one
        time.sleep(0.05)
    raise TimeoutError("no worker was seen running a job for 60 s")


def test_a_worker_its_supervisor_sees_die_hands_its_job_back_at_once(fault_run: FaultRun) -> None:
    """Not after its heartbeat lapses (30 s) and another worker's maintenance pass: the
    supervisor knows the process is gone and hands its running job to RQ's abandoned-job
    cleanup before restarting it (workers.reaper)."""
    clip, expected_rows, services = fault_run.clip, fault_run.expected_rows, fault_run.services
    settings = services.settings
    redis = services.redis
    procs = WorkerProcesses(settings, 2)
    procs.start()
    try:
        wait_until(lambda: len(Worker.all(connection=redis)) == 2, 60, "two workers")
        target, runner = analyse_on_these_workers(services, clip)
        killed, name, execution = busy_worker(redis)
        os.kill(killed, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: killed not in procs.pids, 10, "the supervisor to see the worker gone")
        procs.check()
        # Handed back now: the dead worker is deregistered, its execution left the started
        # registry, and the job was retried (one retry used), not failed.
        assert name not in {w.name for w in Worker.all(connection=redis)}
        job = Job.fetch(execution.job_id, connection=redis)
        running = StartedJobRegistry(job.origin, connection=redis)
        assert execution.composite_key not in {as_text(key) for key in redis.zrange(running.key, 0, -1)}
        assert job.get_status() in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.STARTED)
        assert job.retries_left == settings.job_retries - 1
        runner.join(timeout=240)
        assert not runner.is_alive(), "the analysis did not finish after the worker was killed"
        print(f"done {time.monotonic() - killed_at:.1f} s after the kill")
    finally:
        procs.stop()
    assert in_group(killed) == []
    assert_same_as_clean_run(services, target.video_id, clip, expected_rows)


def test_a_job_taken_by_a_worker_that_died_before_starting_it_is_not_alive(redis_url: str) -> None:
    """Its status still says queued, but it is in no queue: the reconciler must see it lost
    (and queue its chunk again), not wait for it for ever."""
    client = Redis.from_url(redis_url)
    queue = Queue(keys.QUEUE_POSE, connection=client)
    for job_id in ("taken", "waiting"):
        queue.enqueue("builtins.print", job_id=job_id)
    assert client.lpop(queue.key) == b"taken"
    assert job_alive(client, "waiting")
    assert not job_alive(client, "taken")
    assert not job_alive(client, "never-queued")


def test_a_file_chunk_taken_by_a_worker_that_died_before_starting_it_is_posed_again(
    fault_run: FaultRun,
) -> None:
    """End to end: a pose job leaves its queue as a worker's blocking pop takes it, and the worker
    dies (with its supervisor) before starting it. Nothing in RQ will ever run it; `analyze`'s
    reconciler must find the chunk lost and queue it again, and the rows must equal a clean run's."""
    clip, expected_rows, services = fault_run.clip, fault_run.expected_rows, fault_run.services
    settings = services.settings
    redis = services.redis
    pose_queue = Queue(keys.QUEUE_POSE, connection=redis)
    target, runner = analyse_on_these_workers(services, clip)  # no worker yet: the jobs wait
    last_chunk = keys.pose_job_id(target.video_id, target.run, 4)  # type: ignore[arg-type]
    wait_until(lambda: last_chunk in pose_queue.job_ids, 120, "the file's last pose job queued")
    # What a worker's BLPOP does to the job it takes: off the list, status untouched.
    assert redis.lrem(pose_queue.key, 1, last_chunk) == 1
    taken_at = time.monotonic()
    assert Job.fetch(last_chunk, connection=redis).get_status() == JobStatus.QUEUED
    procs = WorkerProcesses(settings, 1)
    procs.start()
    try:
        runner.join(timeout=240)
        assert not runner.is_alive(), "the analysis never finished: the taken chunk was not queued again"
    finally:
        procs.stop()
    assert_same_as_clean_run(services, target.video_id, clip, expected_rows)
    print(f"the taken chunk's video was done {time.monotonic() - taken_at:.1f} s after the take")

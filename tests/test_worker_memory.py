"""A worker past its memory limit finishes its job and is replaced; no frame is lost or doubled."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rq import Queue, Worker

from pipeline import keys
from posepipe import analyze as analysis
from posepipe.worker_processes import WorkerProcesses
from tests.services import fresh_pg_database, wait_until
from tests.test_pipeline import MULTI_CHUNK, analyse_in_background, assert_same_as_clean_run, clean_rows
from workers.memory import MemoryLimit, rss_mb


def test_rss_is_read_for_this_process_and_none_for_a_missing_one() -> None:
    ballast = bytearray(64 * 2**20)  # touched pages count as resident
    mine = rss_mb()
    assert mine is not None and mine > 64
    assert rss_mb(os.getpid()) is not None
    assert rss_mb(2**31 - 1) is None  # no such process
    del ballast


def test_memory_limit_fires_only_when_over_and_old_enough() -> None:
    assert MemoryLimit(0, min_lifetime_s=0).exceeded() is None  # 0: no limit
    assert MemoryLimit(10**7, min_lifetime_s=0).exceeded() is None
    over = MemoryLimit(1, min_lifetime_s=0).exceeded()
    assert over is not None and over > 1
    young = MemoryLimit(1, min_lifetime_s=60)
    assert young.exceeded() is None  # a fresh process is never replaced at once
    young.started -= 61
    assert young.exceeded() is not None


def test_workers_over_the_limit_are_replaced_and_the_rows_match_a_clean_run(
    make_settings, open_services, media_dir: Path, redis_url: str, pg_admin: str
) -> None:
    clip = media_dir / MULTI_CHUNK
    expected_rows = clean_rows(make_settings, open_services, clip)

    with fresh_pg_database(pg_admin) as pg_url:
        # Every worker is over 1 MiB: each one runs a single job, then is replaced.
        settings = make_settings(redis_url=redis_url, database_url=pg_url, worker_max_rss_mb=1)
        services = open_services(settings)
        procs = WorkerProcesses(settings, 1, recycle_after_s=0)
        procs.start()
        try:
            pose_queue = Queue(keys.QUEUE_POSE, connection=services.redis)
            wait_until(lambda: len(Worker.all(queue=pose_queue)) == 1, 60, "the worker")
            first_pid = procs.pids[0]
            opts = analysis.AnalyzeOptions(fps=10, workers=0)
            target = analysis.plan(services, str(clip), opts)
            runner = analyse_in_background(services, target, opts)
            started = time.monotonic()
            deadline = started + 300
            while runner.is_alive() and time.monotonic() < deadline:
                procs.check()  # what `posepipe worker` does every second
                runner.join(0.2)
            assert not runner.is_alive(), f"analysis unfinished after {procs.recycled} replacements"
            print(f"{procs.recycled} worker replacements, video done in {time.monotonic() - started:.1f} s")
        finally:
            procs.stop()
        assert_same_as_clean_run(services, target.video_id, clip, expected_rows)
        # Five pose jobs and at least one analytics job, each on a fresh process.
        assert procs.recycled >= 5
        assert first_pid not in procs.pids

"""A worker killed with SIGKILL mid-job: another worker poses its frames again, none lost, none doubled."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from rq import Queue, Worker
from rq.registry import StartedJobRegistry

from pipeline import keys
from posepipe import analyze as analysis
from tests.services import fresh_pg_database, wait_until
from tests.test_pipeline import MULTI_CHUNK, analyse_in_background, assert_same_as_clean_run, clean_rows
from workers.runtime import WorkerProcesses


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


def test_sigkilled_worker_is_recovered_without_loss_or_duplicates(
    make_settings, open_services, media_dir: Path, redis_url: str, pg_admin: str
) -> None:
    clip = media_dir / MULTI_CHUNK
    expected_rows = clean_rows(make_settings, open_services, clip)

    with fresh_pg_database(pg_admin) as pg_url:
        settings = make_settings(redis_url=redis_url, database_url=pg_url)
        services = open_services(settings)
        pose_queue = Queue(keys.QUEUE_POSE, connection=services.redis)
        first, second = WorkerProcesses(settings, 1), WorkerProcesses(settings, 1)
        first.start()
        try:
            wait_until(lambda: len(Worker.all(queue=pose_queue)) == 1, 60, "the first worker")
            opts = analysis.AnalyzeOptions(fps=10, workers=0)
            target = analysis.plan(services, str(clip), opts)
            runner = analyse_in_background(services, target, opts)
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

"""Live recovery: how long a camera goes unanalysed when the worker posing it is killed (SIGKILL).

The real services (`posepipe ingest`, `posepipe worker -n 2`) analyse N RTSP streams (a shared
clip looped by a real GStreamer RTSP server). After a warm-up, one worker process is killed
with SIGKILL; its supervisor starts a new one. For each camera: the longest stretch of
captured time with no analysed frame after the kill (the outage), and the frames dropped by
cause. Cameras on the surviving worker show the normal gap between analysed frames.

    .venv/bin/python -m bench.live_recovery [--streams 2] [--seconds 90]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

import psycopg

from bench.common import (
    add_service_options,
    ensure_redis,
    live_stack,
    media_dir,
    process_tree,
    service_settings,
    stat_fields,
)
from bench.live import REDIS_BENCH_DB, WARMUP_S


def worker_processes(supervisor_pid: int) -> list[int]:
    """The worker processes: the supervisor's children that multiprocessing spawned (not its
    resource tracker, nor the workers' RQ schedulers, which are their children)."""
    children = []
    for pid in process_tree(supervisor_pid):
        fields = stat_fields(pid)
        if fields is None or int(fields[1]) != supervisor_pid:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if b"spawn_main" in cmdline:
            children.append(pid)
    return children


def outages(pg_url: str, killed_at: float, until: float) -> dict[str, object]:
    with psycopg.connect(pg_url) as conn:
        names = dict(conn.execute("SELECT s.id, s.name FROM sources s"))
        sessions = {
            vid: (names.get(source_id, str(source_id)), started.timestamp())
            for vid, source_id, started in conn.execute(
                "SELECT id, source_id, started_at FROM videos WHERE started_at IS NOT NULL"
            )
        }
        captured: dict[str, list[float]] = {}
        for vid, t_s in conn.execute("SELECT video_id, t_s FROM frames"):
            name, origin = sessions[vid]
            captured.setdefault(name, []).append(origin + t_s)
        drops = dict(
            conn.execute(
                "SELECT s.name, st.dropped FROM camera_status st "
                "JOIN cameras c ON c.id = st.camera_id JOIN sources s ON s.id = c.source_id"
            )
        )
    result = {}
    for name, times in sorted(captured.items()):
        # From the last frame analysed before the kill to the end of the window.
        window = [t for t in sorted(times) if t <= until]
        before = [t for t in window if t < killed_at]
        after = [t for t in window if t >= killed_at]
        points = ([before[-1]] if before else [killed_at]) + after + ([] if after else [until])
        longest = max(b - a for a, b in zip(points, points[1:], strict=False)) if len(points) > 1 else None
        first_after = round(after[0] - killed_at, 2) if after else None
        result[name] = {
            "longest_unanalysed_s": round(longest, 2) if longest is not None else None,
            "first_analysed_after_kill_s": first_after,
            "dropped": drops.get(name),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=90.0, help="watched after the kill")
    parser.add_argument("--clip", default="falls/urfall_ds04_fall_while_walking.mp4")
    add_service_options(parser)
    args = parser.parse_args()
    redis_url = f"{ensure_redis()}/{REDIS_BENCH_DB}"
    with live_stack(
        args.streams,
        media_dir() / args.clip,
        redis_url,
        settings_env=service_settings(args),
        log_path=args.log,
    ) as stack:
        time.sleep(WARMUP_S)
        victim = worker_processes(stack.worker.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        time.sleep(args.seconds)
        until = time.time()
        time.sleep(3)  # the last chunks of the window land
        result = outages(stack.pg_url, killed_at, until)
    print(json.dumps({"streams": args.streams, "killed_pid": victim, "cameras": result}))


if __name__ == "__main__":
    main()

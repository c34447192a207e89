"""Soak: four live streams for ten minutes; do Redis memory, worker and ingester RSS and open file
descriptors stay flat?

Samples every `--every` seconds after a warm-up and fits a least-squares line to each series;
prints the samples' first/last values and the slope per minute, over the whole run and over its
second half. A leak shows as a slope that is a visible fraction of the value per minute in both;
flat is a slope near zero.

    .venv/bin/python -m bench.soak [--streams 4] [--minutes 10] [--every 10] [--series out.csv]
        [--set POSEPIPE_NAME=VALUE ...] [--log services.log]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import psycopg
import redis

from bench.common import (
    add_service_options,
    live_stack,
    media_dir,
    process_tree,
    service_settings,
    tree_open_fds,
    tree_rss_mb,
)
from tests.services import private_redis
from workers.memory import rss_mb

WARMUP_S = 30.0


def slope_per_minute(ts: list[float], values: list[float]) -> float:
    n = len(ts)
    mean_t, mean_v = sum(ts) / n, sum(values) / n
    var = sum((t - mean_t) ** 2 for t in ts)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in zip(ts, values, strict=True))
    return cov / var * 60 if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--clip", default="falls/urfall_ds04_fall_while_walking.mp4")
    parser.add_argument("--series", type=Path, help="also write every sample to this CSV file")
    add_service_options(parser)
    args = parser.parse_args()
    media = media_dir()
    names = [
        "redis_mb",
        "worker_rss_mb",
        "worker_process_max_rss_mb",
        "ingest_rss_mb",
        "open_fds",
        "sessions",
    ]
    series: dict[str, list[float]] = {k: [] for k in names}
    times: list[float] = []
    settings_env = service_settings(args)
    # A redis-server of its own: the machine's Redis's memory would also count other users' keys.
    with (
        private_redis() as server,
        live_stack(
            args.streams, media / args.clip, server.url, settings_env=settings_env, log_path=args.log
        ) as stack,
    ):
        client = redis.Redis.from_url(server.url)
        time.sleep(WARMUP_S)
        started = time.time()
        while time.time() - started < args.minutes * 60:
            times.append(time.time() - started)
            series["redis_mb"].append(int(client.info("memory")["used_memory"]) / 1e6)
            worker_rss = [rss_mb(pid) or 0.0 for pid in process_tree(stack.worker.pid)]
            series["worker_rss_mb"].append(sum(worker_rss))
            # The largest single process: what POSEPIPE_WORKER_MAX_RSS_MB acts on.
            series["worker_process_max_rss_mb"].append(max(worker_rss))
            series["ingest_rss_mb"].append(tree_rss_mb(stack.ingest.pid))
            series["open_fds"].append(tree_open_fds(stack.worker.pid) + tree_open_fds(stack.ingest.pid))
            # Camera sessions started so far: a reconnect starts a new one (and new pose models).
            with psycopg.connect(stack.pg_url) as conn:
                series["sessions"].append(conn.execute("SELECT count(*) FROM videos").fetchone()[0])
            time.sleep(args.every)
    if args.series:
        with args.series.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["t_s", *series])
            for i, t in enumerate(times):
                writer.writerow([round(t, 1), *(round(values[i], 2) for values in series.values())])
    report = {
        name: {
            "first": round(values[0], 1),
            "last": round(values[-1], 1),
            "max": round(max(values), 1),
            "slope_per_min": round(slope_per_minute(times, values), 3),
            # Warm-up growth that levels off shows here as a much smaller slope; a leak does not.
            "second_half_slope_per_min": round(
                slope_per_minute(times[len(times) // 2 :], values[len(values) // 2 :]), 3
            ),
        }
        for name, values in series.items()
    }
    print(
        json.dumps(
            {
                "streams": args.streams,
                "minutes": args.minutes,
                "samples": len(times),
                "settings": settings_env,
                **report,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

"""Live capacity: N simultaneous RTSP streams (a shared clip looped by a real GStreamer RTSP server)
analysed at 10 fps each on this machine by the real services (`posepipe ingest` and
`posepipe worker -n 2`) against Redis and PostgreSQL.

For each N: frames sampled, analysed and dropped (with causes), capture-to-pose-row latency
(from a frame's capture to the commit of its chunk) and capture-to-event latency (from the
capture of the frame that confirmed a fall to the event's row), p50 and p95, peak Redis
memory, peak worker RSS, and the CPU the workers and the ingester used (per analysed frame for
the workers: what posing and every job's bookkeeping cost). N is sustained in real time when
under 1 % of the sampled frames were dropped and analysis kept pace (analysed ≈ sampled).

First, with nothing else running, the pose model alone on the clip's sampled frames (one
process, tracking continued as in a live session): CPU ms per frame, and the N at which
posing alone would take every core. No pipeline can sustain more.

    .venv/bin/python -m bench.live [--streams 2,4,6,8] [--seconds 45] [--clip falls/urfall_ds04_...mp4]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import psycopg

from bench.common import (
    RedisMemoryPeak,
    add_service_options,
    ensure_redis,
    live_stack,
    media_dir,
    service_settings,
    tree_cpu_s,
    tree_rss_mb,
)

REDIS_BENCH_DB = 12
WARMUP_S = 15.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def pose_bound(
    clip: Path, fps: float, settings_env: dict[str, str] | None = None, loops: int = 4
) -> dict[str, object]:
    from pipeline.sampler import FrameSampler
    from pipeline.source import VideoFile
    from pose.estimator import create_estimator
    from posepipe.settings import ENV_PREFIX, Settings

    # The services' settings (`--set`), so the model measured is the one the cameras run.
    settings = Settings(
        **{name.removeprefix(ENV_PREFIX).lower(): value for name, value in (settings_env or {}).items()}
    )
    with VideoFile(clip) as video:
        frames = list(video.sampled_frames(FrameSampler(fps).take, max_side=settings.frame_max_side))
    estimator = create_estimator(settings.camera_pose_backend, settings.pose_min_confidence)
    for frame in frames[:10]:  # graph start-up is not part of the steady cost
        estimator.estimate(frame)
    started = time.process_time()
    for _ in range(loops):
        estimator.reset()  # the clip's loop point is a cut, as it is for a camera serving it
        for frame in frames:
            estimator.estimate(frame)
    ms_per_frame = 1000 * (time.process_time() - started) / (loops * len(frames))
    estimator.close()
    cores = os.cpu_count() or 1
    return {
        "camera_pose_backend": settings.camera_pose_backend,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "pose_cpu_ms_per_frame": round(ms_per_frame, 1),
        "cores": cores,
        "streams_pose_alone_fills_every_core": round(cores * 1000 / (fps * ms_per_frame), 2),
    }


def run(
    n: int,
    clip: Path,
    seconds: float,
    redis_url: str,
    settings_env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> dict[str, object]:
    with live_stack(n, clip, redis_url, settings_env=settings_env, log_path=log_path) as stack:
        time.sleep(WARMUP_S)
        t_from = time.time()
        cpu_from = tree_cpu_s(stack.worker.pid), tree_cpu_s(stack.ingest.pid)
        peak_rss = 0.0
        with RedisMemoryPeak(redis_url) as memory:
            while time.time() - t_from < seconds:
                time.sleep(1)
                peak_rss = max(peak_rss, tree_rss_mb(stack.worker.pid))
        t_to = time.time()
        worker_cpu_s = tree_cpu_s(stack.worker.pid) - cpu_from[0]
        ingest_cpu_s = tree_cpu_s(stack.ingest.pid) - cpu_from[1]
        time.sleep(3)  # let the last chunks of the window land
        result = measure(stack.pg_url, n, t_from, t_to)
    analysed = int(result["frames_analysed"])  # type: ignore[call-overload]
    return result | {
        "redis_peak_mb": round(memory.peak_bytes / 1e6, 1),
        "worker_rss_peak_mb": round(peak_rss, 1),
        # Worker CPU over the window per frame analysed in it: posing plus every job's overhead.
        "worker_cpu_ms_per_analysed_frame": round(1000 * worker_cpu_s / analysed, 1) if analysed else None,
        "worker_cores": round(worker_cpu_s / (t_to - t_from), 2),
        "ingest_cores": round(ingest_cpu_s / (t_to - t_from), 2),
    }


def measure(pg_url: str, n: int, t_from: float, t_to: float) -> dict[str, object]:
    with psycopg.connect(pg_url) as conn:
        sessions = {
            vid: started.timestamp()
            for vid, started in conn.execute("SELECT id, started_at FROM videos WHERE started_at IS NOT NULL")
        }
        pose_lat, analysed = [], 0
        rows = conn.execute(
            "SELECT f.video_id, f.t_s, c.finished_at FROM frames f JOIN chunks c "
            "ON c.video_id = f.video_id AND f.seq >= c.seq_from AND f.seq < c.seq_to"
        )
        for vid, t_s, finished in rows:
            captured = sessions[vid] + t_s
            if t_from <= captured <= t_to:
                analysed += 1
                pose_lat.append(finished.timestamp() - captured)
        event_lat = []
        for vid, created, data in conn.execute(
            "SELECT video_id, created_at, data FROM events WHERE type = 'fall'"
        ):
            captured = sessions[vid] + float(data["t_detected_s"])
            if t_from <= captured <= t_to:
                event_lat.append(created.timestamp() - captured)
        dropped: dict[str, int] = {}
        for (drops,) in conn.execute("SELECT dropped FROM camera_status"):
            for cause, count in (drops or {}).items():
                dropped[cause] = dropped.get(cause, 0) + int(count)
    sampled = n * 10 * (t_to - t_from)
    total_dropped = sum(dropped.values())
    return {
        "streams": n,
        "seconds": round(t_to - t_from, 1),
        "frames_sampled_expected": int(sampled),
        "frames_analysed": analysed,
        "analysed_fraction": round(analysed / sampled, 3) if sampled else None,
        "dropped_total_incl_warmup": total_dropped,
        "dropped_by_cause": dropped,
        "pose_row_latency_p50_s": percentile(pose_lat, 0.5),
        "pose_row_latency_p95_s": percentile(pose_lat, 0.95),
        "event_latency_p50_s": percentile(event_lat, 0.5),
        "event_latency_p95_s": percentile(event_lat, 0.95),
        "fall_events": len(event_lat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", default="2,4,6,8")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--clip", default="falls/urfall_ds04_fall_while_walking.mp4")
    add_service_options(parser)
    args = parser.parse_args()
    settings_env = service_settings(args)
    media = media_dir()
    redis_url = f"{ensure_redis()}/{REDIS_BENCH_DB}"
    print(json.dumps(pose_bound(media / args.clip, 10.0, settings_env)), flush=True)
    results = []
    for n in (int(x) for x in args.streams.split(",")):
        result = run(n, media / args.clip, args.seconds, redis_url, settings_env, args.log)
        result["settings"] = settings_env
        # The machine may be shared: the load the run had beside it (its own included).
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        results.append(result)
        print(json.dumps(result), flush=True)
    sustained = [r["streams"] for r in results if (r["analysed_fraction"] or 0) >= 0.99]
    print(
        "largest N analysed in real time (>= 99% of sampled frames):",
        max(sustained) if sustained else "none",
    )


if __name__ == "__main__":
    main()

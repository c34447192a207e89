"""Throughput of the pipeline against a bare loop, on the same sampled frames of a looped real clip.

(a) bare loop: PyAV decode + sampling + mp.solutions.pose in one process, no queue;
(b) the pipeline (ingest -> Redis -> RQ -> pose -> PostgreSQL) with 1 worker process;
(c) the same with 2 worker processes on that one file.
Prints frames/s, the ratios b/a and c/b, peak Redis memory of (b) and (c), and for (b) and
(c) the CPU per frame of the ingesting process, the workers and Redis (where a frame's cost
goes); with --bound-check, (b) again on a file three times longer, to show the peak does not grow.

With --end-to-end, (a) and (b) are instead timed as a user runs them, each a fresh process from
start to exit: the bare loop, and `posepipe analyze --workers 1 FILE` on Redis and PostgreSQL, on
a 5-minute file, alternating, with where the command's time goes (bench.end_to_end).

    .venv/bin/python -m bench.throughput [--clip exercise/ex_pushup_side_full_then_knee.mp4] [--seconds 60]
    .venv/bin/python -m bench.throughput --end-to-end [--rounds 2] [--redis-db 12]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import Queue, Worker

from bench import end_to_end
from bench.common import (
    RedisMemoryPeak,
    ensure_postgres,
    ensure_redis,
    fresh_pg_database,
    looped_clip,
    media_dir,
    process_cpu_s,
    process_tree,
    wait_for,
)
from pipeline import keys
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose.estimator import create_estimator
from posepipe import analyze as analysis
from posepipe.services import Services
from posepipe.settings import Settings
from posepipe.worker_processes import WorkerProcesses
from storage.models import Video

REDIS_BENCH_DB = 12
CLIP = "exercise/ex_pushup_side_full_then_knee.mp4"
# End to end: the 640x360 push-up clip, where decoding is cheap beside posing (as in most uploads).
END_TO_END_CLIP = "exercise/ex_pushup_garage_side.mp4"
END_TO_END_S = 300.0


def bare_loop(path: Path, settings: Settings) -> tuple[int, float]:
    estimator = create_estimator(settings.pose_backend, settings.pose_min_confidence)
    sampler = FrameSampler(settings.analysis_fps)
    with VideoFile(path.with_name("warmup.mp4")) as warm:  # first inference outside the clock, as in (b), (c)
        for frame in warm.sampled_frames(
            FrameSampler(settings.analysis_fps).take, max_side=settings.frame_max_side
        ):
            estimator.estimate(frame)
    estimator.reset()
    started = time.perf_counter()
    frames = 0
    with VideoFile(path) as video:
        for frame in video.sampled_frames(sampler.take, max_side=settings.frame_max_side):
            estimator.estimate(frame)
            frames += 1
    return frames, time.perf_counter() - started


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds by process. `ingester` is this process: decoding, sampling, putting frames
    and following progress (`analyze` ingests in-process)."""

    ingester_s: float
    workers_s: float
    redis_s: float

    @classmethod
    def now(cls, client: redis.Redis) -> CpuSplit:
        me = os.getpid()
        workers = sum(process_cpu_s(pid) for pid in process_tree(me) if pid != me)
        info = client.info("cpu")
        return cls(process_cpu_s(me), workers, float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))

    def ms_per_frame_since(self, start: CpuSplit, frames: int) -> dict[str, float]:
        return {
            name: round(1000 * (getattr(self, f"{name}_s") - getattr(start, f"{name}_s")) / frames, 2)
            for name in ("ingester", "workers", "redis")
        }


def pipeline_run(path: Path, settings: Settings, workers: int) -> tuple[int, float, int, dict[str, float]]:
    """Frames, seconds, peak Redis bytes, CPU ms per frame by process. Workers are started (and
    their model loaded) first."""
    client = redis.Redis.from_url(str(settings.redis_url))
    client.flushdb()
    services = Services.open(settings)
    procs = WorkerProcesses(settings, workers)
    procs.start()
    try:
        wait_for(lambda: len(Worker.all(queue=Queue(keys.QUEUE_POSE, connection=client))) >= workers, 120)
        warm = path.with_name("warmup.mp4")
        _analyse(services, warm, settings)  # loads each worker's model outside the timed run
        with RedisMemoryPeak(str(settings.redis_url)) as memory:
            cpu_from = CpuSplit.now(client)
            started = time.perf_counter()
            video = _analyse(services, path, settings)
            elapsed = time.perf_counter() - started
            cpu = CpuSplit.now(client).ms_per_frame_since(cpu_from, video.frames_done)
        return video.frames_done, elapsed, memory.peak_bytes, cpu
    finally:
        procs.stop()
        services.close()


def _analyse(services: Services, path: Path, settings: Settings) -> Video:
    opts = analysis.AnalyzeOptions(fps=settings.analysis_fps, workers=0, force=True)
    target = analysis.plan(services, str(path), opts)
    analysis.run(services, [target], opts)
    with services.db.session() as session:
        video = session.get(Video, target.video_id)
        if video is None or video.status.value != "done":
            raise RuntimeError(f"benchmark analysis failed: {video.error if video else target.error}")
        return video


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clip", help=f"default {CLIP}; with --end-to-end {END_TO_END_CLIP}")
    parser.add_argument(
        "--seconds", type=float, help=f"loop the clip to at least this (default 60; {END_TO_END_S:g})"
    )
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--bound-check", action="store_true", help="also run (b) on a 3x longer file")
    parser.add_argument("--end-to-end", action="store_true", help="time the commands as a user runs them")
    parser.add_argument("--rounds", type=int, default=2, help="--end-to-end: runs of each, alternating")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="--end-to-end: also time `posepipe analyze` from this checkout (e.g. a worktree of the "
        "commit before) in the same rounds",
    )
    parser.add_argument("--redis-db", type=int, default=REDIS_BENCH_DB, help="Redis database index (flushed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    media = media_dir()
    redis_url = f"{ensure_redis()}/{args.redis_db}"
    if args.end_to_end:
        _end_to_end(args, media, redis_url)
        return
    args.clip = args.clip or CLIP
    args.seconds = args.seconds or 60.0
    with tempfile.TemporaryDirectory() as tmp, fresh_pg_database(ensure_postgres()) as pg_url:
        tmpdir = Path(tmp)
        clip = looped_clip(media / args.clip, tmpdir / "looped.mp4", args.seconds)
        looped_clip(media / args.clip, tmpdir / "warmup.mp4", 1)
        settings = Settings(
            redis_url=redis_url,
            database_url=pg_url,
            data_dir=tmpdir,
            analysis_fps=args.fps,
            log_level="WARNING",
        )
        with VideoFile(clip) as video:
            info = video.info
        a_frames, a_s = bare_loop(clip, settings)
        b_frames, b_s, b_mem, b_cpu = pipeline_run(clip, settings, workers=1)
        c_frames, c_s, c_mem, c_cpu = pipeline_run(clip, settings, workers=2)
        result = {
            "clip": args.clip,
            "video_s": round(info.duration_s or 0, 1),
            "resolution": f"{info.width}x{info.height}",
            "fps_target": args.fps,
            "frames": a_frames,
            "frame_encoding": settings.frame_encoding.value,
            "max_queued_mb": settings.max_queued_mb,
            "a_bare_fps": round(a_frames / a_s, 2),
            "b_pipeline_1w_fps": round(b_frames / b_s, 2),
            "c_pipeline_2w_fps": round(c_frames / c_s, 2),
            "b_over_a": round((b_frames / b_s) / (a_frames / a_s), 3),
            "c_over_b": round((c_frames / c_s) / (b_frames / b_s), 3),
            "redis_peak_mb_b": round(b_mem / 1e6, 1),
            "redis_peak_mb_c": round(c_mem / 1e6, 1),
            "b_cpu_ms_per_frame": b_cpu,
            "c_cpu_ms_per_frame": c_cpu,
        }
        if not a_frames == b_frames == c_frames:
            raise RuntimeError(f"runs analysed different frame counts: {a_frames}, {b_frames}, {c_frames}")
        if args.bound_check:
            longer = looped_clip(media / args.clip, tmpdir / "longer.mp4", args.seconds * 3)
            l_frames, l_s, l_mem, _ = pipeline_run(longer, settings, workers=1)
            result.update({"longer_video_frames": l_frames, "redis_peak_mb_longer": round(l_mem / 1e6, 1)})
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for key, value in result.items():
        print(f"{key:24} {value}")


def _end_to_end(args: argparse.Namespace, media: Path, redis_url: str) -> None:
    clip_name = args.clip or END_TO_END_CLIP
    with tempfile.TemporaryDirectory(prefix="posepipe-e2e-") as tmp:
        clip = looped_clip(media / clip_name, Path(tmp) / "looped.mp4", args.seconds or END_TO_END_S)
        with VideoFile(clip) as video:
            info = video.info
        log = Path(tmp) / "analyze.log"
        try:
            baseline = args.baseline.resolve() if args.baseline else None
            result = end_to_end.run(clip, redis_url, args.rounds, log, baseline)
        except Exception:
            sys.stderr.write(log.read_text() if log.exists() else "")
            raise
    result = {
        "clip": clip_name,
        "video_s": round(info.duration_s or 0, 1),
        "resolution": f"{info.width}x{info.height}",
        **result,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    runs = {
        name: result.pop(f"{name}_runs")
        for name in ("bare", "pipeline", "baseline")
        if f"{name}_runs" in result
    }
    for key, value in result.items():
        print(f"{key:28} {value}")
    for name, done in runs.items():
        for i, run in enumerate(done):
            print(f"round {i + 1}: {name} {run}")


if __name__ == "__main__":
    sys.exit(main())

"""How many pose workers one file can keep busy: the ingester's sampled frames a second per core, the
Redis bytes a frame costs, and the pose cost of a frame, measured in one run; then the same file
ingested in parts (pipeline.segments), each part in its own process.

For each size, a real clip is looped and re-encoded (H.264, B-frames, a keyframe every 2 s, as
phones write) to `--seconds`. One ingester runs `pipeline.ingest.ingest_file` on a private
redis-server, as `posepipe analyze` does, with a thread standing in for the workers that
releases each chunk's frames once the chunk is queued (its CPU is left out). CPU is the
ingesting process's (PyAV's decoder threads included); Redis CPU is the private server's. The
pose cost is MediaPipe (the default backend) on the same frames, a fresh process-wide model.
Workers one ingester keeps busy = ingester frames per CPU-second x pose CPU-seconds per frame.

    .venv/bin/python -m bench.ingest [--clip exercise/ex_pushup_side_full_then_knee.mp4] [--seconds 60]
        [--sizes 1280,640,320] [--parts 2] [--gop-s 2]
    .venv/bin/python -m bench.ingest --check-media   # the packet prediction on every shared clip
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import redis

from bench.common import media_dir
from pipeline import keys
from pipeline.framestore import FrameStore
from pipeline.ingest import IngestPlan, Span, ingest_file
from pipeline.payload import FrameEncoding
from pipeline.queue import JobQueue
from pipeline.sampler import FrameSampler
from pipeline.segments import SegmentPlan, predict
from pipeline.source import PacketTimes, VideoFile
from pose.estimator import create_estimator
from posepipe.settings import Settings
from tests import media_gen

VIDEO_ID = 1
GOP_S = 2.0
POSE_FRAMES = 60


@dataclass(frozen=True)
class IngestRun:
    frames: int
    wall_s: float
    cpu_s: float
    redis_cpu_s: float
    payload_bytes: int
    redis_bytes_per_frame: float


def private_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return server, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class Releaser(threading.Thread):
    """The workers, minus the posing: frees a chunk once the two after it are in (so a window's
    worth stays queued, as when workers keep up), and notes the Redis memory per queued frame."""

    LAG_CHUNKS = 2

    def __init__(self, url: str, run: str, chunk: int, total: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.store = FrameStore(self.client, ttl_s=3600, encoding=FrameEncoding.YUV420)
        self.run_token, self.chunk, self.total = run, chunk, total
        self.cpu_s = 0.0
        self.bytes_per_frame: list[float] = []
        self._base = self.client.info("memory")["used_memory"]

    def run(self) -> None:
        started = time.thread_time()
        done = 0
        while done < self.total:
            # Chunks complete out of order when parts run at once.
            for start in range(done, self.total, self.chunk):
                ahead = min(start + (1 + self.LAG_CHUNKS) * self.chunk, self.total) - 1
                if not self.client.exists(keys.frame(VIDEO_ID, self.run_token, ahead)):
                    break
                queued = self.store.queued(VIDEO_ID, self.run_token)
                if queued >= self.LAG_CHUNKS * self.chunk:
                    used = self.client.info("memory")["used_memory"] - self._base
                    self.bytes_per_frame.append(used / queued)
                end = min(start + self.chunk, self.total)
                if ahead == self.total - 1:
                    end = self.total  # the file is in: free the rest
                self.store.release(VIDEO_ID, self.run_token, range(start, end))
                done = end
            time.sleep(0.005)
        self.cpu_s = time.thread_time() - started


def ingest_plan(run: str, settings: Settings) -> IngestPlan:
    return IngestPlan(
        VIDEO_ID, run, settings.analysis_fps, settings.chunk_frames, 10**12, settings.frame_max_side
    )


def ingest_part(path: str, url: str, run: str, span: Span | None) -> tuple[float, int, int]:
    """One ingest (a whole file, or a part of it) in this process: (CPU s, frames, payload bytes)."""
    settings = Settings(redis_url=url)
    client = redis.Redis.from_url(url)
    store = FrameStore(client, ttl_s=3600, encoding=FrameEncoding.YUV420)
    queue = JobQueue(client, job_timeout_s=60, retries=0)
    started = time.process_time()
    with VideoFile(path) as video:
        result = ingest_file(video, ingest_plan(run, settings), store, queue, span=span)
    frames = result.frames_total - (span.seq_from if span else 0)
    return time.process_time() - started, frames, result.payload_bytes


def one_ingester(path: Path, url: str, settings: Settings, total: int) -> IngestRun:
    client = redis.Redis.from_url(url)
    client.flushdb()
    releaser = Releaser(url, "one", settings.chunk_frames, total)
    releaser.start()
    redis_before = redis_cpu_s(client)
    started = time.perf_counter()
    cpu_s, frames, payload = ingest_part(str(path), url, "one", None)
    wall_s = time.perf_counter() - started
    releaser.join()
    return IngestRun(
        frames, wall_s, cpu_s, redis_cpu_s(client) - redis_before, payload, median(releaser.bytes_per_frame)
    )


def part_spans(plan: SegmentPlan, parts: int) -> list[Span]:
    spans = []
    for seqs in plan.spans(parts, min_part_s=1.0):
        if seqs.start == 0:
            spans.append(Span(None, 0, None, 0, seqs.stop, plan.sampled_pts_s))
        else:
            key = plan.start_for(seqs.start)
            spans.append(Span(key.pts, key.first_seq, key.sampler, seqs.start, seqs.stop, plan.sampled_pts_s))
    return spans


def decoded_twice(times: PacketTimes, plan: SegmentPlan, spans: list[Span]) -> int:
    """Frames a part decodes only to reach its first chunk (the part before decodes them too)."""
    twice = 0
    for span in spans[1:]:
        key = plan.start_for(span.seq_from)
        first = plan.sampled_pts_s[span.seq_from]
        twice += sum(1 for t in times.frame_pts_s if key.pts_s <= t < first)
    return twice


def in_parts(
    path: Path, url: str, settings: Settings, plan: SegmentPlan, spans: list[Span], at_once: bool
) -> IngestRun:
    """The file in parts: each in a process of its own, all at once; or in turn, in this process."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    args = [(str(path), url, "parts", span) for span in spans]
    with multiprocessing.get_context("spawn").Pool(len(args)) as pool:
        pool.map(time.sleep, [0.5] * len(args))  # started and imported before the clock
        releaser = Releaser(url, "parts", settings.chunk_frames, plan.frames_total)
        releaser.start()
        redis_before = redis_cpu_s(client)
        started = time.perf_counter()
        results = pool.starmap(ingest_part, args) if at_once else [ingest_part(*a) for a in args]
        wall_s = time.perf_counter() - started
    releaser.join()
    return IngestRun(
        sum(r[1] for r in results),
        wall_s,
        sum(r[0] for r in results),
        redis_cpu_s(client) - redis_before,
        sum(r[2] for r in results),
        median(releaser.bytes_per_frame or [0.0]),
    )


def pose_cost(path: Path, settings: Settings) -> tuple[float, float]:
    """MediaPipe's CPU and wall ms a frame on the file's first sampled frames (after a warm-up)."""
    estimator = create_estimator(settings.pose_backend, settings.pose_min_confidence)
    sampler = FrameSampler(settings.analysis_fps)
    with VideoFile(path) as video:
        frames = []
        for frame in video.sampled_frames(sampler.take, max_side=settings.frame_max_side):
            frames.append(frame)
            if len(frames) == POSE_FRAMES + 5:
                break
    for frame in frames[:5]:
        estimator.estimate(frame)
    estimator.reset()
    cpu, wall = time.process_time(), time.perf_counter()
    for frame in frames[5:]:
        estimator.estimate(frame)
    n = len(frames) - 5
    return (time.process_time() - cpu) * 1000 / n, (time.perf_counter() - wall) * 1000 / n


def check_media(settings: Settings) -> None:
    """Does every shared clip decode to the frames its packets predict? (A clip that does not
    would be ingested in one pass.)"""
    suffixes = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
    matched, differ = 0, []
    for path in sorted(p for p in media_dir().rglob("*") if p.suffix.lower() in suffixes):
        with VideoFile(path) as video:
            plan = predict(video.packet_times(), settings.analysis_fps, settings.chunk_frames)
            sampler = FrameSampler(settings.analysis_fps)
            decoded = tuple(f.pts_s for f in video.frames() if sampler.take(f.pts_s))
        if decoded == tuple(plan.sampled_pts_s):
            matched += 1
        else:
            differ.append(path.name)
    print(f"clips whose decoded frames are the predicted ones: {matched} of {matched + len(differ)}")
    for name in differ:
        print(f"  differs: {name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clip", default="exercise/ex_pushup_side_full_then_knee.mp4")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sizes", default="1280,640,320", help="longer side of each test file")
    parser.add_argument("--parts", type=int, default=2)
    parser.add_argument(
        "--gop-s", type=float, default=GOP_S, help="seconds between keyframes of the test files"
    )
    parser.add_argument(
        "--check-media", action="store_true", help="only check the packet prediction on every shared clip"
    )
    args = parser.parse_args()
    settings = Settings()
    if args.check_media:
        check_media(settings)
        return
    src = media_dir() / args.clip
    print(
        f"clip {args.clip} looped to {args.seconds:.0f} s, a keyframe every {args.gop_s:g} s, "
        f"{settings.analysis_fps:g} fps analysed, "
        f"parts {args.parts}"
    )
    header = (
        "| size | frames | ingester frames/CPU-s | wall frames/s | KB/frame | Redis B/frame held | "
        "Redis CPU ms/frame | pose CPU ms/frame (wall) | workers fed by 1 ingester | "
        f"decoded twice | {args.parts} parts in turn: CPU | {args.parts} parts at once: frames/s (CPU) |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        server, url = private_redis(Path(tmp))
        try:
            with VideoFile(src) as probe:
                loops = max(1, round(args.seconds / (probe.info.duration_s or args.seconds)))
                rate = probe.info.fps_native or 30.0
            for side in (int(s) for s in args.sizes.split(",")):
                path = media_gen.looped(
                    src,
                    Path(tmp) / f"long_{side}.mp4",
                    loops=loops,
                    gop=round(args.gop_s * rate),
                    max_side=side,
                )
                with VideoFile(path) as video:
                    width, height = video.info.width, video.info.height
                    plan = predict(video.packet_times(), settings.analysis_fps, settings.chunk_frames)
                    times = video.packet_times()
                spans = part_spans(plan, args.parts)
                one = one_ingester(path, url, settings, plan.frames_total)
                in_turn = in_parts(path, url, settings, plan, spans, at_once=False)
                at_once = in_parts(path, url, settings, plan, spans, at_once=True)
                twice = decoded_twice(times, plan, spans)
                pose_cpu_ms, pose_wall_ms = pose_cost(path, settings)
                fps_cpu = one.frames / one.cpu_s
                print(
                    f"| {width}x{height} | {one.frames} | {fps_cpu:.0f} | {one.frames / one.wall_s:.0f} | "
                    f"{one.payload_bytes / one.frames / 1e3:.0f} | {one.redis_bytes_per_frame / 1e3:.0f} K | "
                    f"{one.redis_cpu_s * 1000 / one.frames:.3f} | {pose_cpu_ms:.1f} ({pose_wall_ms:.1f}) | "
                    f"{fps_cpu * pose_cpu_ms / 1000:.1f} | {100 * twice / len(times.frame_pts_s):.1f} % | "
                    f"{100 * (in_turn.cpu_s / one.cpu_s - 1):+.1f} % | "
                    f"{at_once.frames / at_once.wall_s:.0f} "
                    f"({100 * (at_once.cpu_s / one.cpu_s - 1):+.0f} %) |",
                    flush=True,
                )
                assert at_once.frames == in_turn.frames == one.frames == plan.frames_total
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()

"""Where a live worker's CPU goes per analysed frame, stage by stage (issue 18 item 4).

N camera sessions are fed a shared clip through the real live ingest (`pipeline.live.LiveIngest`:
sampling, YUV 4:2:0 payloads in Redis, live jobs queued on RQ by the router) and posed by one
real RQ worker (`workers.runtime.PosepipeWorker`, the live job and everything it calls) in this
process, against Redis and a fresh PostgreSQL database. The sessions advance in rounds: the
feeder queues one chunk (`live_chunk_frames`, 4) of every session while the worker waits, then
the worker runs them while the feeder waits. So every run sees the same chunks in the same
order, none is dropped, and what they store can be compared between two versions of the code
(`digest`: hashes of every frame, pose, event, chunk and cursor row, wall-clock columns aside).

The worker's CPU is the process's (every thread: MediaPipe's graph threads, RQ's heartbeat
thread) while it worked, less the feeder thread's own. Each stage of the job is timed the same
way (process CPU, inclusive), so stages add up to the job, and the rest is RQ's own (taking the
job, its status, its result). The pose model is `estimate` on the job's frames: the rest is
bookkeeping. PostgreSQL's CPU is its backends' for this database (from /proc).

    .venv/bin/python -m bench.live_overhead [--streams 6] [--seconds 20] [--backend litert]
        [--profile out.prof]

`--seconds`: stream time per session (the clip looped). `--profile FILE`: also run cProfile on the
worker thread (its own CPU; slower, so its timings are not comparable with a run without it).
Another checkout is measured by running this file from it (PYTHONPATH=that checkout).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import hashlib
import json
import os
import signal
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.common import ensure_postgres, ensure_redis, fresh_pg_database, media_dir, process_cpu_s

REDIS_BENCH_DB = 9
CHUNK_FRAMES = 4
FPS = 10.0


class StageClock:
    """Process CPU seconds per labelled stage (inclusive), and calls."""

    def __init__(self) -> None:
        self.cpu_s: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        """Time `owner.name` (if the code measured has it: the bench also runs on older code)."""
        real = getattr(owner, name, None)
        if real is None:
            return

        @functools.wraps(real)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return real(*args, **kwargs)
            finally:
                self.cpu_s[label] += time.process_time() - started
                self.calls[label] += 1

        setattr(owner, name, timed)


def instrument(clock: StageClock) -> None:
    """Time the live job's stages where workers.live calls them (so nothing else is affected)."""
    from analytics.engine import AnalyticsEngine
    from pipeline.framestore import FrameStore
    from pose.estimator import MediaPipeEstimator
    from pose.litert import LiteRtPoseEstimator
    from storage.db import Database
    from workers import live, runtime

    clock.wrap(runtime.PosepipeWorker, "execute_job", "rq: execute_job (all of a job)")
    clock.wrap(runtime.PosepipeWorker, "dequeue_job_and_maintain_ttl", "rq: dequeue")
    clock.wrap(live, "live_chunk", "job: live_chunk")
    clock.wrap(FrameStore, "get", "frames: get + decode")
    clock.wrap(FrameStore, "payloads", "frames: get")
    if hasattr(live, "payload"):
        clock.wrap(live.payload, "decode", "frames: decode")
    clock.wrap(FrameStore, "release", "frames: release")
    for estimator in (MediaPipeEstimator, LiteRtPoseEstimator):
        clock.wrap(estimator, "estimate", "pose: model (estimate)")
    clock.wrap(live.poses, "write_chunk", "db: write_chunk (poses)")
    clock.wrap(live.analytics_state, "load", "state: load (query + unpickle)")
    clock.wrap(live.analytics_state, "advance", "state: advance (pickle + update)")
    clock.wrap(live.analytics_state, "next_chunk", "db: next_chunk")
    clock.wrap(live.videos, "current", "db: videos.current")
    clock.wrap(live.videos, "live_session", "db: videos.live_session")
    clock.wrap(AnalyticsEngine, "process", "analytics: engine.process")
    clock.wrap(live, "analyse_frames", "analytics: analyse_frames (all)")
    clock.wrap(live.poses, "set_track_ids", "analytics: set_track_ids")
    clock.wrap(live.events, "add_events", "analytics: add_events")
    clock.wrap(live.live_view, "is_watched", "redis: is_watched")
    clock.wrap(Database, "session", "db: session (begin)")


@contextmanager
def _commit_timer(clock: StageClock) -> Iterator[None]:
    """Time each transaction's commit (where the session's pending writes reach PostgreSQL)."""
    from sqlalchemy.orm.session import SessionTransaction

    real = SessionTransaction.commit

    def commit(self: SessionTransaction, _to_root: bool = False) -> None:
        started = time.process_time()
        try:
            real(self, _to_root)
        finally:
            clock.cpu_s["db: commit"] += time.process_time() - started
            clock.calls["db: commit"] += 1

    SessionTransaction.commit = commit  # type: ignore[method-assign]
    try:
        yield
    finally:
        SessionTransaction.commit = real  # type: ignore[method-assign]


def backends_cpu_s(pg_url: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to this database (from /proc)."""
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
            )
        ]
    return sum(process_cpu_s(pid) for pid in pids)


def digest(pg_url: str) -> dict[str, str]:
    """Hashes of what the sessions stored, wall-clock columns left out (they differ run to run)."""
    queries = {
        "frames": "SELECT video_id, seq, t_s, persons FROM frames ORDER BY video_id, seq",
        "poses": "SELECT video_id, seq, person, t_s, track_id, score, md5(landmarks), md5(world_landmarks), "
        "md5(left_hand), md5(right_hand) FROM poses ORDER BY video_id, seq, person",
        "events": "SELECT e.video_id, e.type, e.track_id, e.t_start_s, e.t_end_s, e.confidence, "
        "e.data::text, e.started_at - v.started_at, e.ended_at - v.started_at "
        "FROM events e JOIN videos v ON v.id = e.video_id "
        "ORDER BY e.video_id, e.t_start_s, e.type, e.track_id",
        "chunks": "SELECT video_id, idx, seq_from, seq_to, attempts FROM chunks ORDER BY video_id, idx",
        "videos": "SELECT id, frames_done, frames_with_person, status FROM videos ORDER BY id",
        "cursor": "SELECT video_id, next_chunk, finished, version FROM analytics_state ORDER BY video_id",
    }
    out: dict[str, str] = {}
    with psycopg.connect(pg_url) as conn:
        for name, sql in queries.items():
            rows = conn.execute(sql).fetchall()
            out[name] = f"{len(rows)} rows, " + hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
    return out


def run(
    streams: int, seconds: float, clip: Path, profile: Path | None, backend: str | None = None
) -> dict[str, object]:
    from cryptography.fernet import Fernet

    from pipeline import keys
    from pipeline.live import LiveIngest, LivePlan
    from pipeline.source import VideoFile
    from posepipe.camera_supervisor import CameraRunner
    from posepipe.services import Services
    from posepipe.settings import Settings
    from storage import cameras
    from storage.models import Video
    from workers.runtime import PosepipeWorker

    redis_url = f"{ensure_redis()}/{REDIS_BENCH_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    with fresh_pg_database(ensure_postgres()) as pg_url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=pg_url,
            redis_url=redis_url,
            secret_key=Fernet.generate_key().decode(),
            log_level="WARNING",
            # Lockstep rounds run slower than real time: no chunk may be judged stale.
            live_max_lag_s=60,
            live_thin_lag_s=60,
            live_chunk_frames=CHUNK_FRAMES,
            **({"camera_pose_backend": backend} if backend else {}),
        )
        services = Services.open(settings)
        box = services.secret_box()
        worker_ctx = services.worker_context()
        feeder_ctx = services.worker_context()
        with services.db.session() as session:
            for i in range(streams):
                cameras.add_camera(
                    session, box, f"cam{i}", f"rtsp://bench/cam{i}", FPS, None, settings.camera_pose_backend
                )
        with services.db.session() as session:
            configs = cameras.enabled_configs(session, box)
        with VideoFile(clip) as video:
            decoded = list(video.frames())
            width, height = video.info.width, video.info.height
        period_s = decoded[1].pts_s - decoded[0].pts_s
        loop_s = len(decoded) * period_s
        session_start = time.time()
        ingests = []
        for config in configs:
            runner = CameraRunner(config, feeder_ctx, settings)
            video_id, run_token = runner._open_session(session_start)
            with services.db.session() as session:
                row = session.get(Video, video_id)
                assert row is not None
                row.width, row.height = width, height
            plan = LivePlan(
                video_id=video_id,
                run=run_token,
                fps=FPS,
                chunk_frames=CHUNK_FRAMES,
                chunk_max_wait_s=settings.live_chunk_max_wait_s,
                chunk_max_frames=settings.live_chunk_max_frames,
                max_queued_bytes=int(settings.live_max_queued_mb * 1e6),
                frame_max_side=settings.frame_max_side,
                session_start_s=session_start,
            )
            ingests.append(LiveIngest(plan, feeder_ctx.frames, feeder_ctx.queue))

        clock = StageClock()
        instrument(clock)
        # Rounds: the feeder queues one chunk of every session while the worker waits, then the
        # worker runs them while the feeder waits, so neither's CPU lands in the other's clocks.
        turn = threading.Condition()
        count = {"queued": 0, "done": 0, "over": 0}
        feeder_cpu_s = 0.0

        class CountingWorker(PosepipeWorker):
            def dequeue_job_and_maintain_ttl(self, *args: Any, **kwargs: Any) -> Any:
                with turn:
                    turn.wait_for(lambda: count["done"] < count["queued"] or count["over"])
                return super().dequeue_job_and_maintain_ttl(*args, **kwargs)

            def after_job(self) -> None:
                super().after_job()
                with turn:
                    count["done"] += 1
                    turn.notify_all()

        def feed() -> None:
            nonlocal feeder_cpu_s
            cursors = [0] * len(ingests)  # next decoded frame index per session
            stream_frames = int(seconds * 1 / period_s)
            while cursors[0] < stream_frames:
                started = time.thread_time()
                for k, live in enumerate(ingests):
                    target = live._next_chunk + 1
                    while live._next_chunk < target and cursors[k] < stream_frames:
                        n = cursors[k]
                        item = decoded[n % len(decoded)]
                        live.offer(item.av_frame, session_start + (n // len(decoded)) * loop_s + item.pts_s)
                        cursors[k] += 1
                feeder_cpu_s += time.thread_time() - started
                with turn:
                    count["queued"] = sum(live._next_chunk for live in ingests)
                    turn.notify_all()
                    turn.wait_for(lambda: count["done"] == count["queued"])
            with turn:
                count["over"] = 1
                turn.notify_all()
            os.kill(os.getpid(), signal.SIGTERM)  # the idle worker stops

        worker = CountingWorker([keys.QUEUE_LIVE], context=worker_ctx)
        feeder = threading.Thread(target=feed, name="bench-feeder", daemon=True)
        # The worker thread's own CPU: MediaPipe's graph threads and waits for replies are not in it.
        profiler = cProfile.Profile(time.thread_time) if profile is not None else None
        with _commit_timer(clock):
            work_from = time.process_time()
            feeder.start()
            if profiler is not None:
                profiler.enable()
            worker.work(burst=False, with_scheduler=False, logging_level="WARNING")
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(str(profile))
                feeder.join()
            work_cpu_s = time.process_time() - work_from
        postgres_cpu_s = backends_cpu_s(pg_url)
        worker_ctx.close()
        feeder_ctx.close()
        services.close()
        result_digest = digest(pg_url)
        with psycopg.connect(pg_url) as conn:
            (analysed,) = conn.execute("SELECT count(*) FROM frames").fetchone()  # type: ignore[misc]
            (events_n,) = conn.execute("SELECT count(*) FROM events").fetchone()  # type: ignore[misc]
            (state_bytes,) = conn.execute("SELECT avg(length(engine)) FROM analytics_state").fetchone()  # type: ignore[misc]

    # The worker's CPU: the process's while it worked, less the feeder thread's (its own clock).
    worker_cpu_s = work_cpu_s - feeder_cpu_s
    pose_s = clock.cpu_s["pose: model (estimate)"]
    per_frame = {label: round(1000 * s / analysed, 3) for label, s in sorted(clock.cpu_s.items())}
    return {
        "streams": streams,
        "seconds_per_stream": seconds,
        "jobs": count["done"],
        "frames_analysed": analysed,
        "events": events_n,
        "camera_pose_backend": settings.camera_pose_backend,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "worker_cpu_ms_per_frame": round(1000 * worker_cpu_s / analysed, 3),
        "pose_cpu_ms_per_frame": round(1000 * pose_s / analysed, 3),
        "overhead_cpu_ms_per_frame": round(1000 * (worker_cpu_s - pose_s) / analysed, 3),
        "feeder_cpu_ms_per_frame": round(1000 * feeder_cpu_s / analysed, 3),
        # The PostgreSQL backends of this database (the worker's and the feeder's connections).
        "postgres_cpu_ms_per_frame": round(1000 * postgres_cpu_s / analysed, 3),
        "engine_state_bytes": int(state_bytes or 0),
        "stage_cpu_ms_per_frame": per_frame,
        "stage_calls": dict(sorted(clock.calls.items())),
        "digest": result_digest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clip", default="falls/urfall_ds04_fall_while_walking.mp4")
    parser.add_argument("--profile", type=Path, help="also write a cProfile of the worker here")
    parser.add_argument("--backend", help="the cameras' pose backend (default: the settings' camera default)")
    args = parser.parse_args()
    result = run(args.streams, args.seconds, media_dir() / args.clip, args.profile, args.backend)
    print(json.dumps(result, indent=1), flush=True)


if __name__ == "__main__":
    main()

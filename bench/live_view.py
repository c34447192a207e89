"""What the live view costs a worker, with and without a viewer, on real frames of three sizes.

    .venv/bin/python -m bench.live_view [--frames 24] [--chunk 4] [--redis-db 11]

Per live chunk (`--chunk` frames, the live ingester's usual size) on real Redis: the worker's
cost when nobody watches (one EXISTS), and when someone does (the analytics' state read from
the engine, the last frame scaled to 640 px and JPEG-encoded, one HSET+EXPIRE); next to it the
chunk's posing time with MediaPipe on the same frames, and what the API spends per picture
served (read the view, decode, draw skeletons and labels, encode). CPU ms are the process's
CPU time (time.process_time), wall ms the elapsed time.

    .venv/bin/python -m bench.live_view --stack [--seconds 30]

The same on the running system: the RTSP test server, `posepipe ingest`, `posepipe worker` and
`posepipe api` on Redis and PostgreSQL, one camera at 10 fps; the worker processes' CPU seconds
(from /proc, children included) over `--seconds` with nobody watching, then with a client
asking for every picture as the web UI does, and the pictures' age when served.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

from analytics.config import AnalyticsConfig
from analytics.engine import AnalyticsEngine
from bench.common import media_dir
from pipeline.frames import Frame
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose.estimator import MediaPipeEstimator
from pose.types import FramePoses
from posepipe.api.live import render_view
from posepipe.render import SkeletonStyle
from posepipe.settings import Settings
from tests.services import ensure_redis
from workers import live_view

CLIPS = (
    "falls/urfall_ds04_fall_while_walking.mp4",  # 320x240
    "exercise/ex_bicep_curl_barbell_front_gym_shirtless_man.mp4",  # 640x360
    "exercise/ex_jumping_jack_front_gym_corridor_pillarboxed_portrait_man.mp4",  # 1280x720
)
VIDEO_ID = 999_999  # a session id no test or deployment uses
REPEATS = 200


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.process_time() - cpu0) / repeats * 1e3, (time.perf_counter() - wall0) / repeats * 1e3


def frames_of(rel: str, count: int, settings: Settings) -> list[Frame]:
    with VideoFile(media_dir() / rel) as video:
        take = FrameSampler(settings.analysis_fps).take
        sample = [d for d in video.frames() if take(d.pts_s)][:count]
        rotation = video.info.rotation_deg
    return [
        Frame.from_av(
            d.av_frame, seq=i, pts_s=d.pts_s, rotation_deg=rotation, max_side=settings.frame_max_side
        )
        for i, d in enumerate(sample)
    ]


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found.extend(children)
        frontier.extend(children)
    return found


def _cpu_s(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _worker_pids() -> list[int]:
    """The `posepipe worker` process of this run and its children (RQ work processes)."""
    workers = []
    for pid in _descendants(os.getpid()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"posepipe" in cmd and b"worker" in cmd:
            workers.append(pid)
    return sorted({p for w in workers for p in (w, *_descendants(w))})


def stack(seconds: float, redis_db: int) -> int:
    import tempfile

    from cryptography.fernet import Fernet

    from tests.rtsp import rtsp_server
    from tests.services import ensure_postgres, fresh_pg_database, posepipe_services, wait_until
    from tests.test_api import api_server, token
    from tests.test_cli import clean_env

    with tempfile.TemporaryDirectory() as tmp, fresh_pg_database(ensure_postgres()) as pg_url:
        work = Path(tmp)
        rds = redis.Redis.from_url(f"{ensure_redis()}/{redis_db}")
        rds.flushdb()
        env = clean_env(work / "data")
        env.update(
            {
                "REDIS_URL": f"{ensure_redis()}/{redis_db}",
                "DATABASE_URL": pg_url,
                "POSEPIPE_SECRET_KEY": Fernet.generate_key().decode(),
            }
        )
        admin = token(env, "bench", "admin")
        with (
            rtsp_server({"cam": media_dir() / CLIPS[0]}) as rtsp,
            posepipe_services(env, work / "services.log"),
            api_server(env, work / "api.log") as server,
            server.client(admin) as api,
        ):
            api.post(
                "/api/cameras", json={"name": "cam", "url": rtsp.url("cam"), "fps": 10}
            ).raise_for_status()
            session = lambda: api.get("/api/cameras/cam").json()["session_video_id"]  # noqa: E731
            wait_until(lambda: session() is not None, 60, "the session")
            video_id = session()
            done = lambda: api.get(f"/api/videos/{video_id}").json()["frames_done"]  # noqa: E731
            wait_until(lambda: done() >= 50, 120, "analysis to run")
            pids = _worker_pids()

            def window(watch: bool) -> tuple[float, int, list[float]]:
                cpu0, frames0, ages = _cpu_s(pids), done(), []
                end = time.monotonic() + seconds
                after = None
                while time.monotonic() < end:
                    if not watch:
                        time.sleep(0.5)
                        continue
                    params = {"wait": 5, **({} if after is None else {"after": after})}
                    response = api.get("/api/cameras/cam/live.jpg", params=params)
                    if response.status_code == 200:
                        after = int(response.headers["X-Frame-Seq"])
                        ages.append(json.loads(response.headers["X-Live-State"])["age_s"])
                return _cpu_s(pids) - cpu0, done() - frames0, ages

            for watch in (False, True, False):
                cpu, frames, ages = window(watch)
                age = f", {len(ages)} pictures, age median {np.median(ages):.2f} s" if ages else ""
                print(
                    f"{'watched' if watch else 'unwatched'}: worker CPU {cpu:.1f} s over {seconds:.0f} s, "
                    f"{frames} frames analysed, {cpu / max(frames, 1) * 1e3:.1f} ms CPU/frame{age}"
                )
                if not watch:
                    time.sleep(live_view.WATCH_TTL_S)  # let a mark lapse
        rds.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--chunk", type=int, default=4)
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--stack", action="store_true", help="measure the running system instead")
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args(argv)
    if args.stack:
        return stack(args.seconds, args.redis_db)
    settings = Settings()
    client = redis.Redis.from_url(f"{ensure_redis()}/{args.redis_db}")
    estimator = MediaPipeEstimator(settings.pose_min_confidence, settings.pose_min_confidence)
    print(
        "| frame | pose ms/chunk | unwatched CPU ms/chunk (wall) | watched CPU ms/chunk (wall) "
        "| watched / pose | KB/frame | API CPU ms/picture |"
    )
    print("|---|---|---|---|---|---|---|")
    try:
        for rel in CLIPS:
            frames = frames_of(rel, args.frames, settings)
            wh = frames[0].resolution_wh
            estimator.reset()
            t0 = time.process_time()
            posed = [FramePoses.of(f.seq, f.pts_s, wh, estimator.estimate(f)) for f in frames]
            pose_ms = (time.process_time() - t0) / len(frames) * 1e3 * args.chunk
            engine = AnalyticsEngine(AnalyticsConfig())
            for frame in posed:
                engine.process(frame)
            chunk = frames[-args.chunk :]
            client.delete(live_view.keys.live_watched(VIDEO_ID))
            unwatched = timed(lambda: live_view.is_watched(client, VIDEO_ID), REPEATS)

            def watched_chunk(chunk: list[Frame] = chunk, engine: AnalyticsEngine = engine) -> None:
                if live_view.is_watched(client, VIDEO_ID):
                    live_view.publish(client, VIDEO_ID, 0.0, chunk, live_view.engine_tracks(engine))

            live_view.mark_watched(client, VIDEO_ID)
            watched = timed(watched_chunk, REPEATS // 4)
            view = live_view.latest(client, VIDEO_ID)
            assert view is not None
            people = [(1, pose) for pose in posed[-1].poses]
            jpeg = view.frames[-1].jpeg
            api_cpu, _ = timed(
                lambda jpeg=jpeg, people=people: render_view(jpeg, people, SkeletonStyle(), None),
                REPEATS // 4,
            )
            print(
                f"| {wh[0]}x{wh[1]} | {pose_ms:.0f} | {unwatched[0]:.3f} ({unwatched[1]:.3f}) "
                f"| {watched[0]:.2f} ({watched[1]:.2f}) | {watched[0] / pose_ms:.1%} "
                f"| {len(jpeg) / 1e3:.0f} | {api_cpu:.2f} |"
            )
    finally:
        client.delete(live_view.keys.live_watched(VIDEO_ID), live_view.keys.live_view(VIDEO_ID))
        client.close()
        estimator.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Shared benchmark plumbing: looped clips, fresh PostgreSQL databases, Redis memory sampling."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.services import ensure_postgres, ensure_redis, fresh_pg_database  # noqa: F401  (re-exported)
from workers.memory import rss_mb


def media_dir() -> Path:
    """The shared clips: POSEPIPE_MEDIA, default ../shared/media beside the repository."""
    return Path(os.environ.get("POSEPIPE_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "media"))


def looped_clip(src: Path, dst: Path, min_seconds: float) -> Path:
    """`src` repeated (stream copy, no re-encode) until it lasts at least `min_seconds`."""
    import av

    with av.open(str(src)) as container:
        duration = container.duration / av.time_base
    loops = max(1, int(min_seconds // duration) + (1 if min_seconds % duration else 0))
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-stream_loop",
            str(loops - 1),
            "-i",
            str(src),
            "-an",
            "-c",
            "copy",
            str(dst),
        ],
        check=True,
    )
    return dst


class RedisMemoryPeak:
    """Samples Redis `used_memory` in the background; `peak_bytes` is the highest seen above the start."""

    def __init__(self, url: str, interval_s: float = 0.05) -> None:
        self._client = redis.Redis.from_url(url)
        self._interval = interval_s
        self._stop = threading.Event()
        self.baseline = self._used()
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _used(self) -> int:
        return int(self._client.info("memory")["used_memory"])

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._used())

    def __enter__(self) -> RedisMemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_bytes(self) -> int:
        return self.peak - self.baseline


def wait_for(predicate, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark setup timed out")
        time.sleep(0.1)


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, ... (None: it has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(root_pid: int) -> list[int]:
    """A process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    pids, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, []))
    return pids


def tree_rss_mb(root_pid: int) -> float:
    return sum(rss_mb(pid) or 0.0 for pid in process_tree(root_pid))


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by one process, all its threads (0 if it has ended)."""
    if (fields := stat_fields(pid)) is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (stat's 14, 15)


def tree_cpu_s(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants alive now."""
    return sum(process_cpu_s(pid) for pid in process_tree(root_pid))


def tree_open_fds(root_pid: int) -> int:
    total = 0
    for pid in process_tree(root_pid):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total


def add_service_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="POSEPIPE_NAME=VALUE",
        help="a setting for the services (repeatable), e.g. POSEPIPE_LIVE_CHUNK_FRAMES=6",
    )
    parser.add_argument("--log", type=Path, help="keep the services' log in this file")


def service_settings(args: argparse.Namespace) -> dict[str, str]:
    return dict(item.split("=", 1) for item in args.set)


@dataclass
class LiveStack:
    """A real RTSP server looping `clip` on N mounts, N cameras added, and the services running."""

    pg_url: str
    redis_url: str
    env: dict[str, str]
    worker: subprocess.Popen[bytes]
    ingest: subprocess.Popen[bytes]


@contextmanager
def live_stack(
    n: int,
    clip: Path,
    redis_url: str,
    fps: float = 10.0,
    workers: int = 2,
    settings_env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> Iterator[LiveStack]:
    """`log_path`: keep the services' log there (by default it goes with the temporary directory)."""
    from cryptography.fernet import Fernet

    from tests.rtsp import rtsp_server

    redis.Redis.from_url(redis_url).flushdb()
    with ExitStack() as stack:
        pg_url = stack.enter_context(fresh_pg_database(ensure_postgres()))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSEPIPE_")}
        env.update(
            REDIS_URL=redis_url,
            DATABASE_URL=pg_url,
            POSEPIPE_DATA_DIR=tmp,
            POSEPIPE_LOG_LEVEL="WARNING",
            POSEPIPE_SECRET_KEY=Fernet.generate_key().decode(),
        )
        env.update(settings_env or {})
        pp = [sys.executable, "-m", "posepipe"]
        mounts = {f"cam{i}": clip for i in range(n)}
        server = stack.enter_context(rtsp_server(mounts))
        for name in mounts:
            cmd = [*pp, "camera", "add", name, server.url(name), "--fps", f"{fps:g}"]
            subprocess.run(cmd, env=env, check=True, capture_output=True)
        log = stack.enter_context(open(log_path or Path(tmp) / "services.log", "w"))
        worker = subprocess.Popen([*pp, "worker", "-n", str(workers)], env=env, stdout=log, stderr=log)
        ingest = subprocess.Popen([*pp, "ingest"], env=env, stdout=log, stderr=log)
        try:
            yield LiveStack(pg_url, redis_url, env, worker, ingest)
        finally:
            for proc in (ingest, worker):
                proc.terminate()
            for proc in (ingest, worker):
                proc.wait(60)

"""End to end: `posepipe analyze --workers 1 FILE` on Redis and PostgreSQL, timed as a user runs it,
against the bare loop, each a fresh process from start to exit (`bench.throughput --end-to-end`).

(a) the bare loop (bench.latency.BARE_LOOP): import, model load, PyAV decode, sampling,
    `mp.solutions.pose` on every sampled frame, nothing stored;
(b) `posepipe analyze --workers 1 FILE` with REDIS_URL (a bench Redis database index, flushed)
    and DATABASE_URL (a new PostgreSQL database per run, migrated before the clock starts, as a
    deployment's is), the whole command from start to exit.
Runs alternate (a, b, a, b, ...) so a shared machine's load hits both alike. Per run: wall
seconds, frames, and for (b) the ratio of its speed to the (a) run before it; medians; the
load average. For (b) also where its time goes, from the rows it stored (chunks' finish times
and pose seconds) and from /proc sampled while it ran: when the worker process appeared and
registered, when the first chunk was posed, the worker's idle time between chunks, how long
after the last chunk the command exited, and CPU seconds by process (the analyze process, the
worker, the rest of its tree, Redis, this run's PostgreSQL backends).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
import redis
from rq import Worker
from sqlalchemy import select

from bench.common import ensure_postgres, fresh_pg_database, process_cpu_s, process_tree, stat_fields
from bench.latency import BARE_LOOP
from storage.db import Database
from storage.models import Chunk, Video

VENV_BIN = Path(sys.executable).parent
SAMPLE_S = 0.2


@dataclass
class BareRun:
    wall_s: float
    frames: int
    cpu_s: float  # the process's user + system CPU, from its rusage


@dataclass
class PipelineRun:
    wall_s: float
    frames: int
    ratio: float  # (b) speed over the (a) run just before it
    cpu_s: float  # the whole process tree's, from rusage
    cpu_by_process_s: dict[str, float]
    # Seconds from the command's start:
    worker_seen_s: float | None  # the worker process exists
    worker_registered_s: float | None  # its RQ worker listens on the queues
    video_planned_s: float  # the video row created (imports, settings, database, file hashed)
    ingest_started_s: float | None
    first_chunk_posing_s: float  # the first chunk's posing began (its finish less its pose time)
    first_chunk_done_s: float
    ingest_finished_s: float | None
    last_chunk_done_s: float
    video_done_s: float | None
    # Durations:
    pose_s: float  # the worker's posing loops, summed over chunks
    worker_gaps_s: float  # between one chunk stored and the next one's posing: RQ, DB, waiting
    after_last_chunk_s: float  # the last chunk stored until the command exited
    ingest_wait_s: float | None  # the ingester waiting for room in the frame window
    chunks: int
    # Medians over the chunks: one chunk's posing, and from one chunk stored to the next (a
    # one-worker run's steady pace, less sensitive to the start and the end than the wall time).
    chunk_pose_ms: float
    chunk_cycle_ms: float


@dataclass
class _Sampler:
    """CPU seconds of a process tree (last value seen per pid) and of some PostgreSQL backends,
    sampled from /proc in a thread, with the times things first appeared."""

    root: int
    redis_client: redis.Redis
    pg_admin: str | None = None
    pg_database: str | None = None
    started: float = field(default_factory=time.perf_counter)
    cpu: dict[int, float] = field(default_factory=dict)
    role: dict[int, str] = field(default_factory=dict)
    pg_cpu: dict[int, tuple[float, float]] = field(default_factory=dict)  # pid -> (first, last)
    worker_seen_s: float | None = None
    worker_registered_s: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        pg = psycopg.connect(self.pg_admin, autocommit=True) if self.pg_admin else None
        try:
            while not self._stop.is_set():
                self._sample(pg)
                self._stop.wait(SAMPLE_S)
        finally:
            if pg is not None:
                pg.close()

    def _sample(self, pg: psycopg.Connection | None) -> None:
        now = time.perf_counter() - self.started
        for pid in process_tree(self.root):
            if (used := process_cpu_s(pid)) or pid in self.cpu:
                self.cpu[pid] = max(used, self.cpu.get(pid, 0.0))
            if pid not in self.role:
                self.role[pid] = _role(pid, self.root)
                if self.role[pid] == "worker" and self.worker_seen_s is None:
                    self.worker_seen_s = now
        if (
            self.worker_seen_s is not None
            and self.worker_registered_s is None
            and Worker.all(connection=self.redis_client)
        ):
            self.worker_registered_s = now
        if pg is not None:
            pids = [
                row[0]
                for row in pg.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.pg_database,)
                ).fetchall()
            ]
            for pid in pids:
                used = process_cpu_s(pid)
                first, last = self.pg_cpu.get(pid, (used, used))
                self.pg_cpu[pid] = (first, max(last, used))

    def by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, used in self.cpu.items():
            out[self.role.get(pid, "other")] = out.get(self.role.get(pid, "other"), 0.0) + used
        if self.pg_cpu:
            # A backend seen only after it had started working misses what it did before.
            out["postgres backends"] = sum(last - first for first, last in self.pg_cpu.values())
        return {k: round(v, 2) for k, v in sorted(out.items())}


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "analyze"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "other"
    fields = stat_fields(pid)
    parent = int(fields[1]) if fields else -1
    if b"resource_tracker" in cmdline:
        return "resource tracker"
    if b"spawn_main" in cmdline:
        return "worker"
    if parent != root:
        return "worker's children (RQ scheduler)"
    return "other"


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_run(python: str, clip: Path, env: dict[str, str]) -> BareRun:
    cpu_from = _children_cpu_s()
    started = time.perf_counter()
    out = subprocess.run(
        [python, "-c", BARE_LOOP, str(clip)], env=env, check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    return BareRun(round(wall, 2), int(out.stdout.split()[-1]), round(_children_cpu_s() - cpu_from, 2))


def pipeline_run(
    clip: Path, env: dict[str, str], redis_url: str, pg_admin: str, bare: BareRun, log: Path
) -> PipelineRun:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    with fresh_pg_database(pg_admin) as pg_url:
        db = Database(pg_url)
        db.migrate()  # a deployment's database is at the newest migration already
        db.dispose()
        run_env = {**env, "REDIS_URL": redis_url, "DATABASE_URL": pg_url}
        cmd = [str(VENV_BIN / "posepipe"), "analyze", "--workers", "1", str(clip)]
        redis_cpu_from = _redis_cpu_s(client)
        cpu_from = _children_cpu_s()
        with open(log, "a") as out:
            out.write(f"\n--- {' '.join(cmd)}\n")
            out.flush()
            wall_from = time.time()
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, env=run_env, stdout=out, stderr=out)
            sampler = _Sampler(proc.pid, client, pg_admin, pg_url.rsplit("/", 1)[-1], started=started)
            sampler.start()
            code = proc.wait()
            wall = time.perf_counter() - started
            sampler.stop()
        if code != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited with {code}; see {log}")
        cpu = _children_cpu_s() - cpu_from
        by_process = sampler.by_role()
        by_process["redis"] = round(_redis_cpu_s(client) - redis_cpu_from, 2)
        run = _timeline(pg_url, wall_from, wall, bare, sampler, cpu, by_process)
        db.dispose()
    return run


def _redis_cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _timeline(
    pg_url: str,
    wall_from: float,
    wall: float,
    bare: BareRun,
    sampler: _Sampler,
    cpu: float,
    by_process: dict[str, float],
) -> PipelineRun:
    db = Database(pg_url)
    try:
        with db.session() as session:
            video = session.scalars(select(Video)).one()
            chunks = session.scalars(
                select(Chunk).where(Chunk.video_id == video.id).order_by(Chunk.idx)
            ).all()
            if video.status.value != "done" or not chunks:
                raise RuntimeError(f"analysis did not finish: {video.status.value} {video.error}")

            def since(at: datetime | None) -> float | None:
                return None if at is None else round(at.timestamp() - wall_from, 2)

            finished = [c.finished_at.timestamp() - wall_from for c in chunks if c.finished_at]
            posing_from = [f - (c.pose_s or 0.0) for f, c in zip(finished, chunks, strict=True)]
            # In a one-worker run chunks are posed in order; a gap is the worker not posing.
            gaps = sum(max(0.0, b - a) for a, b in zip(finished, posing_from[1:], strict=False))
            frames = video.frames_done
            return PipelineRun(
                wall_s=round(wall, 2),
                frames=frames,
                ratio=round((frames / wall) / (bare.frames / bare.wall_s), 3),
                cpu_s=round(cpu, 2),
                cpu_by_process_s=by_process,
                worker_seen_s=_round(sampler.worker_seen_s),
                worker_registered_s=_round(sampler.worker_registered_s),
                video_planned_s=since(video.created_at) or 0.0,
                ingest_started_s=since(video.started_at),
                first_chunk_posing_s=round(posing_from[0], 2),
                first_chunk_done_s=round(finished[0], 2),
                ingest_finished_s=since(video.ingest_finished_at),
                last_chunk_done_s=round(max(finished), 2),
                video_done_s=since(video.finished_at),
                pose_s=round(sum(c.pose_s or 0.0 for c in chunks), 2),
                worker_gaps_s=round(gaps, 2),
                after_last_chunk_s=round(wall - max(finished), 2),
                ingest_wait_s=_round(video.ingest_wait_s),
                chunks=len(chunks),
                chunk_pose_ms=round(1000 * statistics.median(c.pose_s or 0.0 for c in chunks), 1),
                chunk_cycle_ms=round(
                    1000 * statistics.median(b - a for a, b in zip(finished, finished[1:], strict=False)), 1
                )
                if len(finished) > 1
                else 0.0,
            )
    finally:
        db.dispose()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def run(
    clip: Path, redis_url: str, rounds: int, log: Path, baseline: Path | None = None
) -> dict[str, object]:
    """Alternate (a) and (b) `rounds` times each on `clip`; every run's numbers and the medians.
    `baseline`: another checkout (a worktree of an older commit) whose `posepipe analyze` is
    timed too, in the same rounds (a, b, b from baseline), for a before/after on equal terms."""
    pg_admin = ensure_postgres()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "DATABASE_URL", "PYTHONPATH") and not k.startswith("POSEPIPE_")
    }
    env["POSEPIPE_DATA_DIR"] = str(log.parent / "data")
    python = str(VENV_BIN / "python")
    bare_runs: list[BareRun] = []
    runs: dict[str, list[PipelineRun]] = {"pipeline": []}
    if baseline is not None:
        runs["baseline"] = []
    loads = [os.getloadavg()]
    for _ in range(rounds):
        bare_runs.append(bare_run(python, clip, env))
        for name, done in runs.items():
            code_env = env if name == "pipeline" else {**env, "PYTHONPATH": str(baseline)}
            done.append(pipeline_run(clip, code_env, redis_url, pg_admin, bare_runs[-1], log))
            if done[-1].frames != bare_runs[-1].frames:
                raise RuntimeError(f"frames differ: bare {bare_runs[-1].frames}, {name} {done[-1].frames}")
        loads.append(os.getloadavg())
    bare_med = statistics.median(r.wall_s for r in bare_runs)
    result: dict[str, object] = {
        "frames": bare_runs[0].frames,
        "bare_wall_s": [r.wall_s for r in bare_runs],
        "bare_wall_s_median": round(bare_med, 2),
    }
    for name, done in runs.items():
        med = statistics.median(r.wall_s for r in done)
        result.update(
            {
                f"{name}_wall_s": [r.wall_s for r in done],
                f"{name}_ratio_per_round": [r.ratio for r in done],
                f"{name}_wall_s_median": round(med, 2),
                f"{name}_ratio_of_medians": round(bare_med / med, 3),
                f"{name}_ratio_median": round(statistics.median(r.ratio for r in done), 3),
            }
        )
    result["load_average_1_5_15"] = [[round(x, 2) for x in load] for load in loads]
    result["bare_runs"] = [asdict(r) for r in bare_runs]
    for name, done in runs.items():
        result[f"{name}_runs"] = [asdict(r) for r in done]
    return result

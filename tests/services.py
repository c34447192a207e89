"""Real Redis and PostgreSQL for the tests: found where the machine runs them, or started.

Nothing is mocked: a test that needs a server gets a real one, isolated per test (its own
Redis database index, flushed; its own PostgreSQL database, dropped afterwards). Under
pytest-xdist (scripts/test runs the suite in several processes) each worker process gets a
redis-server of its own, since two workers flushing one database index would wipe each other's
queues; PostgreSQL needs nothing more, every test's database having a name of its own.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Tests use one Redis database index of their own and flush it; 0 is left to people. Two
# checkouts testing at once on one machine each set their own TEST_REDIS_DB.
REDIS_TEST_DB = int(os.environ.get("TEST_REDIS_DB", "13"))
# pytest-xdist names each of its worker processes (gw0, gw1, ...); unset in a plain pytest run.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
# Worker processes start at the same moment: the one that finds the machine's server down starts
# it while the others wait on this lock, instead of all starting it at once.
START_LOCK = Path(tempfile.gettempdir()) / "posepipe-tests-services.lock"


@contextmanager
def _start_lock() -> Iterator[None]:
    with open(START_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _redis_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.exceptions.RedisError:
        return False


def ensure_redis() -> str:
    """The base URL of a running Redis, starting the machine's redis-server if it is down."""
    with _start_lock():
        return _ensure_redis()


def _ensure_redis() -> str:
    if _redis_up(REDIS_URL):
        return REDIS_URL
    if not shutil.which("redis-server"):
        raise RuntimeError(
            f"no Redis at {REDIS_URL} and no redis-server to start (apt-get install redis-server)"
        )
    port = int(REDIS_URL.rsplit(":", 1)[-1])
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    wait_until(lambda: _redis_up(REDIS_URL), 10, f"redis-server on port {port}")
    return REDIS_URL


def _pg_up(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def ensure_postgres() -> str:
    """The admin URL of a running PostgreSQL, starting the machine's cluster if it is down."""
    with _start_lock():
        return _ensure_postgres()


def _ensure_postgres() -> str:
    if _pg_up(PG_ADMIN_URL):
        return PG_ADMIN_URL
    clusters = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").is_dir() else []
    if not clusters or not shutil.which("pg_ctlcluster"):
        raise RuntimeError(f"no PostgreSQL at {PG_ADMIN_URL} and no local cluster to start")
    version = clusters[-1].parent.name
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True)
    wait_until(lambda: _pg_up(PG_ADMIN_URL), 30, "PostgreSQL")
    return PG_ADMIN_URL


@contextmanager
def fresh_pg_database(admin_url: str) -> Iterator[str]:
    """A new empty database for one test; its URL. Dropped afterwards."""
    name = f"posepipe_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own on a free port, so it can be restarted (it keeps
    nothing on disk, like the deployed one: a restart loses every queued frame and job)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(lambda: _redis_up(self.url), 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder, on a free port), so
    it can be stopped hard and started again while posepipe writes to it."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise RuntimeError(
                "no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)"
            )
        self.bin = bins[-1].parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="posepipe-pg-", dir="/tmp"))
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.dir / "data"), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash: connections are cut, nothing is shut down cleanly."""
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop("fast")
        finally:
            server.remove()


def stop_processes(procs: list[subprocess.Popen], timeout_s: float = 30) -> None:  # type: ignore[type-arg]
    """SIGTERM each (a warm shutdown), then SIGKILL whatever has not exited in time."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def posepipe_services(env: dict[str, str], log: Path) -> Iterator[None]:
    """`posepipe ingest` and `posepipe worker` as the deployment runs them, logging to `log`;
    checks on a clean exit that neither died during the block, then stops both."""
    with open(log, "wb") as out:
        procs = [
            subprocess.Popen([sys.executable, "-m", "posepipe", cmd], env=env, stdout=out, stderr=out)
            for cmd in ("ingest", "worker")
        ]
        try:
            yield
            assert all(p.poll() is None for p in procs), "a service died during the test"
        finally:
            stop_processes(procs)

"""Shared fixtures: real media, real Redis and PostgreSQL (isolated per test), settings, services."""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from posepipe.services import Services
from posepipe.settings import Settings
from storage.db import Database
from tests import services as svc

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """Real clips: POSEPIPE_MEDIA, default ../shared/media beside the repository."""
    path = Path(os.environ.get("POSEPIPE_MEDIA", REPO.parent / "shared" / "media")).resolve()
    if not (path / "ground_truth.json").is_file():
        pytest.fail(f"shared media not found at {path}: set POSEPIPE_MEDIA to the media folder")
    return path


@pytest.fixture(scope="session")
def redis_base() -> Iterator[str]:
    """The machine's Redis; under pytest-xdist, a redis-server of this worker process's own."""
    if svc.XDIST_WORKER is None:
        yield svc.ensure_redis()
        return
    with svc.private_redis() as server:
        yield f"redis://127.0.0.1:{server.port}"


@pytest.fixture
def redis_url(redis_base: str) -> Iterator[str]:
    url = f"{redis_base}/{svc.REDIS_TEST_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def pg_admin() -> str:
    return svc.ensure_postgres()


@pytest.fixture
def pg_url(pg_admin: str) -> Iterator[str]:
    with svc.fresh_pg_database(pg_admin) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using it runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'posepipe.db'}"
    else:
        admin = request.getfixturevalue("pg_admin")
        with svc.fresh_pg_database(admin) as url:
            yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database on each of db_url's engines."""
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, media_dir: Path) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": f"sqlite:///{tmp_path / 'posepipe.db'}",
            "redis_url": None,
            "media_dir": media_dir,
            "log_level": "INFO",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def open_services() -> Iterator[Callable[[Settings], Services]]:
    opened: list[Services] = []

    def open_(settings: Settings) -> Services:
        services = Services.open(settings)
        opened.append(services)
        return services

    yield open_
    for services in opened:
        services.close()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """scripts/test's `--dist loadscope`: whole modules to a worker, the longest first (test_eval.py last)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from tests.xdist_scheduling import ModuleScheduling

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if svc.XDIST_WORKER is not None and config.getvalue("dist") == "loadscope":
        from tests.xdist_scheduling import longest_first

        longest_first(items)


# A thread left running by a test would keep the interpreter from exiting once the run is over: CI
# would sit until its time limit with no report. Name such threads, show where they are, and exit.
LINGERING_GRACE_S = 30.0


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    deadline = time.monotonic() + LINGERING_GRACE_S
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    lingering = [
        t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    # multiprocessing joins its non-daemon children at exit: a leaked worker process hangs it too.
    children = multiprocessing.active_children()
    for child in children:
        child.kill()
    if lingering or children:
        names = ", ".join([t.name for t in lingering] + [f"process {c.name} ({c.pid})" for c in children])
        sys.stderr.write(f"\nstill running after the tests (a test leaked them): {names}\n")
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        os._exit(3)

"""Database handle: engine and sessions for SQLite (default) or PostgreSQL, and schema migration.

Every command migrates to the latest schema when it starts; concurrent starts (several
workers) are serialised with a lock (a PostgreSQL advisory lock, or a file lock beside the
SQLite file) so exactly one of them runs Alembic. A database already at the newest revision
is recognised with one query and Alembic is not even imported: it costs about half a second of
start-up that every command would otherwise pay before its first result.
"""

from __future__ import annotations

import fcntl
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# SQLite writers from several processes wait this long for the write lock, not fail at once.
SQLITE_BUSY_TIMEOUT_S = 60
# Writes that must not be lost wait this long for an unreachable database to come back.
OUTAGE_LIMIT_S = 300
OUTAGE_RETRY_BASE_S = 0.5
OUTAGE_RETRY_CAP_S = 10.0
# Arbitrary constant naming posepipe's migration lock among PostgreSQL advisory locks.
PG_MIGRATION_LOCK_ID = 7_310_451_122


def normalise_url(url: str) -> str:
    """Accept the usual postgres:// URLs and use the psycopg 3 driver that is installed."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.sqlite_path: Path | None = None
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                self.sqlite_path = Path(parsed.database).expanduser().resolve()
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({redact(self.url)})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        if self.revision() == head_revision():
            return
        from alembic import command
        from alembic.config import Config

        with self._migration_lock():
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The schema revision stored in the database; None before the first migration."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):
            # No alembic_version table yet (SQLite says OperationalError, PostgreSQL ProgrammingError).
            return None

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.is_sqlite:
            if self.sqlite_path is None:
                yield
                return
            lock_path = self.sqlite_path.with_suffix(self.sqlite_path.suffix + ".migrate.lock")
            with open(lock_path, "w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_MIGRATION_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_MIGRATION_LOCK_ID})
                conn.commit()

    def write_retrying(self, work: Callable[[Session], T], what: str) -> T:
        """Run `work` in a transaction, retrying while the database is unreachable (a restart,
        a failover) for up to OUTAGE_LIMIT_S, with capped jittered waits. Errors that are not
        about reaching the database are raised at once."""
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                with self.session() as session:
                    return work(session)
            except (OperationalError, InterfaceError) as exc:
                if not _is_disconnect(exc) or time.monotonic() - started > OUTAGE_LIMIT_S:
                    raise
                delay = random.uniform(0, min(OUTAGE_RETRY_CAP_S, OUTAGE_RETRY_BASE_S * 2**attempt))
                attempt += 1
                log.warning(
                    "%s: database unreachable (%s); retrying in %.1f s", what, exc.__class__.__name__, delay
                )
                time.sleep(delay)

    def dispose(self) -> None:
        self.engine.dispose()


_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:['\"]([^'\"]*)['\"]|None)", re.M)


def head_revision() -> str:
    """The newest migration's revision id, read from the migration files' own headers: the one
    revision no other migration revises (a linear history; tests/test_storage.py checks it is
    Alembic's head)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        fields = {m.group(1): m.group(2) for m in _REVISION_LINE.finditer(path.read_text())}
        if fields.get("revision"):
            revisions.add(fields["revision"])
        if fields.get("down_revision"):
            revised.add(fields["down_revision"])
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have exactly one head, found {sorted(heads)}")
    return heads.pop()


def rows_affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched: its result is a CursorResult at run time,
    which `Session.execute`'s annotation does not say."""
    return int(cast("CursorResult[Any]", result).rowcount)


def _is_disconnect(exc: DBAPIError) -> bool:
    # SQLAlchemy marks errors that mean "the connection is gone"; a locked SQLite file is not one.
    return (
        bool(exc.connection_invalidated)
        or "connect" in str(exc.orig).lower()
        or "terminat" in str(exc.orig).lower()
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (status, progress) run while a worker writes; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()

"""The composition root: build the database, Redis (real or embedded) and worker contexts from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import fakeredis
from redis import Redis

from posepipe.settings import Settings
from storage.db import Database
from storage.secret_box import SecretBox
from workers.context import WorkerContext

log = logging.getLogger(__name__)

# Socket timeouts: a Redis that stops answering must surface as an error, never a hang.
REDIS_SOCKET_TIMEOUT_S = 30
REDIS_CONNECT_TIMEOUT_S = 5


def connect_redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        health_check_interval=30,
    )


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: Redis
    embedded_server: fakeredis.FakeServer | None

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Services:
        db = Database(settings.sqlalchemy_url)
        if migrate:
            db.migrate()
        if settings.embedded:
            # The embedded queue: RQ's own code on an in-process Redis, so `analyze` needs no server.
            server = fakeredis.FakeServer()
            return cls(settings, db, fakeredis.FakeStrictRedis(server=server), server)
        return cls(settings, db, connect_redis(str(settings.redis_url)), None)

    @property
    def embedded(self) -> bool:
        return self.embedded_server is not None

    def new_redis(self) -> Redis:
        """Another client on the same Redis (each worker thread gets its own)."""
        if self.embedded_server is not None:
            return fakeredis.FakeStrictRedis(server=self.embedded_server)
        return connect_redis(str(self.settings.redis_url))

    def worker_context(self) -> WorkerContext:
        # The embedded queue runs no RQ scheduler, so retries there are immediate.
        return WorkerContext.create(
            self.settings, self.db, self.new_redis(), retry_intervals=not self.embedded
        )

    def secret_box(self) -> SecretBox:
        return SecretBox.from_settings(self.settings.secret_key, self.settings.data_dir)

    def close(self) -> None:
        self.db.dispose()

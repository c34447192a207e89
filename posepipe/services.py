"""The composition root: the database, Redis clients (real or embedded) and worker contexts from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import fakeredis
from redis import Redis
from redis.connection import Encoder, HiredisRespSerializer, PythonRespSerializer
from redis.utils import HIREDIS_AVAILABLE

from posepipe.settings import Settings
from storage.db import Database
from storage.secret_box import SecretBox
from workers.context import WorkerContext

log = logging.getLogger(__name__)

# Socket timeouts: a Redis that stops answering must surface as an error, never a hang.
REDIS_SOCKET_TIMEOUT_S = 30
REDIS_CONNECT_TIMEOUT_S = 5


# An argument this long is a frame payload (a 320x240 raw frame is 230 KB; commands are tiny).
LARGE_ARGUMENT_BYTES = 64 * 1024


class FramePayloadPacker:
    """Packs commands for redis-py: hiredis for ordinary ones, redis-py's own serializer for a
    command carrying a frame.

    With hiredis installed, redis-py packs every command into one new buffer, copying a
    frame's pixels on the way: 3 ms of the ingester's CPU for a 720p frame, as much as
    decoding it. redis-py's own serializer sends a large argument as it is.
    """

    def __init__(self) -> None:
        self._plain = PythonRespSerializer(LARGE_ARGUMENT_BYTES, Encoder("utf-8", "strict", False).encode)
        self._small = HiredisRespSerializer() if HIREDIS_AVAILABLE else self._plain

    def pack(self, *args: object) -> list[bytes]:
        large = any(isinstance(a, (bytes, memoryview)) and len(a) > LARGE_ARGUMENT_BYTES for a in args)
        return (self._plain if large else self._small).pack(*args)  # type: ignore[arg-type]


def connect_redis(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        health_check_interval=30,
        command_packer=FramePayloadPacker(),
    )


def _embedded_redis(server: fakeredis.FakeServer) -> Redis:
    return fakeredis.FakeStrictRedis(server=server, command_packer=FramePayloadPacker())


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
            return cls(settings, db, _embedded_redis(server), server)
        return cls(settings, db, connect_redis(str(settings.redis_url)), None)

    @property
    def embedded(self) -> bool:
        return self.embedded_server is not None

    def new_redis(self) -> Redis:
        """Another client on the same Redis (each worker thread gets its own)."""
        if self.embedded_server is not None:
            return _embedded_redis(self.embedded_server)
        return connect_redis(str(self.settings.redis_url))

    def worker_context(self) -> WorkerContext:
        # The embedded queue runs no RQ scheduler, so retries there are immediate.
        return WorkerContext.create(
            self.settings.for_workers(), self.db, self.new_redis(), retry_intervals=not self.embedded
        )

    def secret_box(self) -> SecretBox:
        return SecretBox.from_settings(self.settings.secret_key, self.settings.data_dir)

    def close(self) -> None:
        self.db.dispose()

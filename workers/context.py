"""What a job runs with: settings, database, Redis, frame store, queue, and this worker's pose model.

One WorkerContext exists per worker (a process, or a thread in embedded mode) and is bound
while that worker executes a job; jobs reach it with `current()`. The pose model is built
on first use and then kept for every later job of the worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis import Redis

from analytics.config import AnalyticsConfig
from analytics.events import Exercise
from pipeline.framestore import FrameStore
from pipeline.queue import JobQueue
from pose.estimator import PoseEstimator, create_estimator, pose_spec
from storage.db import Database
from workers.settings import WorkerSettings

if TYPE_CHECKING:  # the analytics engine is imported by the jobs that need it, not with the context
    from storage.analytics_state import SavedEngine

log = logging.getLogger(__name__)

# Pose models a worker keeps for live sessions (each ~100 MB); the least recently used goes.
MAX_SESSION_MODELS = 8
# A session model unused this long is closed: its session ended (the end job ran on another
# worker) or moved to other workers, and its memory is better returned.
SESSION_MODEL_IDLE_S = 60.0
# Tracking continues from the last frame this model posed when the chunk starts at most this
# much later: one 4-frame chunk dropped in between when the worker is behind (workers.live
# thins every other chunk: 0.5 s at 10 fps; bench/tracking_gap.py measured it). A person
# walking moves about a third of their height in that time, which MediaPipe's region from the
# previous landmarks still covers; where it does not, MediaPipe finds no pose in the region and
# runs its detector, as it would after a reset. A reset costs an inference on a blank frame and a
# detection (pose.estimator).
TRACKING_MAX_GAP_S = 0.5


@dataclass
class _SessionModel:
    estimator: PoseEstimator
    last_pts_s: float | None = None  # the last frame it posed, session time
    last_used: float = field(default_factory=time.monotonic)
    # The session's analytics engine as this worker last saved it (see `take_session_engine`).
    saved_engine: SavedEngine | None = None


@dataclass
class WorkerContext:
    settings: WorkerSettings
    db: Database
    redis: Redis
    frames: FrameStore
    queue: JobQueue
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}")
    _estimator: PoseEstimator | None = None  # the model the last file chunk used
    _estimators: dict[str, PoseEstimator] = field(default_factory=dict)
    _sessions: OrderedDict[int, _SessionModel] = field(default_factory=OrderedDict)

    @classmethod
    def create(
        cls, settings: WorkerSettings, db: Database, redis: Redis, *, retry_intervals: bool = True
    ) -> WorkerContext:
        frames = FrameStore(
            redis,
            ttl_s=settings.frame_ttl_s,
            encoding=settings.frame_encoding,
            jpeg_quality=settings.jpeg_quality,
        )
        queue = JobQueue(
            redis,
            job_timeout_s=settings.job_timeout_s,
            retries=settings.job_retries,
            retry_intervals=retry_intervals,
        )
        return cls(settings=settings, db=db, redis=redis, frames=frames, queue=queue)

    def estimator(self, backend: str | None = None) -> PoseEstimator:
        """This worker's model for `backend` (the video's pose spec, pose.estimator; default the
        settings' backend and model), built once and kept."""
        name = backend or self.default_pose_spec
        if name not in self._estimators:
            self._estimators[name] = create_estimator(name, self.settings.pose_min_confidence)
        self._estimator = self._estimators[name]
        return self._estimator

    @property
    def default_pose_spec(self) -> str:
        return pose_spec(self.settings.pose_backend, self.settings.pose_model, self.settings.hands)

    def session_estimator(
        self, video_id: int, first_pts_s: float, backend: str | None = None
    ) -> PoseEstimator:
        """This worker's pose model for a live session (`backend`: the camera's). Tracking
        continues when this chunk starts soon after the last frame the model posed (see
        TRACKING_MAX_GAP_S); otherwise it starts afresh, like a file's chunk."""
        self._close_idle_sessions(keep=video_id)
        entry = self._sessions.pop(video_id, None)
        if entry is None:
            name = backend or self.default_pose_spec
            entry = _SessionModel(create_estimator(name, self.settings.pose_min_confidence))
            log.info("video=%s: session pose model built (%d held)", video_id, len(self._sessions) + 1)
        elif entry.last_pts_s is None or not 0 < first_pts_s - entry.last_pts_s <= TRACKING_MAX_GAP_S:
            entry.estimator.reset()
        entry.last_used = time.monotonic()
        self._sessions[video_id] = entry  # most recently used last
        while len(self._sessions) > MAX_SESSION_MODELS:
            evicted_id, evicted = self._sessions.popitem(last=False)
            evicted.estimator.close()
            log.info("video=%s: session pose model evicted (%d held)", evicted_id, len(self._sessions))
        return entry.estimator

    def note_session_posed(self, video_id: int, last_pts_s: float) -> None:
        if video_id in self._sessions:
            self._sessions[video_id].last_pts_s = last_pts_s

    def take_session_engine(self, video_id: int) -> SavedEngine | None:
        """The session's engine as this worker last saved it, given up by the worker: the job
        now changes it, and only `keep_session_engine` after its commit makes it current again.
        Unpickling a session's state costs ~1 ms a chunk; when no other worker analysed the
        session since, the stored state is this one's bytes (storage.analytics_state.load)."""
        entry = self._sessions.get(video_id)
        if entry is None:
            return None
        saved, entry.saved_engine = entry.saved_engine, None
        return saved

    def keep_session_engine(self, video_id: int, saved: SavedEngine) -> None:
        """Call once the state `saved` is committed."""
        if video_id in self._sessions:
            self._sessions[video_id].saved_engine = saved

    def forget_session(self, video_id: int) -> None:
        entry = self._sessions.pop(video_id, None)
        if entry is not None:
            entry.estimator.close()
            log.info("video=%s: session pose model closed (%d held)", video_id, len(self._sessions))

    def _close_idle_sessions(self, keep: int) -> None:
        now = time.monotonic()
        idle = [
            v for v, e in self._sessions.items() if v != keep and now - e.last_used > SESSION_MODEL_IDLE_S
        ]
        for video_id in idle:
            self.forget_session(video_id)

    def analytics_config(self, exercise: str | None, long_lie_s: float | None = None) -> AnalyticsConfig:
        """`long_lie_s`: a camera's own long-lie time; None takes the deployment's."""
        return AnalyticsConfig(
            exercise=Exercise(exercise) if exercise else None,
            track_lost_after_s=self.settings.track_lost_s,
            long_lie_after_s=long_lie_s if long_lie_s is not None else self.settings.long_lie_s,
        )

    def close(self) -> None:
        for estimator in self._estimators.values():
            estimator.close()
        self._estimators.clear()
        self._estimator = None
        for entry in self._sessions.values():
            entry.estimator.close()
        self._sessions.clear()


_current: ContextVar[WorkerContext | None] = ContextVar("posepipe_worker_context", default=None)


def current() -> WorkerContext:
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("no worker context bound: jobs run inside a posepipe worker")
    return ctx


@contextmanager
def bound(ctx: WorkerContext) -> Iterator[WorkerContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)

"""Which worker a live camera session's jobs go to: the same one, while it is alive and taking them.

A worker keeps a pose model per camera session and continues MediaPipe's tracking when a
chunk follows the last frame that model posed (workers.context). Sent to whichever worker is
free, a session's chunks alternate between workers, and a model often sees its next chunk
0.7 s or more after its last frame: it must forget the person and find them again with the
detector, which makes a 3-frame chunk's frames cost 1.5x (2x while a reset restarted
MediaPipe's graph; 5 streams on 2 workers: 528 of 657 chunks reset).
So every worker also listens, first, on a live queue of its own (keys.live_worker_queue),
and the ingester sends each session's jobs to one worker's queue, placing new sessions on
the worker with the fewest.

A session moves to the least-loaded other worker when its worker has left RQ's registry, when
the job at the head of that worker's queue has waited `stuck_after_s` (the worker died
without deregistering, or is held up by a long job), when its worker holds two sessions
more than another (workers that start or come back after the cameras were placed get their
share; otherwise the first worker up keeps every camera), or when its worker is behind and
another is not (load: see `_relief`). Its queued job and the ones RQ's
RateLimit holds back move with it, so none is left on a queue nobody reads. With no worker
listening on a queue of its own, jobs go to the shared live queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from redis import Redis
from rq import Queue, Worker
from rq.rate_limit import RateLimitRegistry

from pipeline import keys
from pipeline.rq_private import head_waited_s, job_origins, move_jobs, put_back, queued_nowhere

log = logging.getLogger(__name__)

# How long the list of workers is trusted: reading it costs a round trip per worker.
WORKERS_REFRESH_S = 2.0
# A live job waits at the head of its worker's queue for a fraction of a second: the worker
# takes its own queue before any other. Waiting this long means it is not taking jobs.
STUCK_AFTER_S = 5.0
# A queue found not taking jobs gets no session for this long. A worker killed mid-job stays
# in RQ's registry until that job's timeout (120 s by default) plus a minute.
SHUN_S = 180.0
# A worker is behind a camera when the oldest frame of it still waiting is this old. A worker
# keeping up shows about one chunk being posed while the next fills (0.4-0.5 s at the default
# 4 frames at 10 fps); workers start thinning a camera's chunks at 1 s (live_thin_lag_s). In
# between, so the load moves before frames are dropped. (5 streams on 2 workers, alternating
# runs: 0.6 and 1.0 did not differ beyond run-to-run noise; docs/benchmarks.md.)
BEHIND_S = 0.6
# After a session moved for load, the lags reported must first show the new placement: every
# session reports with each chunk (a few times a second), its old lag until then.
REBALANCE_EVERY_S = 5.0


class LiveRouter:
    """Thread-safe: one router serves every camera of an ingester."""

    def __init__(
        self,
        redis: Redis,
        *,
        stuck_after_s: float = STUCK_AFTER_S,
        refresh_s: float = WORKERS_REFRESH_S,
        behind_s: float = BEHIND_S,
        rebalance_every_s: float = REBALANCE_EVERY_S,
    ) -> None:
        self.redis = redis
        self.stuck_after_s = stuck_after_s
        self.refresh_s = refresh_s
        self.behind_s = behind_s
        self.rebalance_every_s = rebalance_every_s
        self._assigned: dict[int, str] = {}
        self._lag_s: dict[int, float] = {}
        self._rebalanced_at = float("-inf")
        self._shunned: dict[str, float] = {}  # queue -> when it was found not taking jobs
        self._worker_queues: list[str] = []
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def queue_for(self, video_id: int, lag_s: float = 0.0) -> str:
        """The queue for this session's next job; moves its waiting jobs if that changed.

        `lag_s`: how old the session's oldest frame still waiting for a worker is."""
        with self._lock:
            self._lag_s[video_id] = lag_s
            live = self._live_worker_queues()
            current = self._assigned.get(video_id)
            if current in live and not self._crowded(current, live) and not self._stuck(current):
                target = self._relief(current, live)
                if target is None:
                    return current
                # Routine: the camera's load is shared in turns (see _relief).
                moved = self._move_jobs(video_id, current, target)
                log.info("video=%s: live jobs moved %s -> %s for load (%d)", video_id, current, target, moved)
            else:
                others = [q for q in live if q != current] or live
                target = self._least_loaded(others) if others else keys.QUEUE_LIVE
                if current is not None and current != target:
                    moved = self._move_jobs(video_id, current, target)
                    log.warning("video=%s: live jobs moved %s -> %s (%d)", video_id, current, target, moved)
            self._assigned[video_id] = target
            return target

    def forget(self, video_id: int) -> None:
        with self._lock:
            self._assigned.pop(video_id, None)
            self._lag_s.pop(video_id, None)

    def _live_worker_queues(self) -> list[str]:
        checked_at = time.monotonic()
        if checked_at - self._read_at >= self.refresh_s:
            self._worker_queues = sorted(
                name
                for worker in Worker.all(connection=self.redis)
                for name in worker.queue_names()
                if keys.is_live_worker_queue(name)
            )
            self._read_at = checked_at
        shunned_since = checked_at - SHUN_S
        return [q for q in self._worker_queues if self._shunned.get(q, shunned_since) <= shunned_since]

    def _least_loaded(self, queues: list[str]) -> str:
        load = self._load(queues)
        return min(queues, key=lambda q: (load[q], q))

    def _load(self, queues: list[str]) -> Counter[str]:
        return Counter(q for q in self._assigned.values() if q in queues)

    def _crowded(self, queue_name: str, live: list[str]) -> bool:
        # Two sessions more than the least-loaded worker: a worker joined (or came back) after
        # sessions were placed. Moving one evens them out; a difference of one cannot be.
        load = self._load(live)
        return load[queue_name] - min(load[q] for q in live) >= 2

    def _relief(self, queue_name: str, live: list[str]) -> str | None:
        """A worker to take one of this worker's sessions, when this one is behind and that one
        is not; None to stay.

        Sessions are placed by count, but one worker may be slower, or hold heavier cameras, or
        (with an odd number of cameras) one more: it falls behind while the other has time to
        spare, and its cameras are thinned. Moving a session costs one tracking restart; moving
        it back later, when the other worker is the one behind, shares the odd camera's load in
        turns. A move never leaves the target with two sessions more, which the count rule
        would undo."""
        if time.monotonic() - self._rebalanced_at < self.rebalance_every_s:
            return None
        worst: dict[str, float] = dict.fromkeys(live, 0.0)
        for video_id, queue in self._assigned.items():
            if queue in worst:
                worst[queue] = max(worst[queue], self._lag_s.get(video_id, 0.0))
        if worst[queue_name] < self.behind_s:
            return None
        load = self._load(live)
        candidates = [
            q
            for q in live
            if worst[q] <= worst[queue_name] - self.behind_s / 2 and load[q] < load[queue_name]
        ]
        if not candidates:
            return None
        self._rebalanced_at = time.monotonic()
        return min(candidates, key=lambda q: (worst[q], q))

    def _stuck(self, queue_name: str) -> bool:
        if head_waited_s(self.redis, queue_name) <= self.stuck_after_s:
            return False
        # A worker killed mid-job stays registered until that job's timeout: not a target again.
        self._shunned[queue_name] = time.monotonic()
        return True

    def _move_jobs(self, video_id: int, old: str, new: str) -> int:
        limit = RateLimitRegistry(keys.live_rate_limit(video_id), connection=self.redis)
        return move_jobs(self.redis, old, new, _session_job_ids(limit))


def _session_job_ids(limit: RateLimitRegistry) -> list[str]:
    """A session's job that RateLimit lets run (queued or running), then the ones it holds back."""
    return [*limit.get_allowed_job_ids(), *limit.get_rate_limited_job_ids()]


def evacuate(redis: Redis, queue_name: str, to: str = keys.QUEUE_LIVE) -> int:
    """Send every job queued on `queue_name` to `to`, and point there the camera jobs whose
    RateLimit holds them for that queue (released later into their origin, they would land on
    it again). Returns how many queued jobs moved."""
    limited = [job_id for limit in RateLimitRegistry.all(redis) for job_id in _session_job_ids(limit)]
    origins = job_origins(redis, limited)
    bound_here = [job_id for job_id, origin in zip(limited, origins, strict=True) if origin == queue_name]
    # A job both queued and held appears twice: the second pass only sets its origin again.
    queued = Queue(queue_name, connection=redis).get_job_ids()
    return move_jobs(redis, queue_name, to, [*queued, *bound_here])


def taken_not_started(redis: Redis, origins: set[str] | None = None) -> list[tuple[str, str]]:
    """Session jobs RateLimit lets run whose status says queued but that are in no queue, with
    their origin (only those from `origins`, if given): [(job id, origin)], oldest first.

    A worker takes a job with a blocking pop: between the pop and marking the job started (a
    few milliseconds), the job is in no list and no registry. A killed worker's pop may even be
    answered after its death, while the RQ scheduler it forked still holds its connection. Seen
    so for longer, the job is lost, and as it keeps its RateLimit slot, the session's later jobs
    are held behind a job nobody will run: the camera would never be analysed again."""
    allowed = [job_id for limit in RateLimitRegistry.all(redis) for job_id in limit.get_allowed_job_ids()]
    return queued_nowhere(redis, allowed, origins)


def hand_over_dead_queue(redis: Redis, queue_name: str, to: str = keys.QUEUE_LIVE) -> tuple[int, int]:
    """The queue of a worker known to be dead: the camera jobs it had taken but not started go
    back on it, then everything on it goes to `to` (see evacuate). Returns (put back, moved)."""
    restored = put_back(redis, taken_not_started(redis, {queue_name}))
    return restored, evacuate(redis, queue_name, to)


def live_worker_queues(redis: Redis) -> list[Queue]:
    """Every worker's own live queue RQ knows of, the queues of workers long gone included."""
    return [queue for queue in Queue.all(connection=redis) if keys.is_live_worker_queue(queue.name)]

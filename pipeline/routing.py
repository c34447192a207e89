"""Which worker a live camera session's jobs go to: the same one, while it is alive and taking them.

A worker keeps a pose model per camera session and continues MediaPipe's tracking when a
chunk follows the last frame that model posed (workers.context). Sent to whichever worker is
free, a session's chunks alternate between workers, and a model often sees its next chunk
0.7 s or more after its last frame: it must restart its graph and run the detector, which
doubles the cost of a posed frame (5 streams on 2 workers: 528 of 657 chunks restarted).
So every worker also listens, first, on a live queue of its own (keys.live_worker_queue),
and the ingester sends each session's jobs to one worker's queue, balancing sessions by count.

A session moves to the least-loaded other worker when its worker has left RQ's registry, or
when the job at the head of that worker's queue has waited `stuck_after_s` (the worker died
without deregistering, or is held up by a long job). Its queued job and the ones RQ's
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
from rq.job import Job
from rq.rate_limit import RateLimitRegistry
from rq.utils import as_text, now, utcformat, utcparse

from pipeline import keys

log = logging.getLogger(__name__)

# How long the list of workers is trusted: reading it costs a round trip per worker.
WORKERS_REFRESH_S = 2.0
# A live job waits at the head of its worker's queue for a fraction of a second: the worker
# takes its own queue before any other. Waiting this long means it is not taking jobs.
STUCK_AFTER_S = 5.0

# Point jobs at a new queue: their origin (where RateLimit will push the held ones), and the
# list they are queued in, where they count as queued now (the stuck test reads that time).
# Atomic, so a job is never in both queues, or in neither.
# KEYS: old queue list, new queue list. ARGV: job key prefix, new queue name, now, job ids.
_MOVE = """
local moved = 0
for i = 4, #ARGV do
  local job_key = ARGV[1] .. ARGV[i]
  if redis.call('EXISTS', job_key) == 1 then
    redis.call('HSET', job_key, 'origin', ARGV[2])
    if redis.call('LREM', KEYS[1], 0, ARGV[i]) > 0 then
      redis.call('HSET', job_key, 'enqueued_at', ARGV[3])
      redis.call('RPUSH', KEYS[2], ARGV[i])
      moved = moved + 1
    end
  end
end
return moved
"""


class LiveRouter:
    """Thread-safe: one router serves every camera of an ingester."""

    def __init__(
        self, redis: Redis, *, stuck_after_s: float = STUCK_AFTER_S, refresh_s: float = WORKERS_REFRESH_S
    ) -> None:
        self.redis = redis
        self.stuck_after_s = stuck_after_s
        self.refresh_s = refresh_s
        self._assigned: dict[int, str] = {}
        self._worker_queues: list[str] = []
        self._read_at = float("-inf")
        self._lock = threading.Lock()
        self._move = redis.register_script(_MOVE)

    def queue_for(self, video_id: int) -> str:
        """The queue for this session's next job; moves its waiting jobs if that changed."""
        with self._lock:
            live = self._live_worker_queues()
            current = self._assigned.get(video_id)
            if current is not None and current in live and not self._stuck(current):
                return current
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
        return self._worker_queues

    def _least_loaded(self, queues: list[str]) -> str:
        load = Counter(q for q in self._assigned.values() if q in queues)
        return min(queues, key=lambda q: (load[q], q))

    def _stuck(self, queue_name: str) -> bool:
        head = self.redis.lindex(Queue(queue_name, connection=self.redis).key, 0)
        enqueued = self.redis.hget(Job.key_for(as_text(head)), "enqueued_at") if head else None
        if not enqueued:
            return False
        return time.time() - utcparse(as_text(enqueued)).timestamp() > self.stuck_after_s

    def _move_jobs(self, video_id: int, old: str, new: str) -> int:
        limit = RateLimitRegistry(keys.live_rate_limit(video_id), connection=self.redis)
        job_ids = [*limit.get_allowed_job_ids(), *limit.get_rate_limited_job_ids()]
        if not job_ids:
            return 0
        old_key, new_key = (Queue(q, connection=self.redis).key for q in (old, new))
        args = [Job.redis_job_namespace_prefix, new, utcformat(now()), *job_ids]
        return int(self._move(keys=[old_key, new_key], args=args))

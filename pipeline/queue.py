"""The job queue: how ingest hands work to the workers (RQ on Redis, or on the embedded fake Redis).

Jobs are named by dotted path, so the ingest side never imports worker code, and carry only
ids and frame ranges, as one typed argument each (pipeline.job_types): pixels stay in the
frame store. Pose jobs of one video run in
parallel; its analytics jobs are serialised by an RQ RateLimit so frames reach the
detectors in order. A camera session's jobs are serialised the same way and go to one
worker's own queue (pipeline.routing).
"""

from __future__ import annotations

from redis import Redis
from rq import Queue, RateLimit, Retry
from rq.job import Callback, Job

from pipeline import keys
from pipeline.job_types import ChunkJob, RunJob, SegmentJob
from pipeline.routing import LiveRouter

POSE_JOB = "workers.jobs.pose_chunk"
ANALYTICS_JOB = "workers.jobs.analyse"
INGEST_JOB = "workers.ingest.ingest_video"
SEGMENT_JOB = "workers.ingest.ingest_segment"
LIVE_JOB = "workers.live.live_chunk"
LIVE_FINISH_JOB = "workers.live.live_finish"
FAILURE_CALLBACK = "workers.jobs.on_job_failure"

# Seconds before retrying a failed job (needs a worker running RQ's scheduler; embedded
# mode retries at once). Short, because most failures are a database or Redis blip.
RETRY_INTERVALS_S = [1, 5, 15]
# Finished job records are only for inspection; failures stay a week for post-mortems.
RESULT_TTL_S = 3600
FAILURE_TTL_S = 7 * 24 * 3600
# A camera makes several jobs a second: keep their records only briefly.
LIVE_RESULT_TTL_S = 60
# An ingest job decodes a whole file and blocks on the frame window: it may run for hours.
INGEST_TIMEOUT_S = 24 * 3600


class JobQueue:
    def __init__(
        self, redis: Redis, *, job_timeout_s: int, retries: int, retry_intervals: bool = True
    ) -> None:
        self.redis = redis
        self.pose = Queue(keys.QUEUE_POSE, connection=redis, default_timeout=job_timeout_s)
        self.analytics = Queue(keys.QUEUE_ANALYTICS, connection=redis, default_timeout=job_timeout_s)
        self.ingest = Queue(keys.QUEUE_INGEST, connection=redis, default_timeout=INGEST_TIMEOUT_S)
        self.segment = Queue(keys.QUEUE_SEGMENT, connection=redis, default_timeout=INGEST_TIMEOUT_S)
        self._retries = retries
        self._intervals = RETRY_INTERVALS_S if retry_intervals else 0
        self.router = LiveRouter(redis)
        self.default_timeout_s = job_timeout_s

    def _live_queue(self, video_id: int, lag_s: float = 0.0) -> Queue:
        name = self.router.queue_for(video_id, lag_s)
        return Queue(name, connection=self.redis, default_timeout=self.default_timeout_s)

    def _retry(self) -> Retry | None:
        return Retry(max=self._retries, interval=self._intervals) if self._retries else None

    def enqueue_pose(self, video_id: int, run: str, chunk_idx: int, seq_from: int, seq_to: int) -> Job:
        return self.pose.enqueue(
            POSE_JOB,
            ChunkJob(video_id, run, chunk_idx, seq_from, seq_to),
            job_id=keys.pose_job_id(video_id, run, chunk_idx),
            retry=self._retry(),
            on_failure=Callback(FAILURE_CALLBACK),
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def enqueue_analytics(self, video_id: int, run: str) -> Job:
        return self.analytics.enqueue(
            ANALYTICS_JOB,
            RunJob(video_id, run),
            rate_limit=RateLimit(keys.analytics_rate_limit(video_id), concurrency=1),
            retry=self._retry(),
            on_failure=Callback(FAILURE_CALLBACK),
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def enqueue_ingest(self, video_id: int, run: str) -> Job:
        return self.ingest.enqueue(
            INGEST_JOB,
            RunJob(video_id, run),
            job_id=keys.ingest_job_id(video_id, run),
            retry=self._retry(),
            on_failure=Callback(FAILURE_CALLBACK),
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def enqueue_segment(self, video_id: int, run: str, seq_from: int, seq_to: int) -> Job:
        """A part of a long file, frames [seq_from, seq_to), for whichever worker has nothing to pose."""
        job_id = keys.segment_job_id(video_id, run, seq_from)
        self.redis.sadd(keys.segment_jobs(video_id, run), job_id)
        return self.segment.enqueue(
            SEGMENT_JOB,
            SegmentJob(video_id, run, seq_from, seq_to),
            job_id=job_id,
            retry=self._retry(),
            on_failure=Callback(FAILURE_CALLBACK),
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def enqueue_live(
        self, video_id: int, run: str, chunk_idx: int, seq_from: int, seq_to: int, lag_s: float = 0.0
    ) -> Job:
        """`lag_s`: how old the session's oldest frame still waiting for a worker is (routing)."""
        # One retry at once: a live chunk is worth retrying only while it is fresh (the job
        # drops it itself when it has gone stale), and its writes are idempotent.
        return self._live_queue(video_id, lag_s).enqueue(
            LIVE_JOB,
            ChunkJob(video_id, run, chunk_idx, seq_from, seq_to),
            job_id=keys.live_job_id(video_id, run, chunk_idx),
            rate_limit=RateLimit(keys.live_rate_limit(video_id), concurrency=1),
            retry=Retry(max=1, interval=0),
            on_failure=Callback(FAILURE_CALLBACK),
            result_ttl=LIVE_RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def enqueue_live_finish(self, video_id: int, run: str) -> Job:
        queue = self._live_queue(video_id)  # after the session's last chunk, on the same worker
        self.router.forget(video_id)
        return queue.enqueue(
            LIVE_FINISH_JOB,
            RunJob(video_id, run),
            job_id=keys.live_finish_job_id(video_id, run),
            rate_limit=RateLimit(keys.live_rate_limit(video_id), concurrency=1),
            retry=self._retry(),
            result_ttl=LIVE_RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

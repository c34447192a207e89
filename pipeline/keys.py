"""Every Redis key and queue name posepipe uses, in one place (RQ's own keys are RQ's business).

Keys of one analysis run share a hash tag `{v<video>:<run>}` so a Redis Cluster keeps them
on one node, which the frame store's Lua script needs.
"""

from __future__ import annotations

PREFIX = "posepipe"

QUEUE_INGEST = f"{PREFIX}:ingest"
QUEUE_POSE = f"{PREFIX}:pose"
# Analytics jobs are short and unblock progress, so workers listen to this queue first.
QUEUE_ANALYTICS = f"{PREFIX}:analytics"
# Live chunks are latency-bound: workers take them before anything else.
QUEUE_LIVE = f"{PREFIX}:live"
# Parts of long files (pipeline.segments): workers decode one only when there is nothing to pose.
QUEUE_SEGMENT = f"{PREFIX}:segment"
WORKER_QUEUES = (QUEUE_LIVE, QUEUE_ANALYTICS, QUEUE_POSE, QUEUE_SEGMENT)
_LIVE_WORKER_QUEUE = f"{QUEUE_LIVE}:worker:"


def live_worker_queue(worker_name: str) -> str:
    """One worker's own live queue: the camera sessions routed to it (pipeline.routing)."""
    return f"{_LIVE_WORKER_QUEUE}{worker_name}"


def is_live_worker_queue(queue_name: str) -> bool:
    return queue_name.startswith(_LIVE_WORKER_QUEUE)


def _run_tag(video_id: int, run: str) -> str:
    return f"{{v{video_id}:{run}}}"


def frame(video_id: int, run: str, seq: int) -> str:
    """One sampled frame's payload."""
    return f"{PREFIX}:frame:{_run_tag(video_id, run)}:{seq}"


def frame_pattern(video_id: int, run: str) -> str:
    return f"{PREFIX}:frame:{_run_tag(video_id, run)}:*"


def queued_frames(video_id: int, run: str) -> str:
    """Counter of this run's frames written and not yet released: the ingest window."""
    return f"{PREFIX}:queued:{_run_tag(video_id, run)}"


def ingest_lease(video_id: int, run: str) -> str:
    """Held (with a TTL, refreshed) by the one process ingesting this run. Gone after a
    Redis restart or when its holder died: the run must then be resumed."""
    return f"{PREFIX}:lease:{_run_tag(video_id, run)}"


def segment_plan(video_id: int, run: str) -> str:
    """Hash: a run's SegmentPlan (what one ingester samples, where parts start), while parts are queued."""
    return f"{PREFIX}:segment-plan:{_run_tag(video_id, run)}"


def segment_chunks(video_id: int, run: str) -> str:
    """Set of the chunk indices a run's ingest jobs have queued (or found stored): complete when
    it holds every chunk, and whoever completes it records the end of the ingest."""
    return f"{PREFIX}:segment-chunks:{_run_tag(video_id, run)}"


def segment_jobs(video_id: int, run: str) -> str:
    """Set of a run's segment job ids: while one will still run, the run is not stalled."""
    return f"{PREFIX}:segment-jobs:{_run_tag(video_id, run)}"


def segments_off(video_id: int) -> str:
    """Set when a video's decoding did not match its packets: it is ingested in one pass from then on."""
    return f"{PREFIX}:segments-off:v{video_id}"


def segment_job_id(video_id: int, run: str, seq_from: int) -> str:
    return f"{PREFIX}-segment-v{video_id}-{run}-s{seq_from}"


def analytics_rate_limit(video_id: int) -> str:
    """RQ RateLimit key: one analytics job per video at a time, so frames are seen in order."""
    return f"{PREFIX}-analytics-v{video_id}"


def live_rate_limit(video_id: int) -> str:
    """RQ RateLimit key: a live session's jobs one at a time, in order (tracking, reps, falls)."""
    return f"{PREFIX}-live-v{video_id}"


def live_drops(video_id: int) -> str:
    """Hash of frames a live session's workers dropped, by cause (read by the ingester)."""
    return f"{PREFIX}:live-drops:v{video_id}"


def pose_job_id(video_id: int, run: str, chunk: int) -> str:
    return f"{PREFIX}-pose-v{video_id}-{run}-c{chunk}"


def live_job_id(video_id: int, run: str, chunk: int) -> str:
    """Sorts in chunk order: RQ's RateLimit releases held jobs by a timestamp in whole seconds,
    and jobs of the same second by id (a camera queues ~3 a second). Random ids ran a
    session's chunks out of order."""
    return f"{PREFIX}-live-v{video_id}-{run}-c{chunk:010d}"


def live_finish_job_id(video_id: int, run: str) -> str:
    """Sorts after every chunk of the session ('f' > 'c')."""
    return f"{PREFIX}-live-v{video_id}-{run}-finish"


def ingest_job_id(video_id: int, run: str) -> str:
    return f"{PREFIX}-ingest-v{video_id}-{run}"


def live_watched(video_id: int) -> str:
    """Set, with a short TTL, while someone watches this camera session's live view: a live
    chunk keeps its last frame (`live_view`) only while it exists."""
    return f"{PREFIX}:live-watched:v{video_id}"


def live_view(video_id: int) -> str:
    """Hash: a camera session's latest analysed frame (JPEG) and the analytics' state at it,
    overwritten by each chunk while the session is watched (workers.live_view)."""
    return f"{PREFIX}:live-view:v{video_id}"

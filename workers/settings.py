"""What jobs read of the deployment's settings: a frozen copy, made from posepipe's Settings
(`Settings.for_workers`), so that workers need not import the app's settings model."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.payload import FrameEncoding


@dataclass(frozen=True)
class WorkerSettings:
    """Each field is the Settings field of the same name (see posepipe.settings for its meaning)."""

    # Frames in Redis and the job queue (WorkerContext.create).
    frame_ttl_s: int
    frame_encoding: FrameEncoding
    jpeg_quality: int
    job_timeout_s: int
    job_retries: int
    # The pose model a worker builds (WorkerContext.estimator).
    pose_backend: str
    pose_model: str
    hands: bool
    pose_min_confidence: float
    # Analytics (WorkerContext.analytics_config).
    track_lost_s: float
    long_lie_s: float
    # A file's ingest and its parts (workers.ingest).
    chunk_frames: int
    max_queued_mb: float
    frame_max_side: int
    workers_per_segment: int
    segment_min_s: float
    # Live chunks a worker thins or drops when behind (workers.live).
    live_thin_lag_s: float
    live_max_lag_s: float

"""File ingest: decode a video, sample it, put the frames in the frame store and queue pose jobs by chunk.

Backpressure, not loss: when a run's waiting frames fill `max_queued_bytes` of Redis, the
ingester waits for workers to release some. The window is counted in frames, sized from the
first frame's payload (every frame of a file has the same size), and always holds at least
two chunks, so one chunk fills while the one before it is being posed. Writes no database
rows; its caller records what it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.framestore import FrameStore
from pipeline.queue import JobQueue
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile

log = logging.getLogger(__name__)

# Double buffering: the window never holds fewer than two chunks, whatever the byte bound.
MIN_WINDOW_CHUNKS = 2


@dataclass(frozen=True)
class IngestPlan:
    video_id: int
    run: str
    fps: float
    chunk_frames: int
    max_queued_bytes: int
    frame_max_side: int


@dataclass(frozen=True)
class IngestResult:
    frames_total: int
    chunks_total: int
    decode_errors: int
    ingest_s: float
    wait_s: float
    payload_bytes: int


class IngestStopped(Exception):
    """The ingest was asked to stop (the run was superseded or the process is shutting down)."""


class LeaseLost(Exception):
    """Another process has taken over this run (its lease moved): this ingest must stop."""


def ingest_file(
    video: VideoFile,
    plan: IngestPlan,
    frames: FrameStore,
    queue: JobQueue,
    keep_going: Callable[[], bool] = lambda: True,
    skip_chunk: Callable[[int], bool] = lambda _idx: False,
) -> IngestResult:
    """Decode, sample and queue a whole file, chunk by chunk.

    Chunk k is always frames [k*C, (k+1)*C) of the sampled sequence, so a pass resumed after an
    outage cuts the same chunks; `skip_chunk(k)` says which are stored or queued already (their
    frames are decoded but not put again). `keep_going()` is asked often, also while waiting for
    room; False stops the ingest with IngestStopped.
    """
    started = time.monotonic()
    waited = 0.0
    payload_bytes = 0
    chunk = plan.chunk_frames
    min_window = MIN_WINDOW_CHUNKS * chunk
    window = 0
    seq = -1
    skipping = False
    sampler = FrameSampler(plan.fps)
    sample = video.sampled_planar if frames.planar else video.sampled_frames
    for frame in sample(sampler.take, max_side=plan.frame_max_side):
        seq = frame.seq
        chunk_idx, first_of_chunk = divmod(seq, chunk)
        if first_of_chunk == 0:
            skipping = skip_chunk(chunk_idx)
        if not keep_going():
            raise IngestStopped(f"video {plan.video_id}: ingest stopped at frame {seq}")
        if not skipping:
            waited += frames.wait_for_room(
                plan.video_id, plan.run, window or min_window, lambda: not keep_going()
            )
            if not keep_going():
                raise IngestStopped(f"video {plan.video_id}: ingest stopped at frame {seq}")
            size = frames.put(plan.video_id, plan.run, frame)
            if not window:
                window = max(min_window, plan.max_queued_bytes // size)
                log.info("video=%s frame window: %d frames of %.2f MB", plan.video_id, window, size / 1e6)
            payload_bytes += size
        if first_of_chunk == chunk - 1 and not skipping:
            queue.enqueue_pose(plan.video_id, plan.run, chunk_idx, chunk_idx * chunk, seq + 1)
    chunks_total = (seq + 1 + chunk - 1) // chunk
    if (seq + 1) % chunk and not skipping:
        last = chunks_total - 1
        queue.enqueue_pose(plan.video_id, plan.run, last, last * chunk, seq + 1)
    result = IngestResult(
        frames_total=seq + 1,
        chunks_total=chunks_total,
        decode_errors=video.decode_errors,
        ingest_s=time.monotonic() - started,
        wait_s=waited,
        payload_bytes=payload_bytes,
    )
    log.info(
        "video=%s ingested %d frames in %d chunks (%.1f s, %.1f s waiting for workers)",
        plan.video_id,
        result.frames_total,
        result.chunks_total,
        result.ingest_s,
        result.wait_s,
    )
    return result

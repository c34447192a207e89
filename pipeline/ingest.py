"""File ingest: decode a video, sample it, put the frames in the frame store and queue pose jobs by chunk.

Backpressure, not loss: when a run's waiting frames fill `max_queued_bytes` of Redis, the
ingester waits for workers to release some (a part of a file decoded by a worker, a `Span`
with `yield_when_full`, stops instead at a chunk's start and says where to go on, so a worker
never waits for frames only workers can release). The window is counted in frames, sized from
the first frame's payload (every frame of a file has the same size), and always holds at least
two chunks, so one chunk fills while the one before it is being posed. Writes no database
rows; its caller records what it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.framestore import FrameStore
from pipeline.job_types import IngestResult
from pipeline.queue import JobQueue
from pipeline.sampler import FrameSampler, SamplerState
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
class Span:
    """One part of a file (pipeline.segments): decode from a keyframe, store frames [seq_from, seq_to).

    `expected_pts_s` are the times one ingester samples, by seq: a frame whose time differs is
    never stored (SegmentMismatch), as its seq would not be one ingester's."""

    start_pts: int | None  # None: the file's start
    first_seq: int
    sampler: SamplerState | None  # None: a new sampler
    seq_from: int
    seq_to: int
    expected_pts_s: Sequence[float]
    yield_when_full: bool = False


class IngestStopped(Exception):
    """The ingest was asked to stop (the run was superseded or the process is shutting down)."""


class SegmentMismatch(Exception):
    """A part of a file decoded to other frames than its packets predicted: its seqs would not
    be one ingester's, so the file must be ingested in one pass."""


class LeaseLost(Exception):
    """Another process has taken over this run (its lease moved): this ingest must stop."""


def ingest_file(
    video: VideoFile,
    plan: IngestPlan,
    frames: FrameStore,
    queue: JobQueue,
    keep_going: Callable[[], bool] = lambda: True,
    skip_chunk: Callable[[int], bool] = lambda _idx: False,
    span: Span | None = None,
    other_work: Callable[[], bool] = lambda: False,
) -> IngestResult:
    """Decode, sample and queue a whole file (or one `span` of it), chunk by chunk.

    Chunk k is always frames [k*C, (k+1)*C) of the sampled sequence, so a pass resumed after an
    outage, or a span, cuts the same chunks; `skip_chunk(k)` says which are stored or queued
    already (their frames are decoded but not put again). `keep_going()` is asked often, also
    while waiting for room; False stops the ingest with IngestStopped. A span with
    `yield_when_full` also stops at a chunk's start when `other_work()` says its worker has
    more urgent jobs waiting.
    """
    started = time.monotonic()
    waited = 0.0
    payload_bytes = 0
    chunk = plan.chunk_frames
    min_window = MIN_WINDOW_CHUNKS * chunk
    window = 0
    seq_from = span.seq_from if span else 0
    seq = seq_from - 1
    skipping = False
    resume_seq: int | None = None
    sampler = FrameSampler(plan.fps, span.sampler if span else None)
    sample = video.sampled_planar if frames.planar else video.sampled_frames
    decoded = sample(
        sampler.take,
        max_side=plan.frame_max_side,
        start_pts=span.start_pts if span else None,
        first_seq=span.first_seq if span else 0,
    )
    for frame in decoded:
        if span is not None:
            _check_span(plan.video_id, span, frame.seq, frame.pts_s)
            if frame.seq < span.seq_from:
                continue  # the part before owns it; decoded only to reach the first chunk
            if frame.seq >= span.seq_to:
                break
        seq = frame.seq
        chunk_idx, first_of_chunk = divmod(seq, chunk)
        if first_of_chunk == 0:
            skipping = skip_chunk(chunk_idx)
            if (
                span is not None
                and span.yield_when_full
                and not skipping
                and seq > span.seq_from
                and (frames.queued(plan.video_id, plan.run) + chunk > (window or min_window) or other_work())
            ):
                resume_seq, seq = seq, seq - 1
                break
        if not keep_going():
            raise IngestStopped(f"video {plan.video_id}: ingest stopped at frame {seq}")
        if not skipping:
            # The window is sized from the first frame's payload, so that one goes in at once
            # (a part of a file finds other parts' frames queued already).
            if window and (span is None or not span.yield_when_full):
                waited += frames.wait_for_room(plan.video_id, plan.run, window, lambda: not keep_going())
            if not keep_going():
                raise IngestStopped(f"video {plan.video_id}: ingest stopped at frame {seq}")
            size = frames.put(plan.video_id, plan.run, frame)
            if not window:
                window = max(min_window, plan.max_queued_bytes // size)
                log.info("video=%s frame window: %d frames of %.2f MB", plan.video_id, window, size / 1e6)
            payload_bytes += size
        if first_of_chunk == chunk - 1 and not skipping:
            queue.enqueue_pose(plan.video_id, plan.run, chunk_idx, chunk_idx * chunk, seq + 1)
    if span is not None and resume_seq is None and seq + 1 < span.seq_to:
        raise SegmentMismatch(
            f"video {plan.video_id}: the file ended at frame {seq + 1}, its packets promised {span.seq_to}"
        )
    chunks_total = (seq + 1 + chunk - 1) // chunk
    if (seq + 1) % chunk and not skipping and seq >= seq_from:
        last = chunks_total - 1
        queue.enqueue_pose(plan.video_id, plan.run, last, last * chunk, seq + 1)
    result = IngestResult(
        frames_total=seq + 1,
        chunks_total=chunks_total,
        decode_errors=video.decode_errors,
        ingest_s=time.monotonic() - started,
        wait_s=waited,
        payload_bytes=payload_bytes,
        resume_seq=resume_seq,
    )
    log.info(
        "video=%s ingested frames %d-%d in %d chunks (%.1f s, %.1f s waiting for workers)%s",
        plan.video_id,
        seq_from,
        seq,
        chunks_total - seq_from // chunk,
        result.ingest_s,
        result.wait_s,
        f"; going on from {resume_seq} later" if resume_seq is not None else "",
    )
    return result


def _check_span(video_id: int, span: Span, seq: int, pts_s: float) -> None:
    expected = span.expected_pts_s
    if seq >= len(expected) or expected[seq] != pts_s:
        predicted = f"{expected[seq]:.6f} s" if seq < len(expected) else "no frame"
        raise SegmentMismatch(
            f"video {video_id}: frame {seq} decoded at {pts_s:.6f} s, its packets predicted {predicted}"
        )

"""Live ingest of one camera: sample by capture time, queue small chunks, drop and count the rest.

The opposite policy to files: a live frame that finds the camera's Redis window full is
dropped at once rather than waited for (waiting would only make every later frame staler).
Dropped frames get no sequence number, so a session's queued frames are numbered without
holes and every chunk is a contiguous range. A chunk is queued when it has `chunk_frames`
frames or its first frame has waited `chunk_max_wait_s`, whichever comes first: small chunks
keep capture-to-event latency low; `flush_if_due` is also called by a timer, so frames that
arrived just before a camera went silent are not left waiting. Except when the camera's
worker is behind: a chunk with more frames still waiting ahead of it than it holds would
only wait for the worker, so it keeps taking frames, up to `chunk_max_frames`, or as many
as wait ahead of it (each job costs the worker the same ~25 ms of bookkeeping whatever its
size: fewer, larger jobs let a behind worker catch up). Each chunk is queued with how far
behind its camera the workers are (pipeline.routing moves sessions on it). Thread-safe.
Writes no database rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

import av

from pipeline.frames import Frame, PlanarFrame
from pipeline.framestore import FrameStore
from pipeline.queue import JobQueue
from pipeline.sampler import FrameSampler

log = logging.getLogger(__name__)

# Why a live frame was not analysed (stored per camera, shown by `camera list`).
DROP_WORKERS_BEHIND = "workers_behind"


@dataclass(frozen=True)
class LivePlan:
    video_id: int
    run: str
    fps: float
    chunk_frames: int
    chunk_max_wait_s: float
    chunk_max_frames: int
    max_queued_bytes: int
    frame_max_side: int
    # Wall-clock time (epoch seconds) of t = 0 of the session.
    session_start_s: float


class LiveIngest:
    def __init__(self, plan: LivePlan, frames: FrameStore, queue: JobQueue) -> None:
        self.plan = plan
        self.frames = frames
        self.queue = queue
        self.sampler = FrameSampler(plan.fps)
        self.dropped: Counter[str] = Counter()
        self.frames_in = 0
        self.frames_queued = 0
        self._window = 2 * plan.chunk_frames  # resized from the first frame's payload
        self._next_seq = 0
        self._next_chunk = 0
        self._chunk_start_seq = 0
        self._chunk_first_at: float | None = None
        # (seq, t_s) of the frames queued that workers may not have released yet: the oldest
        # tells how far behind the camera its worker is (pipeline.routing moves sessions on it).
        self._unreleased: deque[tuple[int, float]] = deque()
        self._lock = threading.Lock()

    def offer(self, av_frame: av.VideoFrame, captured_at_s: float) -> Frame | PlanarFrame | None:
        """Consider one decoded frame; returns the Frame if it was queued."""
        with self._lock:
            return self._offer(av_frame, captured_at_s)

    def _offer(self, av_frame: av.VideoFrame, captured_at_s: float) -> Frame | PlanarFrame | None:
        self.frames_in += 1
        t_s = captured_at_s - self.plan.session_start_s
        self._flush_if_due(captured_at_s)
        if not self.sampler.take(t_s):
            return None
        queued = self.frames.queued(self.plan.video_id, self.plan.run)
        # Workers release a session's frames in order, so the queued ones are the newest.
        while self._unreleased and self._unreleased[0][0] < self._next_seq - queued:
            self._unreleased.popleft()
        if queued >= self._window:
            self.dropped[DROP_WORKERS_BEHIND] += 1
            # Frames already waiting go now: a partial chunk must not wait for frames that
            # will not come while workers are behind.
            self._flush(captured_at_s)
            return None
        frame = (PlanarFrame if self.frames.planar else Frame).from_av(
            av_frame,
            seq=self._next_seq,
            pts_s=t_s,
            rotation_deg=int(av_frame.rotation or 0),
            max_side=self.plan.frame_max_side,
        )
        size = self.frames.put(self.plan.video_id, self.plan.run, frame)
        self._unreleased.append((frame.seq, t_s))
        if self._next_seq == 0:
            self._window = max(2 * self.plan.chunk_frames, self.plan.max_queued_bytes // size)
        self._next_seq += 1
        self.frames_queued += 1
        if self._chunk_first_at is None:
            self._chunk_first_at = captured_at_s
        if self._next_seq - self._chunk_start_seq >= self._chunk_target():
            self._flush(captured_at_s)
        return frame

    def flush_if_due(self, now_s: float) -> None:
        with self._lock:
            self._flush_if_due(now_s)

    def flush(self) -> None:
        """Queue the frames waiting in the current chunk, if any."""
        with self._lock:
            self._flush(time.time())

    def _chunk_target(self) -> int:
        """Frames the current chunk should have: more while more frames wait ahead of it."""
        in_chunk = self._next_seq - self._chunk_start_seq
        ahead = len(self._unreleased) - in_chunk
        return max(self.plan.chunk_frames, min(self.plan.chunk_max_frames, ahead))

    def _flush_if_due(self, now_s: float) -> None:
        if self._chunk_first_at is None:
            return
        waited_s = now_s - self._chunk_first_at
        # A chunk growing behind a busy worker may wait longer, in proportion.
        max_wait_s = self.plan.chunk_max_wait_s * self._chunk_target() / self.plan.chunk_frames
        if waited_s >= max_wait_s:
            self._flush(now_s)

    def _flush(self, now_s: float) -> None:
        if self._next_seq == self._chunk_start_seq:
            return
        oldest_t_s = self._unreleased[0][1] if self._unreleased else None
        lag_s = 0.0 if oldest_t_s is None else max(0.0, now_s - self.plan.session_start_s - oldest_t_s)
        self.queue.enqueue_live(
            self.plan.video_id, self.plan.run, self._next_chunk, self._chunk_start_seq, self._next_seq, lag_s
        )
        self._next_chunk += 1
        self._chunk_start_seq = self._next_seq
        self._chunk_first_at = None

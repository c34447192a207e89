"""Live queueing rules on a real Redis: chunks by size or by age, drops counted, numbering without holes."""

from __future__ import annotations

import av
import numpy as np
import pytest
import redis
from rq.job import Job

from pipeline.framestore import FrameStore
from pipeline.job_types import ChunkJob
from pipeline.live import DROP_WORKERS_BEHIND, LiveIngest, LivePlan
from pipeline.payload import FrameEncoding
from pipeline.queue import LIVE_JOB, JobQueue
from pipeline.routing import LiveRouter

T0 = 1_800_000_000.0  # a wall-clock session start


@pytest.fixture
def parts(redis_url: str) -> tuple[FrameStore, JobQueue]:
    client = redis.Redis.from_url(redis_url)
    return FrameStore(client, ttl_s=60, encoding=FrameEncoding.RAW), JobQueue(
        client, job_timeout_s=30, retries=1
    )


def live(
    parts,
    *,
    chunk: int = 3,
    wait_s: float = 0.25,
    window_frames: int = 1000,
    fps: float = 10,
    max_chunk: int | None = None,
) -> LiveIngest:
    """`max_chunk`: by default chunks never grow (no worker takes frames in most tests)."""
    frame_bytes = 64 * 48 * 3 + 40
    plan = LivePlan(
        video_id=5, run="s1", fps=fps, chunk_frames=chunk, chunk_max_wait_s=wait_s,
        chunk_max_frames=max_chunk or chunk, max_queued_bytes=window_frames * frame_bytes,
        frame_max_side=0, session_start_s=T0,
    )  # fmt: skip
    return LiveIngest(plan, *parts)


def av_frame() -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")


def chunks(queue: JobQueue) -> list[tuple[int, int, int]]:
    """Every live job created, in chunk order: one camera's jobs wait in RQ's rate-limit
    registry (one at a time in the queue), so they are found by their keys."""
    ids = [key.decode().split(":", 2)[2] for key in queue.redis.scan_iter(match="rq:job:*")]
    jobs = [Job.fetch(i, connection=queue.redis) for i in ids if ":" not in i]
    specs: list[ChunkJob] = [j.args[0] for j in jobs if j.func_name == LIVE_JOB]
    return sorted((s.chunk_idx, s.seq_from, s.seq_to) for s in specs)


def test_frames_are_sampled_by_capture_time_and_queued_in_full_chunks(parts) -> None:
    ingest = live(parts, chunk=3)
    for i in range(30):  # 1 s of a 30 fps camera
        ingest.offer(av_frame(), T0 + i / 30)
    assert ingest.frames_in == 30 and ingest.frames_queued == 10
    assert chunks(parts[1]) == [(0, 0, 3), (1, 3, 6), (2, 6, 9)]  # frame 9 waits for its chunk


def test_a_partial_chunk_goes_out_when_its_first_frame_is_old(parts) -> None:
    ingest = live(parts, chunk=3, wait_s=0.25)
    ingest.offer(av_frame(), T0)
    ingest.flush_if_due(T0 + 0.2)
    assert chunks(parts[1]) == []
    ingest.flush_if_due(T0 + 0.3)
    assert chunks(parts[1]) == [(0, 0, 1)]


def test_a_full_window_drops_new_frames_counts_them_and_keeps_numbering(parts) -> None:
    store, _queue = parts
    ingest = live(parts, chunk=2, window_frames=4)  # the floor of two chunks: 4 frames
    for i in range(10):
        ingest.offer(av_frame(), T0 + i / 10)
    assert ingest.frames_queued == 4 and ingest.dropped[DROP_WORKERS_BEHIND] == 6
    assert store.queued(5, "s1") == 4
    store.release(5, "s1", range(0, 2))  # a worker takes the first chunk
    ingest.offer(av_frame(), T0 + 1.0)
    ingest.flush()
    assert ingest.frames_queued == 5
    # Dropped frames got no number: the next queued frame is 4, in the next chunk.
    assert chunks(parts[1]) == [(0, 0, 2), (1, 2, 4), (2, 4, 5)]


class LagRecordingRouter(LiveRouter):
    """The real router, remembering the lag each chunk was routed with."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self.lags: list[float] = []

    def queue_for(self, video_id: int, lag_s: float = 0.0) -> str:
        self.lags.append(lag_s)
        return super().queue_for(video_id, lag_s)


def test_each_chunk_is_routed_with_the_age_of_the_oldest_frame_not_yet_released(parts) -> None:
    frames, queue = parts
    queue.router = router = LagRecordingRouter(queue.redis)
    ingest = live(parts, chunk=3)
    for i in range(6):  # 10 fps: chunks end at 0.2 s and 0.5 s
        ingest.offer(av_frame(), T0 + i / 10)
    assert router.lags == pytest.approx([0.2, 0.5])  # no worker has taken frame 0
    frames.release(5, "s1", range(0, 3))  # a worker posed the first chunk
    for i in range(6, 9):
        ingest.offer(av_frame(), T0 + i / 10)
    assert router.lags[2] == pytest.approx(0.8 - 0.3)


def test_chunks_grow_while_frames_wait_ahead_of_them_and_shrink_when_workers_catch_up(parts) -> None:
    frames, queue = parts
    ingest = live(parts, chunk=3, max_chunk=6, wait_s=0.3)
    for i in range(21):  # nobody takes frames: each chunk finds more waiting ahead of it
        ingest.offer(av_frame(), T0 + i / 10)
    assert chunks(queue) == [(0, 0, 3), (1, 3, 6), (2, 6, 12), (3, 12, 18)]
    # A growing chunk may wait longer for its frames (0.3 s per 3 frames of its target).
    ingest.flush_if_due(T0 + 1.8 + 0.5)
    assert len(chunks(queue)) == 4
    ingest.flush_if_due(T0 + 1.8 + 0.65)
    assert chunks(queue)[4] == (4, 18, 21)
    frames.release(5, "s1", range(0, 21))  # the worker caught up
    for i in range(21, 27):
        ingest.offer(av_frame(), T0 + i / 10)
    assert chunks(queue)[5:] == [(5, 21, 24), (6, 24, 27)]

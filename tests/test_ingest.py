"""File ingest on a real Redis: chunks queued by reference, the memory window holds, stopping is clean."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from pipeline import keys
from pipeline.framestore import FrameStore
from pipeline.ingest import IngestPlan, IngestStopped, ingest_file
from pipeline.job_types import ChunkJob
from pipeline.payload import FrameEncoding
from pipeline.queue import JobQueue
from pipeline.source import VideoFile
from tests import media_gen


@pytest.fixture
def parts(redis_url: str) -> tuple[FrameStore, JobQueue]:
    client = redis.Redis.from_url(redis_url)
    return FrameStore(client, ttl_s=600, encoding=FrameEncoding.RAW), JobQueue(
        client, job_timeout_s=60, retries=1
    )


def plan(chunk: int, window_bytes: int) -> IngestPlan:
    return IngestPlan(
        video_id=7, run="r1", fps=10, chunk_frames=chunk, max_queued_bytes=window_bytes, frame_max_side=0
    )


def test_chunks_are_queued_with_ids_and_ranges_only(parts, tmp_path: Path) -> None:
    store, queue = parts
    video = media_gen.write_video(tmp_path / "v.mp4", fps=30, frames=75)  # 2.5 s -> 25 frames at 10 fps
    with VideoFile(video) as source:
        result = ingest_file(source, plan(chunk=10, window_bytes=10**9), store, queue)
    assert (result.frames_total, result.chunks_total) == (25, 3)
    jobs = queue.pose.get_jobs()
    assert [j.args for j in jobs] == [
        (ChunkJob(7, "r1", 0, 0, 10),),
        (ChunkJob(7, "r1", 1, 10, 20),),
        (ChunkJob(7, "r1", 2, 20, 25),),
    ]
    assert store.queued(7, "r1") == 25 and store.redis.exists(keys.frame(7, "r1", 24))


@pytest.mark.parametrize(("window_frames", "expected_peak"), [(12, 12), (3, 10)])
def test_the_window_bounds_queued_frames_and_the_ingester_waits(
    parts, tmp_path: Path, window_frames: int, expected_peak: int
) -> None:
    """A byte bound smaller than two chunks still allows two (one posed while one fills)."""
    store, queue = parts
    video = media_gen.write_video(tmp_path / "v.mp4", width=160, height=120, fps=10, frames=60)
    frame_bytes = 160 * 120 * 3 + 40
    stop = threading.Event()
    outcome: list[BaseException] = []

    def run() -> None:
        with VideoFile(video) as source:
            try:
                ingest_file(
                    source,
                    plan(chunk=5, window_bytes=window_frames * frame_bytes),
                    store,
                    queue,
                    keep_going=lambda: not stop.is_set(),
                )
            except IngestStopped as exc:
                outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    peak = 0
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        peak = max(peak, store.queued(7, "r1"))
        time.sleep(0.01)
    assert peak == expected_peak  # blocked at the window, never above it
    store.release(7, "r1", range(5))  # a worker finishes the first chunk
    time.sleep(0.3)
    assert store.queued(7, "r1") == expected_peak
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and isinstance(outcome[0], IngestStopped)


def test_a_resumed_pass_queues_only_the_chunks_that_are_missing(parts, tmp_path: Path) -> None:
    """After an outage the file is read again: chunks stored or still queued are skipped, and
    frames already in Redis are neither stored twice nor counted twice."""
    store, queue = parts
    video = media_gen.write_video(tmp_path / "v.mp4", fps=30, frames=75)  # 25 frames at 10 fps
    with VideoFile(video) as source:
        ingest_file(source, plan(chunk=10, window_bytes=10**9), store, queue)
    queue.pose.empty()
    store.release(7, "r1", range(0, 10))  # chunk 0 was posed and stored before the outage
    with VideoFile(video) as source:
        result = ingest_file(
            source, plan(chunk=10, window_bytes=10**9), store, queue, skip_chunk=lambda idx: idx == 0
        )
    assert (result.frames_total, result.chunks_total) == (25, 3)
    assert [j.args for j in queue.pose.get_jobs()] == [
        (ChunkJob(7, "r1", 1, 10, 20),),
        (ChunkJob(7, "r1", 2, 20, 25),),
    ]
    assert store.queued(7, "r1") == 15  # frames 10-24, each counted once
    assert not store.redis.exists(keys.frame(7, "r1", 3))

"""Fixtures for the analytics tests: real clips posed once per session, exactly as the pipeline poses them."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose.estimator import MediaPipeEstimator
from pose.types import FramePoses
from posepipe.settings import Settings

# The pipeline's analysis rate and chunk length: MediaPipe's tracking restarts every chunk.
ANALYSIS_FPS = 10.0
CHUNK_FRAMES = 32
MAX_SIDE = 1280
# MediaPipe's detection and tracking confidence as the pipeline sets it (0.3; MediaPipe's own
# default 0.5 drops people during falls). The expectations in these tests are for 0.3.
POSE_MIN_CONFIDENCE = Settings.model_fields["pose_min_confidence"].default
# Processes that pose a module's clips at once (PosedClips.prefetch): one MediaPipe graph keeps
# about one core busy, and the machines the suite runs on have two.
PREFETCH_PROCESSES = 2


def pose_clip(path: Path, estimator: MediaPipeEstimator) -> list[FramePoses]:
    """`path` posed as the pipeline poses it: sampled, scaled, the model reset every chunk."""
    frames: list[FramePoses] = []
    with VideoFile(path) as video:
        for frame in video.sampled_frames(FrameSampler(ANALYSIS_FPS).take, max_side=MAX_SIDE):
            if frame.seq % CHUNK_FRAMES == 0:
                estimator.reset()
            poses = estimator.estimate(frame)
            frames.append(FramePoses.of(frame.seq, frame.pts_s, frame.resolution_wh, poses))
    return frames


_process_estimator: MediaPipeEstimator | None = None


def _pose_in_process(path: Path) -> list[FramePoses]:
    """A prefetch process's clip, on the one model it keeps (reset every chunk, as in this one)."""
    global _process_estimator
    if _process_estimator is None:
        _process_estimator = MediaPipeEstimator(POSE_MIN_CONFIDENCE, POSE_MIN_CONFIDENCE)
    return pose_clip(path, _process_estimator)


class PosedClips:
    """Poses of shared clips (keyed by path relative to the media folder), each posed at most once."""

    def __init__(self, media_dir: Path, estimator: MediaPipeEstimator) -> None:
        self.media_dir = media_dir
        self._estimator = estimator
        self._frames: dict[str, list[FramePoses]] = {}
        self.prefetched: set[str] = set()  # the clips posed in other processes

    def __call__(self, rel: str) -> list[FramePoses]:
        if rel not in self._frames:
            self._frames[rel] = pose_clip(self.media_dir / rel, self._estimator)
        return self._frames[rel]

    def prefetch(self, rels: Iterable[str]) -> None:
        """Pose the clips not posed yet in PREFETCH_PROCESSES processes at once. Each chunk starts
        from a reset model, so which model, in which process, poses a clip changes no pose
        (tests/test_estimator.py; test_falls.py checks it)."""
        todo = sorted({rel for rel in rels if rel not in self._frames})
        if len(todo) < 2:
            return
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(PREFETCH_PROCESSES, mp_context=spawn) as pool:
            for rel, frames in zip(
                todo, pool.map(_pose_in_process, [self.media_dir / r for r in todo]), strict=True
            ):
                self._frames[rel] = frames
                self.prefetched.add(rel)


@pytest.fixture(scope="session")
def posed_clips(media_dir: Path) -> Iterator[PosedClips]:
    estimator = MediaPipeEstimator(POSE_MIN_CONFIDENCE, POSE_MIN_CONFIDENCE)
    try:
        yield PosedClips(media_dir, estimator)
    finally:
        estimator.close()

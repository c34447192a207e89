"""Fixtures for the analytics tests: real clips posed once per session, exactly as the pipeline poses them."""

from __future__ import annotations

from collections.abc import Iterator
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


class PosedClips:
    """Poses of shared clips (keyed by path relative to the media folder), each posed at most once."""

    def __init__(self, media_dir: Path, estimator: MediaPipeEstimator) -> None:
        self.media_dir = media_dir
        self._estimator = estimator
        self._frames: dict[str, list[FramePoses]] = {}

    def __call__(self, rel: str) -> list[FramePoses]:
        if rel not in self._frames:
            self._frames[rel] = self._pose(rel)
        return self._frames[rel]

    def _pose(self, rel: str) -> list[FramePoses]:
        frames: list[FramePoses] = []
        with VideoFile(self.media_dir / rel) as video:
            for frame in video.sampled_frames(FrameSampler(ANALYSIS_FPS).take, max_side=MAX_SIDE):
                if frame.seq % CHUNK_FRAMES == 0:
                    self._estimator.reset()
                poses = self._estimator.estimate(frame)
                frames.append(FramePoses.of(frame.seq, frame.pts_s, frame.resolution_wh, poses))
        return frames


@pytest.fixture(scope="session")
def posed_clips(media_dir: Path) -> Iterator[PosedClips]:
    estimator = MediaPipeEstimator(POSE_MIN_CONFIDENCE, POSE_MIN_CONFIDENCE)
    try:
        yield PosedClips(media_dir, estimator)
    finally:
        estimator.close()

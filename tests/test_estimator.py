"""The mediapipe backend's reset: a model reset between chunks poses each chunk exactly as a
model that never saw the chunks before it (the same bytes), on real clips.

The reset forgets the tracked person with a black frame instead of restarting MediaPipe's
graph (pose.estimator); these tests hold it to the restart's result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.frames import Frame
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose.estimator import MediaPipeEstimator

CONFIDENCE = 0.3  # the pipeline's default
# A fall (the person is lost and found again inside the clip) and an exercise from the side.
CLIPS = ("falls/urfall_ds04_fall_while_walking.mp4", "exercise/ex_pushup_side_full_then_knee.mp4")


def sampled(path: Path, limit: int) -> list[Frame]:
    with VideoFile(path) as video:
        return list(video.sampled_frames(FrameSampler(10).take, max_side=1280))[:limit]


def pose_bytes(estimator: MediaPipeEstimator, frames: list[Frame]) -> list[tuple[bytes, bytes | None]]:
    out = []
    for frame in frames:
        out.extend(pose.to_bytes() for pose in estimator.estimate(frame))
        out.append((b"end of frame", None))
    return out


def chunks_after_reset(estimator: MediaPipeEstimator, frames: list[Frame], size: int) -> list[list]:
    posed = []
    for start in range(0, len(frames), size):
        estimator.reset()
        posed.append(pose_bytes(estimator, frames[start : start + size]))
    return posed


def chunks_on_new_models(frames: list[Frame], size: int) -> list[list]:
    posed = []
    for start in range(0, len(frames), size):
        fresh = MediaPipeEstimator(CONFIDENCE, CONFIDENCE)
        try:
            posed.append(pose_bytes(fresh, frames[start : start + size]))
        finally:
            fresh.close()
    return posed


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("size", [32, 4])  # a file's chunk, a live one
def test_a_reset_model_poses_a_chunk_as_a_new_model_does(media_dir: Path, clip: str, size: int) -> None:
    frames = sampled(media_dir / clip, 64)
    reused = MediaPipeEstimator(CONFIDENCE, CONFIDENCE)
    try:
        after_reset = chunks_after_reset(reused, frames, size)
    finally:
        reused.close()
    expected = chunks_on_new_models(frames, size)
    assert sum(1 for chunk in expected for entry in chunk if entry[1] is not None) > len(frames) // 2
    assert after_reset == expected


@pytest.mark.parametrize("ahead", ["same size", "another size"])
def test_a_reset_forgotten_ahead_poses_a_chunk_as_a_new_model_does(media_dir: Path, ahead: str) -> None:
    """A pose job forgets the person right after its chunk (workers.jobs), in a thread while it
    stores it; the next chunk, most often of the same size, then skips the reset's blank frame.
    A next chunk of another size poses its own blank after that one."""
    frames = sampled(media_dir / CLIPS[1], 64)
    reused = MediaPipeEstimator(CONFIDENCE, CONFIDENCE)
    posed = []
    try:
        for start in range(0, len(frames), 32):
            reused.reset()
            posed.append(pose_bytes(reused, frames[start : start + 32]))
            height, width, depth = frames[start].rgb.shape
            reused.forget_ahead((height, width, depth) if ahead == "same size" else (width, height, depth))
    finally:
        reused.close()
    assert posed == chunks_on_new_models(frames, 32)


class _BlankWithAPerson(MediaPipeEstimator):
    """Its 'black' frame holds a person: forgetting by a blank frame cannot work."""

    person: np.ndarray

    def _blank(self, shape: tuple[int, ...]) -> np.ndarray:
        assert self.person.shape == shape
        return self.person


def test_a_reset_restarts_the_graph_when_the_blank_frame_shows_someone(media_dir: Path) -> None:
    frames = sampled(media_dir / CLIPS[1], 24)
    reused = _BlankWithAPerson(CONFIDENCE, CONFIDENCE)
    reused.person = frames[-1].rgb  # someone in a different place from the first chunk's start
    try:
        after_reset = chunks_after_reset(reused, frames, 8)
    finally:
        reused.close()
    assert after_reset == chunks_on_new_models(frames, 8)


UNUSED_IMPORTS_PROBE = """
import sys
import numpy as np
from pose.estimator import MediaPipeEstimator
from pipeline.frames import Frame
estimator = MediaPipeEstimator()
estimator.estimate(Frame(seq=0, pts_s=0.0, rgb=np.zeros((96, 128, 3), dtype=np.uint8)))
unused = ("matplotlib", "mediapipe.tasks")
posed_without_them = not any(m == u or m.startswith(u + ".") for m in sys.modules for u in unused)
import matplotlib.colors
imported_later = type(sys.modules["matplotlib"]).__name__ == "module" and callable(matplotlib.colors.to_rgb)
from mediapipe.python.solutions import drawing_utils
plotted = callable(drawing_utils.plt.figure) and "matplotlib.figure" in sys.modules
import mediapipe as mp
tasks = callable(mp.tasks.vision.PoseLandmarker.create_from_options)
print(posed_without_them, imported_later, plotted, tasks, type(sys.modules["matplotlib.pyplot"]).__name__)
"""


def test_posing_imports_neither_plotting_nor_the_tasks_api_and_both_still_work() -> None:
    out = subprocess.run(
        [sys.executable, "-c", UNUSED_IMPORTS_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "True", "True", "True", "module"]

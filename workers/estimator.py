"""Pose backends: turn a Frame into the Poses found in it. MediaPipe is imported here and nowhere else.

`mediapipe` (mp.solutions.pose, one person) is defined here; `multi` (several people, the
same models run with LiteRT) lives in workers.multipose and is registered in BACKENDS.

A backend holds a loaded model, so it is built once per worker (see workers.context) and
`reset()` between chunks: chunks are posed independently, so a chunk's result never depends
on which worker ran it or what that worker ran before.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import ClassVar, Protocol

import numpy as np

from pipeline.frames import Frame
from workers.poses import Pose


class PoseEstimator(Protocol):
    name: str

    def reset(self) -> None:
        """Forget tracking state; the next frame is treated as the first of a sequence."""

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        """The people found in `frame`, in the backend's order."""

    def close(self) -> None: ...


class MediaPipeEstimator:
    """`mp.solutions.pose` with model_complexity=1, the only model the wheel ships (no download).

    Tracking mode: after a detection the landmark model follows the person from the previous
    frame's landmarks, which costs about half of a detection. It finds one person per frame.
    MediaPipe's own landmark smoothing is off: stored landmarks are raw, and analytics smooth
    them with real timestamps (MediaPipe's solution API assumes a fixed frame interval).

    `reset()` does not restart MediaPipe's graph (the solution API's own reset), which reloads
    both models and rebuilds their XNNPACK delegates: 160-260 ms of CPU, paid by every chunk
    (a 32-frame file chunk: ~5 ms a frame). It makes the graph lose the person instead: the
    next frame is preceded by a black one, in which the landmark model finds nobody where the
    person was. That empties the graph's loop of previous landmarks and resets its region
    smoothing, which is all the tracking state there is, so the next frame starts from the
    detector exactly as after a restart (tests/test_estimator.py: the same bytes on real
    clips) for one inference (~20 ms).
    """

    name = "mediapipe"
    # Counts constructions in this process: the worker tests prove one model per process.
    instances_created: ClassVar[int] = 0

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        # Quiet MediaPipe's C++ logging (glog/TFLite banners on stderr) unless the user asked.
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import mediapipe as mp

        self._pose = mp.solutions.pose.Pose(
            static_image_mode=False,
            model_complexity=1,
            smooth_landmarks=False,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self._forget_before_next = False
        MediaPipeEstimator.instances_created += 1

    def reset(self) -> None:
        self._forget_before_next = True

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        if self._forget_before_next:
            self._forget_person(frame.rgb.shape)
        pose = Pose.from_mediapipe(self._pose.process(frame.rgb))
        return () if pose is None else (pose,)

    def _forget_person(self, shape: tuple[int, ...]) -> None:
        # The frame's own size: nothing in the graph then sees a change of size.
        self._forget_before_next = False
        if self._pose.process(self._blank(shape)).pose_landmarks is not None:
            # A person found in the blank (never seen): only a restart is sure to forget.
            self._pose.reset()

    @staticmethod
    def _blank(shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=np.uint8)

    def close(self) -> None:
        self._pose.close()


def _multi_person(min_detection_confidence: float, min_tracking_confidence: float) -> PoseEstimator:
    """Several people per frame (workers.multipose; LiteRT is imported only when this is chosen)."""
    from workers.multipose.estimator import MultiPoseEstimator

    return MultiPoseEstimator(min_detection_confidence, min_tracking_confidence)


# Backend name -> factory(min_detection_confidence, min_tracking_confidence).
BACKENDS: dict[str, Callable[[float, float], PoseEstimator]] = {
    "mediapipe": MediaPipeEstimator,
    "multi": _multi_person,
}


def create_estimator(backend: str, min_confidence: float) -> PoseEstimator:
    try:
        factory = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown pose backend {backend!r}; choose from {', '.join(BACKENDS)}") from None
    return factory(min_confidence, min_confidence)

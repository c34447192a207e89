"""The `litert` pose backend: mp.solutions.pose's one-person graph (BlazePose detector, then the
landmark model following the person frame to frame) re-run on the wheel's own model files under
LiteRT, without MediaPipe's graph runtime.

Owns the graph's control flow for one person, as the wheel's `PoseLandmarkCpu` subgraph runs it
(pose.multipose.constants names where each number comes from):

- no region carried from the previous frame (a chunk's first frame, or the person lost): the
  detector runs on the whole frame and its best detection after weighted NMS gives the region
  (`PoseDetectionToRoi`: mid-hip centre, the full-body point for size and rotation, x1.25);
- the landmark model poses the region; a presence score not over the tracking confidence
  means nobody is in this frame, and the detector runs on the next one (never again on this
  one: MediaPipe's graph does not either);
- otherwise the two auxiliary landmarks, through MediaPipe's 1-euro filter for them
  (`PoseLandmarkFiltering`, on even with smoothing off), give the next frame's region
  (`PoseLandmarksToRoi`).

The stages (letterbox, anchors, NMS, crop, heatmap refinement, projection) are
pose.multipose's, shared with the `multi` backend. MediaPipe's landmark smoothing is left out,
as the `mediapipe` backend turns it off: analytics.track smooths each track with the frames'
real timestamps. The score is the `mediapipe` backend's (mean visibility of shoulders and hips),
so both backends' poses read alike downstream.

What it saves against the `mediapipe` backend: MediaPipe's graph around the same networks and
its protobuf results (~2 ms of ~16 ms a frame, docs/benchmarks.md), and a reset costs nothing
(the mediapipe backend poses a blank frame to forget the person). Start-up is about the same
(0.4-0.5 s to a built estimator, mediapipe's plotting import being deferred already).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from pipeline.frames import Frame
from pose import model_files
from pose.multipose import constants as c
from pose.multipose.detector import PoseDetector
from pose.multipose.estimator import RoiFilter
from pose.multipose.landmarks import LandmarkModel, PersonLandmarks
from pose.multipose.regions import RotatedRect, region_from_alignment
from pose.types import Pose


@dataclass(frozen=True)
class FrameCost:
    """What posing one frame took: whether the detector ran, and each model's seconds (wall)."""

    detected: bool = False
    detector_s: float = 0.0
    landmark_s: float = 0.0


def mediapipe_score(person: PersonLandmarks) -> float:
    """`Pose.from_mediapipe`'s score: the mean visibility of shoulders and hips."""
    torso = person.landmarks_xyzv[list(c.TORSO_LANDMARKS), 3]
    return float(np.clip(torso.mean(), 0.0, 1.0))


def pose_of(person: PersonLandmarks) -> Pose:
    """The person as the `mediapipe` backend gives them (its score included)."""
    score = mediapipe_score(person)
    return Pose(landmarks_xyzv=person.landmarks_xyzv, world_xyz_m=person.world_xyz_m, score=score)


class RegionFollower:
    """The region a followed person is posed in on the next frame, from this frame's auxiliary
    landmarks through the graph's 1-euro filter for them (`PoseLandmarksToRoi`); None after a
    loss, when MediaPipe's smoothing calculator resets its filter too."""

    def __init__(self) -> None:
        self.region: RotatedRect | None = None
        self._roi_filter = RoiFilter(len(c.AUX_LANDMARKS))

    def follow(self, person: PersonLandmarks) -> None:
        raw = region_from_alignment(person.aux_xy_px[0], person.aux_xy_px[1])
        # The filter's object scale: the unscaled region's side (MediaPipe: mean of its width and height).
        smoothed = self._roi_filter(person.aux_xy_px, raw.side_px / c.ROI_SCALE)
        self.region = region_from_alignment(smoothed[0], smoothed[1])

    def lose(self) -> None:
        self.region = None
        self._roi_filter = RoiFilter(len(c.AUX_LANDMARKS))


class LiteRtPoseEstimator:
    """One person per frame, as `mp.solutions.pose` (static_image_mode off, smoothing off) finds
    them, with the wheel's detector and a BlazePose landmark model (`model`: lite, full or heavy)
    run by LiteRT. `min_detection_confidence` is the detector's score threshold,
    `min_tracking_confidence` the landmark model's presence threshold: mp.solutions.pose's two.
    """

    name = "litert"
    instances_created: ClassVar[int] = 0

    def __init__(
        self,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        model: str = "full",
    ) -> None:
        if not 0.0 < min_tracking_confidence < 1.0:
            raise ValueError(f"min_tracking_confidence must be in (0, 1), got {min_tracking_confidence}")
        self.min_tracking_confidence = min_tracking_confidence
        self.model = model
        # Another mediapipe release's networks: an error now, not poses off MediaPipe's.
        model_files.wheel_path(model_files.WHEEL_POSE_DETECTOR)
        if model == "full":
            model_files.wheel_path(model_files.WHEEL_POSE_LANDMARK_FULL)
        self._detector = PoseDetector(min_detection_confidence)
        self._landmarks = LandmarkModel(model)
        # The region the next frame is posed in: None until a detection, and after a loss.
        self._follower = RegionFollower()
        self._image_wh: tuple[int, int] | None = None
        # What the last frame cost (bench.pose_backends reports it).
        self.last_cost = FrameCost()
        LiteRtPoseEstimator.instances_created += 1

    def reset(self) -> None:
        self._lose()

    def forget_ahead(self, shape: tuple[int, ...]) -> None:
        """Nothing to do ahead: a reset only drops the carried region (the next frame detects)."""

    def close(self) -> None:
        self._lose()

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        person = self.estimate_person(frame.rgb)
        return () if person is None else (pose_of(person),)

    def estimate_person(self, rgb: np.ndarray) -> PersonLandmarks | None:
        """The person in one RGB frame with everything the landmark model gave, or None."""
        image_wh = (rgb.shape[1], rgb.shape[0])
        if image_wh != self._image_wh:
            # The carried region is in the last frame's pixels (MediaPipe's, in fractions of the
            # frame, would land elsewhere on a frame of another size): start from the detector.
            self._lose()
            self._image_wh = image_wh
        cost = FrameCost()
        region = self._follower.region
        if region is None:
            started = time.perf_counter()
            detections = self._detector.detect(rgb)
            cost = FrameCost(detected=True, detector_s=time.perf_counter() - started)
            if not detections:
                self.last_cost = cost
                return None
            # Weighted NMS gives detections best first; the graph takes the first.
            region = detections[0].region(image_wh)
        started = time.perf_counter()
        person = self._landmarks.estimate(rgb, region)
        self.last_cost = replace(cost, landmark_s=time.perf_counter() - started)
        # The graph's ThresholdingCalculator flags presence strictly over the threshold.
        if not person.presence > self.min_tracking_confidence:
            self._lose()
            return None
        self._follower.follow(person)
        return person

    def _lose(self) -> None:
        self._follower.lose()

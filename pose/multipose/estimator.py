"""The multi-person pose backend: detector + landmark model per person, following people frame to frame.

Each followed person is a region of interest carried from one frame to the next: the
landmark model poses the region, and the person's two auxiliary landmarks (smoothed as
MediaPipe smooths them) give the region for the next frame, so the detector need not run.
The detector runs on the first frame after `reset()` (a chunk's start), whenever nobody is
followed or someone was lost in the previous frame, and every REDETECT_EVERY_FRAMES frames
to find people who came into view: on the whole frame, then on the strips of the frame that
nobody found occupies (see constants.SWEEP_ROUNDS for why). A person is lost when the
landmark model's presence score falls below the tracking confidence, or when their region
has drifted onto someone already posed (see crowd). Identity across frames is not promised
here (analytics.track assigns track ids); poses come in the order people were found.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from pipeline.frames import Frame
from pose.multipose import constants as c
from pose.multipose.crowd import detects_known, free_strips, is_duplicate
from pose.multipose.detector import Detection, PoseDetector
from pose.multipose.landmarks import LandmarkModel, PersonLandmarks
from pose.multipose.regions import RotatedRect, region_from_alignment
from pose.types import Pose


@dataclass(frozen=True)
class FrameCost:
    """What posing one frame took: detector runs and landmark-model runs, and their seconds."""

    detector_runs: int = 0
    detector_s: float = 0.0
    landmark_runs: int = 0
    landmark_s: float = 0.0


class RoiFilter:
    """MediaPipe's 1-euro filter for a few landmarks (pixels), the derivative scaled by body size.

    The speed a landmark moves at is measured in body sizes per second, so a near person and a
    far one get the same smoothing for the same motion.
    """

    def __init__(self, n: int) -> None:
        self._raw: np.ndarray | None = None
        self._smooth: np.ndarray | None = None
        self._dsmooth = np.zeros((n, 2))

    @staticmethod
    def _alpha(cutoff_hz: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff_hz)
        return 1.0 / (1.0 + tau * c.ROI_FILTER_RATE_HZ)

    def __call__(self, xy_px: np.ndarray, object_scale_px: float) -> np.ndarray:
        if self._raw is None or self._smooth is None:
            self._raw, self._smooth = xy_px.copy(), xy_px.copy()
            return xy_px
        speed = (xy_px - self._raw) / max(object_scale_px, 1e-6) * c.ROI_FILTER_RATE_HZ
        a_d = self._alpha(c.ROI_FILTER_DERIVATIVE_CUTOFF_HZ)
        self._dsmooth = a_d * speed + (1 - a_d) * self._dsmooth
        a = self._alpha(c.ROI_FILTER_MIN_CUTOFF_HZ + c.ROI_FILTER_BETA * np.abs(self._dsmooth))
        self._smooth = a * xy_px + (1 - a) * self._smooth
        self._raw = xy_px.copy()
        return self._smooth


@dataclass
class _Followed:
    """A person followed from frame to frame: where to look next, and their ROI filter."""

    region: RotatedRect
    roi_filter: RoiFilter = field(default_factory=lambda: RoiFilter(len(c.AUX_LANDMARKS)))

    def follow(self, person: PersonLandmarks) -> None:
        """Next frame's region from this frame's auxiliary landmarks (smoothed)."""
        raw = region_from_alignment(person.aux_xy_px[0], person.aux_xy_px[1])
        # The filter's body size: the unscaled region's side (MediaPipe: mean of width, height).
        smoothed = self.roi_filter(person.aux_xy_px, raw.side_px / c.ROI_SCALE)
        self.region = region_from_alignment(smoothed[0], smoothed[1])


def pose_score(person: PersonLandmarks) -> float:
    """How sure we are this is a person: the landmark model's presence times the mean visibility
    of shoulders and hips (the mediapipe backend's score), so both backends' scores read alike."""
    torso = person.landmarks_xyzv[list(c.TORSO_LANDMARKS), 3]
    return float(np.clip(person.presence * float(torso.mean()), 0.0, 1.0))


class MultiPoseEstimator:
    """Several people per frame with BlazePose's detector and landmark model, run by LiteRT.

    `min_detection_confidence` is the detector's score threshold; `min_tracking_confidence`
    the landmark model's presence threshold, below which a person counts as lost (the same
    two thresholds as `mp.solutions.pose`). `model` is the landmark model (lite, full or heavy;
    constants.LANDMARK_MODELS). At most `max_people` people per frame.
    """

    name = "multi"
    instances_created: ClassVar[int] = 0

    def __init__(
        self,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        model: str = "full",
        *,
        max_people: int = c.MAX_PEOPLE,
        redetect_every: int = c.REDETECT_EVERY_FRAMES,
    ) -> None:
        if max_people < 1 or redetect_every < 1:
            raise ValueError("max_people and redetect_every must be >= 1")
        self.min_tracking_confidence = min_tracking_confidence
        self.strip_min_score = max(min_detection_confidence, c.STRIP_MIN_SCORE)
        self.max_people = max_people
        self.redetect_every = redetect_every
        self._detector = PoseDetector(min_detection_confidence)
        self._landmarks = LandmarkModel(model)
        self._followed: list[_Followed] = []
        self._since_detection: int | None = None
        self._lost_last_frame = False
        # What the last frame cost (bench/multi_pose.py reports it).
        self.last_cost = FrameCost()
        self._cost = FrameCost()
        MultiPoseEstimator.instances_created += 1

    def reset(self) -> None:
        self._followed = []
        self._since_detection = None
        self._lost_last_frame = False

    def forget_ahead(self, shape: tuple[int, ...]) -> None:
        """Nothing to do ahead: `reset()` only empties lists (the next frame runs the detector)."""

    def close(self) -> None:
        self.reset()

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        return tuple(
            Pose(landmarks_xyzv=p.landmarks_xyzv, world_xyz_m=p.world_xyz_m, score=pose_score(p))
            for p in self.estimate_people(frame.rgb)
        )

    def estimate_people(self, rgb: np.ndarray) -> list[PersonLandmarks]:
        """The people in one RGB frame, with everything the landmark model gave for each."""
        image_wh = (rgb.shape[1], rgb.shape[0])
        self._cost = FrameCost()
        kept: list[tuple[_Followed, PersonLandmarks]] = []
        for followed in self._followed:
            person = self._pose(rgb, followed.region)
            if person is not None and not any(is_duplicate(o, person, image_wh) for _, o in kept):
                kept.append((followed, person))
        # Someone followed into this frame is gone (or merged into another): look again next frame.
        lost = len(kept) < len(self._followed)
        since = self._since_detection
        fresh = since is None or not kept
        if since is None or fresh or self._lost_last_frame or since + 1 >= self.redetect_every:
            self._since_detection = 0
            self._search(rgb, kept, c.SWEEP_ROUNDS if fresh else c.REDETECT_ROUNDS)
        else:
            self._since_detection = since + 1
        self._lost_last_frame = lost
        for followed, person in kept:
            followed.follow(person)
        self._followed = [followed for followed, _ in kept]
        self.last_cost = self._cost
        return [person for _, person in kept]

    def _pose(self, rgb: np.ndarray, region: RotatedRect) -> PersonLandmarks | None:
        started = time.perf_counter()
        person = self._landmarks.estimate(rgb, region)
        self._cost = replace(
            self._cost,
            landmark_runs=self._cost.landmark_runs + 1,
            landmark_s=self._cost.landmark_s + time.perf_counter() - started,
        )
        return person if person.presence >= self.min_tracking_confidence else None

    def _search(self, rgb: np.ndarray, kept: list[tuple[_Followed, PersonLandmarks]], rounds: int) -> None:
        """Add the people the detector finds on the whole frame, then on the free strips."""
        image_wh = (rgb.shape[1], rgb.shape[0])
        self._add_new(rgb, self._detect(rgb, None), kept)
        for _ in range(rounds):
            # The whole width again would repeat the first run exactly.
            strips = [s for s in free_strips([p for _, p in kept], image_wh) if s != (0, image_wh[0])]
            found = [
                d for strip in strips for d in self._detect(rgb, strip) if d.score >= self.strip_min_score
            ]
            if not self._add_new(rgb, sorted(found, key=lambda d: -d.score), kept):
                break

    def _detect(self, rgb: np.ndarray, columns: tuple[int, int] | None) -> list[Detection]:
        started = time.perf_counter()
        found = self._detector.detect(rgb, columns)
        self._cost = replace(
            self._cost,
            detector_runs=self._cost.detector_runs + 1,
            detector_s=self._cost.detector_s + time.perf_counter() - started,
        )
        return found

    def _add_new(
        self, rgb: np.ndarray, detections: list[Detection], kept: list[tuple[_Followed, PersonLandmarks]]
    ) -> int:
        """Pose each detection not already known; keep those that are nobody found yet. Returns
        how many were added."""
        image_wh = (rgb.shape[1], rgb.shape[0])
        added = 0
        for detection in detections:
            if len(kept) >= self.max_people:
                break
            if any(detects_known(detection, person, image_wh) for _, person in kept):
                continue
            person = self._pose(rgb, detection.region(image_wh))
            for _ in range(c.NEW_PERSON_REFINEMENTS):
                if person is None:
                    break
                person = self._pose(rgb, region_from_alignment(person.aux_xy_px[0], person.aux_xy_px[1]))
            if person is None or any(is_duplicate(other, person, image_wh) for _, other in kept):
                continue
            # Followed from the region it was found in (the refined one): the next frame starts there.
            kept.append((_Followed(person.region), person))
            added += 1
        return added

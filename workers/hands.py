"""Hands per person: find the hands at each person's wrists and attach each to the person it belongs to.

Owns hand detection on a frame (MediaPipe Hands with the wheel's palm detection and hand
landmark full models, run on a crop around each wrist, never a download), the attachment rule
(`attach_hands`), and `HandsEstimator`, which adds hands to the people any pose backend finds.
Does not own the Hand type or its topology (workers.poses), nor storage.

Why crops: the palm detector sees its input at 192 x 192 px, where a hand of a whole person in
a 1280 px frame is 15-25 px and often missed; a square of about two forearms around the wrist
makes it 4-6 times larger. On a front-view curls clip (docs/multi_pose.md, "Hands") the crops
found 52 of the 60 hands against 21 for the whole frame, in less time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.frames import Frame
from workers.estimator import PoseEstimator, import_mediapipe
from workers.poses import LANDMARK_INDEX, Hand, HandSide, Pose

# Body proportions (Drillis & Contini, in fractions of height): forearm (elbow to wrist) 0.146,
# shoulders to hips 0.29, shoulder width 0.24. The larger of the two estimates is used, so a
# person seen from the side (narrow shoulders) or bent towards the camera (short torso) keeps
# a sensible reach.
FOREARM_PER_TORSO = 0.5
FOREARM_PER_SHOULDER_WIDTH = 0.6
# A hand's wrist farther than a forearm from the person's wrist is somebody else's hand, or no
# hand at all: a hand sits at its wrist, and the pose's wrist is off by far less than that.
ATTACH_MAX_FOREARMS = 1.0
# The crop around a wrist, in forearms: a hand is about 0.75 forearm long and points anywhere,
# so two and a half forearms hold it with context. Measured on the front-view curls clip:
# 1.6 torsos (3.2 forearms) pulled the other hand into the crop, 0.8 (1.6) missed more hands.
CROP_SIDE_FOREARMS = 2.4
# The crop's centre is this far past the wrist, away from the elbow: about the palm's middle.
PALM_CENTRE_FOREARMS = 0.3
# A crop smaller than this holds a hand too small for the palm detector to find.
MIN_CROP_PX = 32
# A wrist the pose model did not see (behind the body in a side view, out of the frame) has
# no hand to find in sight either: searching costs a palm detection (~8 ms) for nothing. Half is
# where BlazePose calls a landmark seen, and where workers.movenet maps MoveNet's "seen" score.
CROP_MIN_WRIST_VISIBILITY = 0.5
# The pose's hand points (pinky, index, thumb knuckles) take part in matching a hand only where
# the pose model saw them; BlazePose's guesses of hidden knuckles would pull the match away.
POSE_HAND_POINT_MIN_VISIBILITY = 0.5
# Two hands found whose landmarks lie within this fraction of a hand's size (wrist to middle
# knuckle) on average are the same hand found from two crops (hands close together).
SAME_HAND_MAX_HAND_SIZES = 0.5

_PAIRS: dict[HandSide, tuple[tuple[int, int], ...]] = {
    # (pose landmark, hand landmark): wrist, then the knuckles BlazePose places on the hand.
    HandSide.LEFT: ((15, 0), (17, 17), (19, 5), (21, 2)),
    HandSide.RIGHT: ((16, 0), (18, 17), (20, 5), (22, 2)),
}
_ELBOW = {HandSide.LEFT: LANDMARK_INDEX["left_elbow"], HandSide.RIGHT: LANDMARK_INDEX["right_elbow"]}


def _px(points_xy: np.ndarray, resolution_wh: tuple[int, int]) -> np.ndarray:
    return np.asarray(points_xy, dtype=np.float64) * np.asarray(resolution_wh, dtype=np.float64)


def forearm_px(pose: Pose, resolution_wh: tuple[int, int]) -> float:
    """The person's forearm length in pixels, estimated from the torso and the shoulders (the
    forearm itself is too often foreshortened or hidden to measure)."""
    lm = _px(pose.landmarks_xyzv[:, :2], resolution_wh)
    torso = float(np.linalg.norm((lm[11] + lm[12]) / 2 - (lm[23] + lm[24]) / 2))
    shoulders = float(np.linalg.norm(lm[11] - lm[12]))
    return max(FOREARM_PER_TORSO * torso, FOREARM_PER_SHOULDER_WIDTH * shoulders)


def wrist_gap_px(hand: Hand, pose: Pose, side: HandSide, resolution_wh: tuple[int, int]) -> float:
    """Pixels from the hand's wrist (its landmark 0) to the person's wrist on `side`."""
    hand_wrist = _px(hand.landmarks_xyz[0, :2], resolution_wh)
    pose_wrist = _px(pose.landmarks_xyzv[side.wrist, :2], resolution_wh)
    return float(np.linalg.norm(hand_wrist - pose_wrist))


def match_px(hand: Hand, pose: Pose, side: HandSide, resolution_wh: tuple[int, int]) -> float:
    """How far the hand is from the person's hand on `side`: the mean pixel distance of the
    wrist and of each knuckle the pose model saw to the same points of the hand."""
    pairs = [
        (p, h)
        for p, h in _PAIRS[side]
        if h == 0 or pose.landmarks_xyzv[p, 3] >= POSE_HAND_POINT_MIN_VISIBILITY
    ]
    pose_pts = _px(pose.landmarks_xyzv[[p for p, _ in pairs], :2], resolution_wh)
    hand_pts = _px(hand.landmarks_xyz[[h for _, h in pairs], :2], resolution_wh)
    return float(np.linalg.norm(pose_pts - hand_pts, axis=1).mean())


def distinct_hands(hands: Sequence[Hand], resolution_wh: tuple[int, int]) -> list[Hand]:
    """`hands` without the second finding of a hand (two wrists' crops overlap when the hands are
    close together); the more confident finding stays."""
    kept: list[Hand] = []
    for hand in sorted(hands, key=lambda h: -h.score):
        pts = _px(hand.landmarks_xyz[:, :2], resolution_wh)
        size = float(np.linalg.norm(pts[0] - pts[9]))
        if all(
            np.linalg.norm(pts - _px(other.landmarks_xyz[:, :2], resolution_wh), axis=1).mean()
            > SAME_HAND_MAX_HAND_SIZES * size
            for other in kept
        ):
            kept.append(hand)
    return kept


@dataclass(frozen=True)
class _Candidate:
    relative_gap: float  # match distance in the person's forearms: smaller is better
    hand: int
    person: int
    side: HandSide


def attach_hands(
    poses: Sequence[Pose], hands: Sequence[Hand], resolution_wh: tuple[int, int]
) -> tuple[Pose, ...]:
    """`poses` with each hand attached to the person whose wrist it meets.

    Every (hand, person, side) whose wrists are within ATTACH_MAX_FOREARMS of the person's
    forearm is a candidate; the closest pairs (in that person's forearms, so a small person in
    the back does not lose to a large one in front) are taken first, each hand and each wrist
    at most once. The side is the wrist's, whatever the hand model called the hand. Hands that
    meet no wrist are dropped: a stored hand always belongs to a person.
    """
    found = distinct_hands(hands, resolution_wh)
    candidates = []
    for p, pose in enumerate(poses):
        reach = forearm_px(pose, resolution_wh)
        if reach <= 0:
            continue
        for h, hand in enumerate(found):
            for side in HandSide:
                if wrist_gap_px(hand, pose, side, resolution_wh) <= ATTACH_MAX_FOREARMS * reach:
                    gap = match_px(hand, pose, side, resolution_wh) / reach
                    candidates.append(_Candidate(gap, h, p, side))
    taken_hands: set[int] = set()
    attached: dict[tuple[int, HandSide], Hand] = {}
    for c in sorted(candidates, key=lambda c: c.relative_gap):
        if c.hand in taken_hands or (c.person, c.side) in attached:
            continue
        taken_hands.add(c.hand)
        attached[(c.person, c.side)] = found[c.hand]
    return tuple(
        pose.with_hands(attached.get((p, HandSide.LEFT)), attached.get((p, HandSide.RIGHT)))
        for p, pose in enumerate(poses)
    )


@dataclass(frozen=True)
class CropBox:
    """A region of the frame in pixels, [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(f"empty crop {self}")

    def xywh_fraction(self, resolution_wh: tuple[int, int]) -> tuple[float, float, float, float]:
        w, h = resolution_wh
        return self.x0 / w, self.y0 / h, (self.x1 - self.x0) / w, (self.y1 - self.y0) / h


def wrist_crops(pose: Pose, resolution_wh: tuple[int, int]) -> list[CropBox]:
    """A square around each wrist of `pose` where its hand can be, cut to the frame; none for a
    wrist unseen or outside the frame, or a person too small for a hand to be found."""
    reach = forearm_px(pose, resolution_wh)
    side_px = CROP_SIDE_FOREARMS * reach
    if side_px < MIN_CROP_PX:
        return []
    w, h = resolution_wh
    lm = _px(pose.landmarks_xyzv[:, :2], resolution_wh)
    crops = []
    for side in HandSide:
        wrist = lm[side.wrist]
        seen = pose.landmarks_xyzv[side.wrist, 3] >= CROP_MIN_WRIST_VISIBILITY
        if not (seen and 0 <= wrist[0] < w and 0 <= wrist[1] < h):
            continue
        forearm = wrist - lm[_ELBOW[side]]
        length = float(np.linalg.norm(forearm))
        centre = wrist + (forearm / length * PALM_CENTRE_FOREARMS * reach if length > 0 else 0.0)
        x0, y0 = (int(max(0.0, c - side_px / 2)) for c in centre)
        x1, y1 = int(min(w, centre[0] + side_px / 2)), int(min(h, centre[1] + side_px / 2))
        if x1 - x0 >= MIN_CROP_PX and y1 - y0 >= MIN_CROP_PX:
            crops.append(CropBox(x0, y0, x1, y1))
    return crops


class HandDetector:
    """MediaPipe Hands (full palm detection and hand landmark models, from the wheel) on crops.

    Static-image mode: every crop starts from palm detection, as crops move with the person and
    the solution's tracking assumes a fixed image. One hand per crop (the one at its wrist; the
    other wrist has its own crop), which also bounds the landmark model's runs to two a person;
    `max_hands_per_crop` is for the benchmark's whole-frame comparison.
    """

    def __init__(self, min_confidence: float, max_hands_per_crop: int = 1) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        mp = import_mediapipe()
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=True,
            max_num_hands=max_hands_per_crop,
            model_complexity=1,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )

    def find(self, rgb: np.ndarray, crops: Sequence[CropBox]) -> list[Hand]:
        """The hands found in `crops` of `rgb`, in the whole image's coordinates."""
        resolution_wh = (int(rgb.shape[1]), int(rgb.shape[0]))
        found = []
        for crop in crops:
            results = self._hands.process(np.ascontiguousarray(rgb[crop.y0 : crop.y1, crop.x0 : crop.x1]))
            for landmarks, handedness in zip(
                results.multi_hand_landmarks or (), results.multi_handedness or (), strict=True
            ):
                found.append(Hand.from_mediapipe(landmarks, handedness, crop.xywh_fraction(resolution_wh)))
        return found

    def close(self) -> None:
        self._hands.close()


class HandsEstimator:
    """A pose backend with hands: the backend finds the people, then each person's wrists are
    searched for hands, which are attached to them (`attach_hands`). Hands keep no tracking
    state, so `reset()` is the backend's."""

    def __init__(self, poses: PoseEstimator, hands: HandDetector) -> None:
        self._poses = poses
        self._hands = hands
        self.name = f"{poses.name}+hands"

    def reset(self) -> None:
        self._poses.reset()

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        people = self._poses.estimate(frame)
        if not people:
            return people
        resolution_wh = frame.resolution_wh
        crops = [crop for pose in people for crop in wrist_crops(pose, resolution_wh)]
        return attach_hands(people, self._hands.find(frame.rgb, crops), resolution_wh)

    def close(self) -> None:
        self._poses.close()
        self._hands.close()

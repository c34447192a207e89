"""Finding the hand at a person's wrist: MediaPipe's hand landmark model on a region predicted from
the pose, with MediaPipe Hands' palm detection on a crop around the wrist where that region holds
no hand.

Owns the hand regions (where the landmark model looks, and how its answer maps back to the
image), the hand landmark model (the mediapipe wheel's `hand_landmark_full.tflite`, run with
LiteRT through pose.multipose.runtime) and the palm-detection fallback (`mp.solutions.hands`,
the wheel's full models). Never a download. Does not decide whose hand a hand is
(pose.hands does).

Why a predicted region first: the landmark model alone costs ~8 ms a hand, a palm detection on a
crop and the landmarks after it ~20 ms through the solution API. A hand lies past its wrist, in
the direction of the pose's hand points or, without them, of the forearm, so a square there
holds it; on the front-view curls clip that region held the hand (presence >= 0.5) at 58 of 60
wrists, its landmarks 0.1 hand sizes (wrist to middle knuckle) from what palm detection then
landmarks found (median). A hand the pose placed badly, or a bent wrist without the pose's hand
points, is missed there and left to the fallback.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pose.estimator import import_mediapipe
from pose.multipose.runtime import ModelLoadError, TfliteModel
from pose.types import (
    L_HIP,
    L_SHOULDER,
    LANDMARK_INDEX,
    N_HAND_LANDMARKS,
    R_HIP,
    R_SHOULDER,
    Hand,
    HandSide,
    Pose,
)

HAND_LANDMARK_MODEL = "modules/hand_landmark/hand_landmark_full.tflite"
INPUT_PX = 224  # the landmark model's square input
# The model's outputs in its order: landmarks (21 x, y, z in input pixels), presence, handedness
# (unused: the side comes from the wrist), world landmarks (unused).
_OUTPUT_SHAPES = ((1, 63), (1, 1), (1, 1), (1, 63))
# A region whose presence score is below this holds no hand (MediaPipe's own threshold).
PRESENCE_MIN = 0.5

# Body proportions (Drillis & Contini, in fractions of height): forearm (elbow to wrist) 0.146,
# shoulders to hips 0.29, shoulder width 0.24. The larger of the two estimates is used, so a
# person seen from the side (narrow shoulders) or bent towards the camera (short torso) keeps
# a sensible reach.
FOREARM_PER_TORSO = 0.5
FOREARM_PER_SHOULDER_WIDTH = 0.6
# The predicted region, in forearms: it starts from the wrist and goes on in the hand's direction.
# Measured on the front-view curls clip (ratios to the distance from the pose's wrist to the
# middle of its pinky and index points, 0.22 forearm at the median): centre 0.8 and side 3.2 of
# that distance held the hand at 58 of 60 wrists; side 2.0 at 21-27, 4.0 at 53-56.
ROI_CENTRE_FOREARMS = 0.18
ROI_SIDE_FOREARMS = 0.7
# The pose's pinky and index points give the hand's direction where the pose model saw both
# (BlazePose's backends; MoveNet has none). On a palm flat on the floor the forearm points the
# wrong way: on the side push-up clip (ex_pushup_side_full_then_knee) regions along the forearm
# held no hand at all, regions towards those points 0.48 of the wrists (curls: 0.96 and 0.93).
MIN_KNUCKLE_VISIBILITY = 0.5
# A wrist the pose model did not see (behind the body in a side view, out of the frame) has
# no hand in sight either: searching it costs for nothing. Half is where BlazePose calls a
# landmark seen, and where pose.movenet maps MoveNet's "seen" score.
MIN_WRIST_VISIBILITY = 0.5

# The fallback: a square of 2.4 forearms around the palm goes to palm detection (measured on
# the front-view curls clip: 3.2 pulled the other hand into the crop, 1.6 missed more hands).
CROP_SIDE_FOREARMS = 2.4
# The crop's centre is this far past the wrist in the hand's direction: about the palm's middle.
PALM_CENTRE_FOREARMS = 0.3
# A crop smaller than this holds a hand too small for the palm detector to find.
MIN_CROP_PX = 32
# A region smaller than this, blown up 14 times into the landmark model's input, is a blur.
MIN_REGION_PX = 16

_ELBOW = {HandSide.LEFT: LANDMARK_INDEX["left_elbow"], HandSide.RIGHT: LANDMARK_INDEX["right_elbow"]}
_KNUCKLES = {
    side: (LANDMARK_INDEX[f"{side.name.lower()}_pinky"], LANDMARK_INDEX[f"{side.name.lower()}_index"])
    for side in HandSide
}
# MediaPipe's landmarks-to-region: the palm and the fingers' first joints set the region's size.
_PARTIAL_HAND = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def px(points_xy: np.ndarray, resolution_wh: tuple[int, int]) -> np.ndarray:
    """Fractions of the image -> pixels."""
    return np.asarray(points_xy, dtype=np.float64) * np.asarray(resolution_wh, dtype=np.float64)


def forearm_px(pose: Pose, resolution_wh: tuple[int, int]) -> float:
    """The person's forearm length in pixels, estimated from the torso and the shoulders (the
    forearm itself is too often foreshortened or hidden to measure)."""
    lm = px(pose.landmarks_xyzv[:, :2], resolution_wh)
    torso = float(np.linalg.norm((lm[L_SHOULDER] + lm[R_SHOULDER]) / 2 - (lm[L_HIP] + lm[R_HIP]) / 2))
    shoulders = float(np.linalg.norm(lm[L_SHOULDER] - lm[R_SHOULDER]))
    return max(FOREARM_PER_TORSO * torso, FOREARM_PER_SHOULDER_WIDTH * shoulders)


@dataclass(frozen=True)
class HandRegion:
    """A rotated square of the image where a hand is looked for, in pixels. `rotation_rad` turns
    the square so that its up (to the top of the model's input) is the hand's wrist-to-fingers
    direction: 0 for a hand pointing up in the image, pi/2 for one pointing right."""

    centre_xy_px: tuple[float, float]
    side_px: float
    rotation_rad: float

    def __post_init__(self) -> None:
        if not self.side_px > 0:
            raise ValueError(f"a hand region needs a positive side, got {self.side_px}")

    def input_to_image(self, input_px: int) -> np.ndarray:
        """The 2x3 affine map from the model's input pixels to the image's."""
        k = self.side_px / input_px
        cos, sin = math.cos(self.rotation_rad), math.sin(self.rotation_rad)
        cx, cy = self.centre_xy_px
        half = self.side_px / 2
        return np.array(
            [[k * cos, -k * sin, cx - half * (cos - sin)], [k * sin, k * cos, cy - half * (sin + cos)]],
            dtype=np.float64,
        )

    @staticmethod
    def rotation_of(direction_xy: np.ndarray) -> float:
        """The rotation that makes `direction_xy` (image pixels, y down) the region's up."""
        angle = math.pi / 2 - math.atan2(-float(direction_xy[1]), float(direction_xy[0]))
        return (angle + math.pi) % (2 * math.pi) - math.pi


def _seen_wrist(pose: Pose, side: HandSide, resolution_wh: tuple[int, int]) -> np.ndarray | None:
    wrist = px(pose.landmarks_xyzv[side.wrist, :2], resolution_wh)
    w, h = resolution_wh
    seen = pose.landmarks_xyzv[side.wrist, 3] >= MIN_WRIST_VISIBILITY
    return wrist if seen and 0 <= wrist[0] < w and 0 <= wrist[1] < h else None


def _hand_direction(pose: Pose, side: HandSide, resolution_wh: tuple[int, int]) -> np.ndarray:
    """Unit vector (pixels) from the wrist towards the fingers: to the middle of the pose's pinky
    and index points where the pose model saw both, else on along the forearm (straight down if
    elbow and wrist coincide)."""
    lm = px(pose.landmarks_xyzv[:, :2], resolution_wh)
    wrist = lm[side.wrist]
    pinky, index = _KNUCKLES[side]
    if min(pose.landmarks_xyzv[pinky, 3], pose.landmarks_xyzv[index, 3]) >= MIN_KNUCKLE_VISIBILITY:
        towards = (lm[pinky] + lm[index]) / 2 - wrist
        length = float(np.linalg.norm(towards))
        if length > 0:
            return towards / length
    forearm = wrist - lm[_ELBOW[side]]
    length = float(np.linalg.norm(forearm))
    return forearm / length if length > 0 else np.array([0.0, 1.0])


def region_at_wrist(pose: Pose, side: HandSide, resolution_wh: tuple[int, int]) -> HandRegion | None:
    """Where `pose`'s hand on `side` should be: past the wrist, in the hand's direction. None for a
    wrist unseen or outside the frame, or a person too small for a hand to be found."""
    wrist = _seen_wrist(pose, side, resolution_wh)
    reach = forearm_px(pose, resolution_wh)
    if wrist is None or ROI_SIDE_FOREARMS * reach < MIN_REGION_PX:
        return None
    along = _hand_direction(pose, side, resolution_wh)
    centre = wrist + along * ROI_CENTRE_FOREARMS * reach
    return HandRegion(
        (float(centre[0]), float(centre[1])), ROI_SIDE_FOREARMS * reach, HandRegion.rotation_of(along)
    )


def region_around(points_px: np.ndarray) -> HandRegion:
    """MediaPipe's region for a hand whose 21 landmarks (pixels) are known: turned so the wrist
    points down, the palm and first finger joints bounded, doubled, and moved a tenth of the
    hand towards the fingers (its hand landmark graph's own rule)."""
    wrist = points_px[0]
    knuckles = ((points_px[6] + points_px[14]) / 2 + points_px[10]) / 2
    rotation = HandRegion.rotation_of(knuckles - wrist)
    partial = points_px[list(_PARTIAL_HAND)]
    axis_centre = (partial.max(axis=0) + partial.min(axis=0)) / 2
    cos, sin = math.cos(-rotation), math.sin(-rotation)
    d = partial - axis_centre
    turned = np.stack([d[:, 0] * cos - d[:, 1] * sin, d[:, 0] * sin + d[:, 1] * cos], axis=1)
    mid = (turned.max(axis=0) + turned.min(axis=0)) / 2
    width, height = turned.max(axis=0) - turned.min(axis=0)
    cos, sin = math.cos(rotation), math.sin(rotation)
    centre = axis_centre + np.array([mid[0] * cos - mid[1] * sin, mid[0] * sin + mid[1] * cos])
    centre += np.array([0.1 * height * sin, -0.1 * height * cos])
    return HandRegion((float(centre[0]), float(centre[1])), 2.0 * float(max(width, height, 1.0)), rotation)


@dataclass(frozen=True)
class CropBox:
    """An upright region of the frame in pixels, [x0, x1) x [y0, y1)."""

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


def wrist_crop(pose: Pose, side: HandSide, resolution_wh: tuple[int, int]) -> CropBox | None:
    """The upright square around `pose`'s hand on `side` for palm detection, cut to the frame;
    None where `region_at_wrist` is None."""
    wrist = _seen_wrist(pose, side, resolution_wh)
    reach = forearm_px(pose, resolution_wh)
    side_px = CROP_SIDE_FOREARMS * reach
    if wrist is None or side_px < MIN_CROP_PX:
        return None
    w, h = resolution_wh
    centre = wrist + _hand_direction(pose, side, resolution_wh) * PALM_CENTRE_FOREARMS * reach
    x0, y0 = (int(max(0.0, c - side_px / 2)) for c in centre)
    x1, y1 = int(min(w, centre[0] + side_px / 2)), int(min(h, centre[1] + side_px / 2))
    if x1 - x0 < MIN_CROP_PX or y1 - y0 < MIN_CROP_PX:
        return None
    return CropBox(x0, y0, x1, y1)


class HandLandmarkModel:
    """MediaPipe's hand landmark model (full) on a region of an image."""

    def __init__(self) -> None:
        self._model = TfliteModel.load(HAND_LANDMARK_MODEL)
        shapes = self._model.output_shapes
        if shapes != _OUTPUT_SHAPES or self._model.input_shape != (1, INPUT_PX, INPUT_PX, 3):
            raise ModelLoadError(
                f"{HAND_LANDMARK_MODEL}: inputs {self._model.input_shape}, outputs {shapes}; "
                f"expected (1, {INPUT_PX}, {INPUT_PX}, 3) and {_OUTPUT_SHAPES}"
            )

    def hand_in(self, rgb: np.ndarray, region: HandRegion) -> Hand | None:
        """The hand in `region` of `rgb`, or None when the model finds none there."""
        to_image = region.input_to_image(INPUT_PX)
        crop = cv2.warpAffine(
            rgb,
            to_image,
            (INPUT_PX, INPUT_PX),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
        )
        landmarks, presence, _handedness, _world = self._model.run_ordered(
            (crop.astype(np.float32) * np.float32(1 / 255))[np.newaxis]
        )
        score = float(np.ravel(presence)[0])
        if not score >= PRESENCE_MIN:
            return None
        points = landmarks.reshape(N_HAND_LANDMARKS, 3).astype(np.float64)
        w, h = rgb.shape[1], rgb.shape[0]
        xy = points[:, :2] @ to_image[:, :2].T + to_image[:, 2]
        z = points[:, 2] * (region.side_px / INPUT_PX)  # input pixels -> image pixels, like x
        return Hand(np.column_stack([xy[:, 0] / w, xy[:, 1] / h, z / w]), float(np.clip(score, 0.0, 1.0)))


class PalmSearch:
    """MediaPipe Hands (full palm detection and hand landmark models, from the wheel) on upright
    crops. Static-image mode: every crop starts from palm detection, as crops move with the
    person and the solution's tracking assumes a fixed image."""

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

    def find(self, rgb: np.ndarray, crop: CropBox) -> list[Hand]:
        """The hands found in `crop` of `rgb`, in the whole image's coordinates."""
        resolution_wh = (int(rgb.shape[1]), int(rgb.shape[0]))
        results = self._hands.process(np.ascontiguousarray(rgb[crop.y0 : crop.y1, crop.x0 : crop.x1]))
        return [
            Hand.from_mediapipe(landmarks, handedness, crop.xywh_fraction(resolution_wh))
            for landmarks, handedness in zip(
                results.multi_hand_landmarks or (), results.multi_handedness or (), strict=True
            )
        ]

    def close(self) -> None:
        self._hands.close()


class HandFinder:
    """The hands at the wrists of the people in a frame: the landmark model on the region past
    each seen wrist (`region_at_wrist`); where that holds no hand, palm detection on a crop
    around the wrist, its hands looked at again by the landmark model (so every hand's landmarks
    and score come from the same model). One hand per wrist searched; a hand found from two
    wrists (hands together) is found twice, and pose.hands keeps one. `fallback=False` leaves
    the palm search out (benchmarks and tests)."""

    def __init__(self, min_confidence: float, *, fallback: bool = True) -> None:
        self._landmarks = HandLandmarkModel()
        self._palms = PalmSearch(min_confidence) if fallback else None

    def find(self, rgb: np.ndarray, people: Sequence[Pose]) -> list[Hand]:
        resolution_wh = (int(rgb.shape[1]), int(rgb.shape[0]))
        found = []
        for pose in people:
            for side in HandSide:
                region = region_at_wrist(pose, side, resolution_wh)
                if region is None:
                    continue
                hand = self._landmarks.hand_in(rgb, region)
                if hand is None:
                    hand = self._search_palm(rgb, pose, side, resolution_wh)
                if hand is not None:
                    found.append(hand)
        return found

    def _search_palm(
        self, rgb: np.ndarray, pose: Pose, side: HandSide, resolution_wh: tuple[int, int]
    ) -> Hand | None:
        crop = wrist_crop(pose, side, resolution_wh)
        if self._palms is None or crop is None:
            return None
        for palm_hand in self._palms.find(rgb, crop):
            points = px(palm_hand.landmarks_xyz[:, :2], resolution_wh)
            return self._landmarks.hand_in(rgb, region_around(points))
        return None

    def close(self) -> None:
        if self._palms is not None:
            self._palms.close()

"""Pose data as it leaves the pose backend: 33 BlazePose landmarks per person per frame, and the
21 landmarks of each hand attached to that person (when hands are on, pose.hands).

Owns the landmark topology (names, bones, named subsets, the hands' too) and the entry points
for MediaPipe's result objects (`Pose.from_mediapipe`, `Hand.from_mediapipe`). Imports no model
code, so analytics, storage and the CLI can use these types without loading MediaPipe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

LANDMARK_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
N_LANDMARKS = len(LANDMARK_NAMES)
LANDMARK_INDEX: dict[str, int] = {name: i for i, name in enumerate(LANDMARK_NAMES)}
# The landmarks code names by index (geometry, detectors, backends): from the table above, so
# an index is written down once.
NOSE = LANDMARK_INDEX["nose"]
L_EYE, R_EYE = LANDMARK_INDEX["left_eye"], LANDMARK_INDEX["right_eye"]
L_EAR, R_EAR = LANDMARK_INDEX["left_ear"], LANDMARK_INDEX["right_ear"]
L_SHOULDER, R_SHOULDER = LANDMARK_INDEX["left_shoulder"], LANDMARK_INDEX["right_shoulder"]
L_ELBOW, R_ELBOW = LANDMARK_INDEX["left_elbow"], LANDMARK_INDEX["right_elbow"]
L_WRIST, R_WRIST = LANDMARK_INDEX["left_wrist"], LANDMARK_INDEX["right_wrist"]
L_PINKY, R_PINKY = LANDMARK_INDEX["left_pinky"], LANDMARK_INDEX["right_pinky"]
L_INDEX, R_INDEX = LANDMARK_INDEX["left_index"], LANDMARK_INDEX["right_index"]
L_THUMB, R_THUMB = LANDMARK_INDEX["left_thumb"], LANDMARK_INDEX["right_thumb"]
L_HIP, R_HIP = LANDMARK_INDEX["left_hip"], LANDMARK_INDEX["right_hip"]
L_KNEE, R_KNEE = LANDMARK_INDEX["left_knee"], LANDMARK_INDEX["right_knee"]
L_ANKLE, R_ANKLE = LANDMARK_INDEX["left_ankle"], LANDMARK_INDEX["right_ankle"]
L_HEEL, R_HEEL = LANDMARK_INDEX["left_heel"], LANDMARK_INDEX["right_heel"]
L_FOOT, R_FOOT = LANDMARK_INDEX["left_foot_index"], LANDMARK_INDEX["right_foot_index"]

# Bones drawn on snapshots: BlazePose's own connection list.
BONES: tuple[tuple[int, int], ...] = (
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 7),
    (0, 4),
    (4, 5),
    (5, 6),
    (6, 8),
    (9, 10),
    (11, 12),
    (11, 13),
    (13, 15),
    (15, 17),
    (15, 19),
    (15, 21),
    (17, 19),
    (12, 14),
    (14, 16),
    (16, 18),
    (16, 20),
    (16, 22),
    (18, 20),
    (11, 23),
    (12, 24),
    (23, 24),
    (23, 25),
    (24, 26),
    (25, 27),
    (26, 28),
    (27, 29),
    (28, 30),
    (29, 31),
    (30, 32),
    (27, 31),
    (28, 32),
)

# Named subsets for exports: the hips belong to both halves because both need them as anchor.
LANDMARK_SUBSETS: dict[str, tuple[int, ...]] = {
    "all": tuple(range(N_LANDMARKS)),
    "upper_body": tuple(range(R_HIP + 1)),
    "lower_body": tuple(range(L_HIP, N_LANDMARKS)),
}

_TORSO = (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP)

# MediaPipe Hands' 21 landmarks, in its order (0 is the wrist).
HAND_LANDMARK_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_finger_mcp",
    "index_finger_pip",
    "index_finger_dip",
    "index_finger_tip",
    "middle_finger_mcp",
    "middle_finger_pip",
    "middle_finger_dip",
    "middle_finger_tip",
    "ring_finger_mcp",
    "ring_finger_pip",
    "ring_finger_dip",
    "ring_finger_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_dip",
    "pinky_tip",
)
N_HAND_LANDMARKS = len(HAND_LANDMARK_NAMES)
HAND_LANDMARK_INDEX: dict[str, int] = {name: i for i, name in enumerate(HAND_LANDMARK_NAMES)}
# MediaPipe Hands' own connection list: the palm, then each finger from its base.
HAND_BONES: tuple[tuple[int, int], ...] = (
    (0, 1),
    (0, 5),
    (0, 17),
    (5, 9),
    (9, 13),
    (13, 17),
    (1, 2),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (7, 8),
    (9, 10),
    (10, 11),
    (11, 12),
    (13, 14),
    (14, 15),
    (15, 16),
    (17, 18),
    (18, 19),
    (19, 20),
)


class HandSide(str, Enum):
    """Which of a person's hands; the value is its name in `--landmarks` and in exports."""

    LEFT = "left_hand"
    RIGHT = "right_hand"

    @property
    def wrist(self) -> int:
        """The pose landmark the hand meets (the person's own left or right wrist)."""
        return L_WRIST if self is HandSide.LEFT else R_WRIST


# A named subset that is only hands: both, in this order.
HANDS_SUBSET = "hands"


@dataclass(frozen=True)
class LandmarkSelection:
    """What an export shows of each person: body landmarks (indices) and whole hands."""

    body: tuple[int, ...]
    hands: tuple[HandSide, ...] = ()


def parse_landmark_selection(spec: str, with_hands: bool = False) -> LandmarkSelection:
    """`all`, `upper_body`, `lower_body`, `hands`, or a comma-separated list of landmark names and
    `left_hand` / `right_hand`. `all` includes both hands when `with_hands` (the video was posed
    with hands on), so an export shows everything stored."""
    spec = spec.strip()
    every_hand = tuple(HandSide)
    if spec == "all":
        return LandmarkSelection(LANDMARK_SUBSETS["all"], every_hand if with_hands else ())
    if spec in LANDMARK_SUBSETS:
        return LandmarkSelection(LANDMARK_SUBSETS[spec])
    if spec == HANDS_SUBSET:
        return LandmarkSelection((), every_hand)
    names = [part.strip() for part in spec.split(",") if part.strip()]
    sides = {side.value: side for side in HandSide}
    unknown = [name for name in names if name not in LANDMARK_INDEX and name not in sides]
    if unknown or not names:
        raise ValueError(
            f"unknown landmark(s) {', '.join(unknown) or spec!r}; use all, upper_body, lower_body, hands "
            f"or names from: {', '.join(LANDMARK_NAMES + tuple(sides))}"
        )
    return LandmarkSelection(
        tuple(LANDMARK_INDEX[name] for name in names if name in LANDMARK_INDEX),
        tuple(dict.fromkeys(sides[name] for name in names if name in sides)),
    )


@dataclass(frozen=True, eq=False)
class Hand:
    """One hand's 21 landmarks in one frame.

    `landmarks_xyz`: (21, 3) float32; x and y are fractions of the (upright) image's width and
    height, like a Pose's; z is depth relative to the wrist, in roughly the scale of x. `score`:
    in [0, 1], how sure the hand landmark model is that a hand is there (its presence output;
    pose.hand_landmarks keeps hands from 0.5). Which hand it is comes from the Pose it is
    attached to, never from the model's left/right label (which depends on mirroring).
    """

    landmarks_xyz: np.ndarray
    score: float

    def __post_init__(self) -> None:
        lm = np.asarray(self.landmarks_xyz, dtype=np.float32)
        if lm.shape != (N_HAND_LANDMARKS, 3):
            raise ValueError(f"landmarks_xyz must be ({N_HAND_LANDMARKS}, 3), got {lm.shape}")
        if not np.isfinite(lm).all():
            raise ValueError("landmarks_xyz holds non-finite values")
        object.__setattr__(self, "landmarks_xyz", lm)
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")

    @classmethod
    def from_mediapipe(
        cls, hand_landmarks: Any, handedness: Any, crop_xywh: tuple[float, float, float, float]
    ) -> Hand:
        """From one hand of `mp.solutions.hands.Hands.process()` run on a crop of the image;
        `crop_xywh` is that crop in fractions of the image (0, 0, 1, 1 for the whole image). The
        solution API gives no presence score, so the score is its handedness score, a stand-in
        until the landmark model looks at the hand again (pose.hand_landmarks)."""
        x0, y0, w, h = crop_xywh
        points = np.array([(p.x, p.y, p.z) for p in hand_landmarks.landmark], dtype=np.float32)
        points[:, 0] = x0 + points[:, 0] * w
        points[:, 1] = y0 + points[:, 1] * h
        points[:, 2] *= w  # z is in the crop's x scale
        score = float(np.clip(handedness.classification[0].score, 0.0, 1.0))
        return cls(landmarks_xyz=points, score=score)

    def to_bytes(self) -> bytes:
        """Compact storage form: little-endian float32, (21, 3)."""
        return self.landmarks_xyz.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, landmarks: bytes, score: float) -> Hand:
        return cls(np.frombuffer(landmarks, dtype="<f4").reshape(N_HAND_LANDMARKS, 3), score)


@dataclass(frozen=True, eq=False)
class Pose:
    """One person's landmarks in one frame.

    `landmarks_xyzv`: (33, 4) float32. x and y are fractions of the image width and height
    (the upright frame), z is depth relative to the hips in roughly the same scale as x,
    v is visibility in [0, 1]. `world_xyz_m`: (33, 3) float32 metres, origin between the
    hips, or None when the backend gives no world landmarks. `score`: how sure the backend
    is that this is a person (the detector's score when it has one, else the mean
    visibility of shoulders and hips). `left_hand`, `right_hand`: the person's own hands when
    hands were on and one met that wrist (pose.hands), else None.
    """

    landmarks_xyzv: np.ndarray
    world_xyz_m: np.ndarray | None
    score: float
    left_hand: Hand | None = None
    right_hand: Hand | None = None

    def __post_init__(self) -> None:
        lm = np.asarray(self.landmarks_xyzv, dtype=np.float32)
        if lm.shape != (N_LANDMARKS, 4):
            raise ValueError(f"landmarks_xyzv must be ({N_LANDMARKS}, 4), got {lm.shape}")
        if not np.isfinite(lm).all():
            raise ValueError("landmarks_xyzv holds non-finite values")
        object.__setattr__(self, "landmarks_xyzv", lm)
        if self.world_xyz_m is not None:
            world = np.asarray(self.world_xyz_m, dtype=np.float32)
            if world.shape != (N_LANDMARKS, 3):
                raise ValueError(f"world_xyz_m must be ({N_LANDMARKS}, 3), got {world.shape}")
            object.__setattr__(self, "world_xyz_m", world)
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")

    @property
    def visibility(self) -> np.ndarray:
        return self.landmarks_xyzv[:, 3]

    def hand(self, side: HandSide) -> Hand | None:
        return self.left_hand if side is HandSide.LEFT else self.right_hand

    def with_hands(self, left_hand: Hand | None, right_hand: Hand | None) -> Pose:
        return dataclasses.replace(self, left_hand=left_hand, right_hand=right_hand)

    @classmethod
    def from_mediapipe(cls, results: Any) -> Pose | None:
        """Build from `mp.solutions.pose.Pose.process()` results; None when nobody was found."""
        if results.pose_landmarks is None:
            return None
        landmarks = np.array(
            [(p.x, p.y, p.z, p.visibility) for p in results.pose_landmarks.landmark], dtype=np.float32
        )
        world = None
        if results.pose_world_landmarks is not None:
            world = np.array(
                [(p.x, p.y, p.z) for p in results.pose_world_landmarks.landmark], dtype=np.float32
            )
        score = float(np.clip(landmarks[list(_TORSO), 3].mean(), 0.0, 1.0))
        return cls(landmarks_xyzv=landmarks, world_xyz_m=world, score=score)

    def to_bytes(self) -> tuple[bytes, bytes | None]:
        """Compact storage form: little-endian float32 arrays."""
        world = None if self.world_xyz_m is None else self.world_xyz_m.astype("<f4").tobytes()
        return self.landmarks_xyzv.astype("<f4").tobytes(), world

    @classmethod
    def from_bytes(
        cls,
        landmarks: bytes,
        world: bytes | None,
        score: float,
        left_hand: Hand | None = None,
        right_hand: Hand | None = None,
    ) -> Pose:
        lm = np.frombuffer(landmarks, dtype="<f4").reshape(N_LANDMARKS, 4)
        wl = None if world is None else np.frombuffer(world, dtype="<f4").reshape(N_LANDMARKS, 3)
        return cls(landmarks_xyzv=lm, world_xyz_m=wl, score=score, left_hand=left_hand, right_hand=right_hand)


@dataclass(frozen=True, eq=False)
class FramePoses:
    """Everything the pose backend found in one analysed frame (possibly nobody)."""

    seq: int
    pts_s: float
    resolution_wh: tuple[int, int]
    poses: tuple[Pose, ...]

    def __post_init__(self) -> None:
        if self.seq < 0:
            raise ValueError(f"seq must be >= 0, got {self.seq}")
        if self.resolution_wh[0] <= 0 or self.resolution_wh[1] <= 0:
            raise ValueError(f"resolution_wh must be positive, got {self.resolution_wh}")

    @classmethod
    def of(cls, seq: int, pts_s: float, resolution_wh: tuple[int, int], poses: Sequence[Pose]) -> FramePoses:
        return cls(seq=seq, pts_s=pts_s, resolution_wh=resolution_wh, poses=tuple(poses))

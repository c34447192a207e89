"""Pose data as it leaves the pose backend: 33 BlazePose landmarks per person per frame.

Owns the landmark topology (names, bones, named subsets) and the one entry point for
MediaPipe's result objects (`Pose.from_mediapipe`). Imports no model code, so analytics,
storage and the CLI can use these types without loading MediaPipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    "upper_body": tuple(range(25)),
    "lower_body": tuple(range(23, N_LANDMARKS)),
}

_TORSO = (11, 12, 23, 24)


def parse_landmark_selection(spec: str) -> tuple[int, ...]:
    """`all`, `upper_body`, `lower_body` or a comma-separated list of landmark names."""
    spec = spec.strip()
    if spec in LANDMARK_SUBSETS:
        return LANDMARK_SUBSETS[spec]
    names = [part.strip() for part in spec.split(",") if part.strip()]
    unknown = [name for name in names if name not in LANDMARK_INDEX]
    if unknown or not names:
        raise ValueError(
            f"unknown landmark(s) {', '.join(unknown) or spec!r}; use all, upper_body, lower_body "
            f"or names from: {', '.join(LANDMARK_NAMES)}"
        )
    return tuple(LANDMARK_INDEX[name] for name in names)


@dataclass(frozen=True, eq=False)
class Pose:
    """One person's landmarks in one frame.

    `landmarks_xyzv`: (33, 4) float32. x and y are fractions of the image width and height
    (the upright frame), z is depth relative to the hips in roughly the same scale as x,
    v is visibility in [0, 1]. `world_xyz_m`: (33, 3) float32 metres, origin between the
    hips, or None when the backend gives no world landmarks. `score`: how sure the backend
    is that this is a person (the detector's score when it has one, else the mean
    visibility of shoulders and hips).
    """

    landmarks_xyzv: np.ndarray
    world_xyz_m: np.ndarray | None
    score: float

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
    def from_bytes(cls, landmarks: bytes, world: bytes | None, score: float) -> Pose:
        lm = np.frombuffer(landmarks, dtype="<f4").reshape(N_LANDMARKS, 4)
        wl = None if world is None else np.frombuffer(world, dtype="<f4").reshape(N_LANDMARKS, 3)
        return cls(landmarks_xyzv=lm, world_xyz_m=wl, score=score)


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

"""Joint angles of one pose: elbows, shoulders, hips, knees and trunk inclination, in degrees.

Owns the angle definitions and how the two landmark sets are combined; does not smooth
(a TrackedPose is already smoothed) and does not interpret angles (the detectors do).

A joint angle has two estimates. The image-plane angle (isotropic x, y) is exact when the
limb moves in a plane facing the camera and meaningless when that plane is seen edge-on
(a bent knee seen from the front looks straight, or folded). The world angle (MediaPipe's
metric 3D landmarks) does not depend on the view but is pulled toward a middle pose: a
straight limb reads 145-165 deg and a deep bend 20-40 deg too open. So each joint's angle
is the image angle weighted by how squarely the joint's plane faces the camera (|cos| of
the angle between the plane's normal and the camera axis, from the world landmarks) plus
the world angle weighted by the rest. Side views get image accuracy, front views get a
3D answer, and the change between the two is smooth (no jump in a rep's signal).
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from analytics import geometry as g
from analytics import thresholds as th

if TYPE_CHECKING:
    from analytics.track import TrackedPose

# (outer, vertex, outer) landmark triples, one per joint angle field, in column order.
JOINTS: tuple[tuple[str, int, int, int], ...] = (
    ("left_elbow_deg", g.L_SHOULDER, g.L_ELBOW, g.L_WRIST),
    ("right_elbow_deg", g.R_SHOULDER, g.R_ELBOW, g.R_WRIST),
    # Shoulder: between the upper arm and the trunk side (0 = arm along the body, 180 = overhead).
    ("left_shoulder_deg", g.L_ELBOW, g.L_SHOULDER, g.L_HIP),
    ("right_shoulder_deg", g.R_ELBOW, g.R_SHOULDER, g.R_HIP),
    # Hip: between the trunk side and the thigh (180 = standing straight, small = folded).
    ("left_hip_deg", g.L_SHOULDER, g.L_HIP, g.L_KNEE),
    ("right_hip_deg", g.R_SHOULDER, g.R_HIP, g.R_KNEE),
    ("left_knee_deg", g.L_HIP, g.L_KNEE, g.L_ANKLE),
    ("right_knee_deg", g.R_HIP, g.R_KNEE, g.R_ANKLE),
)


@dataclass(frozen=True)
class JointAngles:
    """Angles of one pose in degrees; NaN where a joint or a neighbour is not visible enough.

    Joint angles are in [0, 180] (180 = straight). `trunk_inclination_deg` is the angle of
    mid-hip -> mid-shoulder from straight up: 0 upright, 90 lying, above 90 head-down.
    """

    left_elbow_deg: float
    right_elbow_deg: float
    left_shoulder_deg: float
    right_shoulder_deg: float
    left_hip_deg: float
    right_hip_deg: float
    left_knee_deg: float
    right_knee_deg: float
    trunk_inclination_deg: float

    @classmethod
    def from_pose(
        cls,
        landmarks_xyzv: np.ndarray,
        resolution_wh: tuple[int, int],
        world_xyz_m: np.ndarray | None = None,
        min_visibility: float = th.VISIBLE,
    ) -> JointAngles:
        """From raw stored landmarks (as in a Pose); the CSV export uses this."""
        xy = g.isotropic_xy(landmarks_xyzv, resolution_wh)
        world = None if world_xyz_m is None else np.asarray(world_xyz_m, dtype=np.float64)
        return cls.from_arrays(xy, world, np.asarray(landmarks_xyzv[:, 3], dtype=np.float64), min_visibility)

    @classmethod
    def from_tracked(cls, pose: TrackedPose, min_visibility: float = th.VISIBLE) -> JointAngles:
        """From a tracked pose's smoothed landmarks (what the detectors use)."""
        return cls.from_arrays(pose.image_xy, pose.world_xyz_m, pose.visibility, min_visibility)

    @classmethod
    def from_arrays(
        cls,
        image_xy: np.ndarray,
        world_xyz_m: np.ndarray | None,
        visibility: np.ndarray,
        min_visibility: float = th.VISIBLE,
    ) -> JointAngles:
        """`image_xy`: (33, 2) in image heights; `world_xyz_m`: (33, 3) or None; `visibility`: (33,)."""
        seen = visibility >= min_visibility
        values = []
        for _name, a, b, c in JOINTS:
            if not (seen[a] and seen[b] and seen[c]):
                values.append(math.nan)
            else:
                values.append(joint_angle_deg(image_xy, world_xyz_m, a, b, c))
        values.append(trunk_inclination_deg(image_xy, world_xyz_m, seen))
        return cls(*values)

    def as_row(self) -> tuple[float, ...]:
        """Values in ANGLE_COLUMNS order."""
        return astuple(self)


# Stable CSV column order: the dataclass field order.
ANGLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(JointAngles))


def joint_angle_deg(image_xy: np.ndarray, world_xyz_m: np.ndarray | None, a: int, b: int, c: int) -> float:
    """The angle at landmark b, image and world estimates combined by how the joint faces the camera."""
    image = g.angle_deg(image_xy[a], image_xy[b], image_xy[c])
    if world_xyz_m is None:
        return image
    wa, wb, wc = world_xyz_m[a], world_xyz_m[b], world_xyz_m[c]
    world = g.angle_deg(wa, wb, wc)
    if math.isnan(world):
        return image
    if math.isnan(image):
        return world
    # The plane of the joint: its normal's share along the camera axis. (Written out: np.cross
    # on one pair of 3-vectors costs more than all the rest of the angle.)
    (ux, uy, uz), (vx, vy, vz) = (wa - wb).tolist(), (wc - wb).tolist()
    nx, ny, nz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
    norm = math.sqrt(nx * nx + ny * ny + nz * nz)
    # A straight limb has no plane; both estimates then agree that it is straight enough,
    # and the image (where straight stays straight under any view) is the better one.
    facing = 1.0 if norm < 1e-9 else abs(nz) / norm
    return facing * image + (1.0 - facing) * world


def trunk_inclination_deg(image_xy: np.ndarray, world_xyz_m: np.ndarray | None, seen: np.ndarray) -> float:
    """Mid-hip -> mid-shoulder from straight up, in degrees; NaN unless a shoulder and a hip are seen.

    The image under-reads a lean toward or away from the camera (depth is dropped), the
    world landmarks see it; the world value is used when present, the image otherwise.
    """
    if not ((seen[g.L_SHOULDER] or seen[g.R_SHOULDER]) and (seen[g.L_HIP] or seen[g.R_HIP])):
        return math.nan
    if world_xyz_m is not None:
        up = g.midpoint(world_xyz_m, g.L_SHOULDER, g.R_SHOULDER) - g.midpoint(world_xyz_m, g.L_HIP, g.R_HIP)
        length = float(np.linalg.norm(up))
        if length > 1e-9:
            # World y points down, like the image's.
            return math.degrees(math.acos(max(-1.0, min(1.0, -float(up[1]) / length))))
    return g.inclination_deg(
        g.midpoint(image_xy, g.L_HIP, g.R_HIP), g.midpoint(image_xy, g.L_SHOULDER, g.R_SHOULDER)
    )

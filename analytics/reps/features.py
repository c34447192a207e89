"""Per-frame body measurements the repetition rules read: joint angles plus a few body-relative distances.

Owns how a TrackedPose becomes numbers in degrees and torso lengths; does not decide
anything. Distances come from the metric world landmarks when the backend gives them
(they do not shrink with perspective or turn with the view) and from the isotropic image
otherwise; either way they are divided by the torso length of the same landmark set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analytics import geometry as g
from analytics import thresholds as th
from analytics.angles import JOINTS, JointAngles
from analytics.track import TrackedPose

LEFT, RIGHT = "left", "right"
SIDES = (LEFT, RIGHT)
_JOINT_INDEX = {name: i for i, (name, _a, _b, _c) in enumerate(JOINTS)}


@dataclass(frozen=True)
class SideValue:
    """One side's reading of a joint: the angle (NaN if unseen) and how well it is seen."""

    angle_deg: float
    visibility: float


@dataclass(frozen=True)
class BodyFeatures:
    """What the repetition rules need from one pose.

    `*_drop_torso`, `*_spread_torso`, `*_rise_torso`: distances in torso lengths; NaN when
    the landmarks involved are not seen. `left_knee_drop_torso` is how much lower the left
    knee is than the right (negative when higher). `wrist_above_nose_torso` is positive when the
    wrists are above the nose. `forearm_down_*` is the downward component of the forearm
    as a fraction of its length (1 = hanging straight down, -1 = straight up).
    `thigh_rise_torso` is how far the knees are above the hips (negative when below).
    `hip_x_ih`, `hip_y_ih` place the mid-hip in the image (image heights, NaN when no hip is
    seen) and `torso_ih` is the tracker's torso yardstick there: how far the body moved.
    `ankles_ih` places each ankle seen well (visibility >= VISIBLE; NaN otherwise), left then
    right, x and y in image heights: whether the feet stayed planted.
    """

    t_s: float
    angles: JointAngles
    joint_visibility: tuple[float, ...]
    trunk_visibility: float
    left_knee_drop_torso: float
    ankle_spread_torso: float
    wrist_above_nose_torso: float
    forearm_down_left: float
    forearm_down_right: float
    thigh_rise_torso: float
    hip_x_ih: float = math.nan
    hip_y_ih: float = math.nan
    torso_ih: float = math.nan
    ankles_ih: tuple[float, float, float, float] = (math.nan, math.nan, math.nan, math.nan)

    def side(self, joint: str, side: str) -> SideValue:
        """`joint` in elbow, shoulder, hip, knee; `side` in left, right."""
        name = f"{side}_{joint}_deg"
        return SideValue(getattr(self.angles, name), self.joint_visibility[_JOINT_INDEX[name]])

    @property
    def knee_gap_torso(self) -> float:
        """Height difference between the knees, in torso lengths (NaN if no knee is seen)."""
        return abs(self.left_knee_drop_torso)

    @property
    def lower_knee_side(self) -> str | None:
        """The side whose knee is lower (None when unknown or exactly level)."""
        drop = self.left_knee_drop_torso
        if math.isnan(drop) or drop == 0.0:
            return None
        return LEFT if drop > 0 else RIGHT

    def forearm_down(self, side: str) -> float:
        return self.forearm_down_left if side == LEFT else self.forearm_down_right

    @classmethod
    def from_tracked(cls, pose: TrackedPose) -> BodyFeatures:
        vis = pose.visibility
        seen = vis >= th.REP_MIN_VISIBILITY
        angles = JointAngles.from_tracked(pose, min_visibility=th.REP_MIN_VISIBILITY)
        joint_vis = tuple(float(min(vis[a], vis[b], vis[c])) for _name, a, b, c in JOINTS)
        # Vertical and spread measurements: world landmarks (metres, camera-aligned, y down)
        # when present, else the image (image heights, y down).
        pts = pose.world_xyz_m if pose.world_xyz_m is not None else pose.image_xy
        torso = g.torso_length(pts)
        # The tracker's yardstick does not shrink when the torso points at the camera.
        img_torso = pose.torso_length_ih or g.torso_length(pose.image_xy)
        hips = [pose.image_xy[i] for i in (g.L_HIP, g.R_HIP) if seen[i]]
        hip = np.mean(hips, axis=0) if hips else (math.nan, math.nan)
        return cls(
            t_s=pose.t_s,
            angles=angles,
            joint_visibility=joint_vis,
            # The better-seen shoulder and hip carry the trunk line (see angles.trunk_inclination_deg).
            trunk_visibility=float(
                min(max(vis[g.L_SHOULDER], vis[g.R_SHOULDER]), max(vis[g.L_HIP], vis[g.R_HIP]))
            ),
            left_knee_drop_torso=_left_knee_drop(pts, torso, seen),
            ankle_spread_torso=_ratio(
                float(np.linalg.norm(pts[g.L_ANKLE] - pts[g.R_ANKLE])), torso, seen, g.L_ANKLE, g.R_ANKLE
            ),
            wrist_above_nose_torso=_wrist_above_nose(pose.image_xy, img_torso, seen),
            forearm_down_left=_forearm_down(pose.image_xy, g.L_ELBOW, g.L_WRIST, seen),
            forearm_down_right=_forearm_down(pose.image_xy, g.R_ELBOW, g.R_WRIST, seen),
            thigh_rise_torso=_thigh_rise(pose.image_xy, img_torso, seen),
            hip_x_ih=float(hip[0]),
            hip_y_ih=float(hip[1]),
            torso_ih=float(img_torso),
            ankles_ih=_ankles(pose.image_xy, vis),
        )


def _ankles(xy: np.ndarray, vis: np.ndarray) -> tuple[float, float, float, float]:
    out: list[float] = []
    for i in (g.L_ANKLE, g.R_ANKLE):
        out.extend((float(xy[i, 0]), float(xy[i, 1])) if vis[i] >= th.VISIBLE else (math.nan, math.nan))
    return out[0], out[1], out[2], out[3]


def _ratio(value: float, torso: float, seen: np.ndarray, *landmarks: int) -> float:
    if torso < 1e-6 or not all(seen[i] for i in landmarks):
        return math.nan
    return float(value) / torso


def _left_knee_drop(pts: np.ndarray, torso: float, seen: np.ndarray) -> float:
    # One seen knee is enough: in a side view the far knee is hidden exactly because it is
    # level with the near one, and the model still places it from the leg.
    if torso < 1e-6 or not (seen[g.L_KNEE] or seen[g.R_KNEE]):
        return math.nan
    return float(pts[g.L_KNEE][1] - pts[g.R_KNEE][1]) / torso  # y points down


def _wrist_above_nose(xy: np.ndarray, torso: float, seen: np.ndarray) -> float:
    wrists = [xy[i][1] for i in (g.L_WRIST, g.R_WRIST) if seen[i]]
    if not wrists or not seen[g.NOSE] or torso < 1e-6:
        return math.nan
    # The lower wrist decides: both hands must be up for the arms to count as overhead.
    return float(xy[g.NOSE][1] - max(wrists)) / torso


def _forearm_down(xy: np.ndarray, elbow: int, wrist: int, seen: np.ndarray) -> float:
    if not (seen[elbow] and seen[wrist]):
        return math.nan
    d = xy[wrist] - xy[elbow]
    length = float(np.linalg.norm(d))
    return math.nan if length < 1e-9 else float(d[1]) / length


def _thigh_rise(xy: np.ndarray, torso: float, seen: np.ndarray) -> float:
    sides = [(h, k) for h, k in ((g.L_HIP, g.L_KNEE), (g.R_HIP, g.R_KNEE)) if seen[h] and seen[k]]
    if not sides or torso < 1e-6:
        return math.nan
    return float(np.mean([xy[h][1] - xy[k][1] for h, k in sides])) / torso

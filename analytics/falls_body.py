"""The body measurements falls are judged by, one tracked pose at a time: centre of mass, trunk, size.

Owns how a pose becomes a `BodySample` (heights in image heights, y down; the trunk's rise in
torso lengths); it does not decide anything (analytics.falls does).

The centre of mass is where gravity acts, so a fall is its uncontrolled descent. It is
estimated from the landmarks with the standard segment masses and centre positions of
Winter (Biomechanics and Motor Control of Human Movement, 4th ed., table 4.1): head 8.1 %
of body mass, trunk 49.7 %, each upper arm 2.8 %, forearm and hand 2.2 %, thigh 10 %, leg
and foot 6.1 %. Hidden landmarks are used as MediaPipe places them: a guessed knee moves
with the body and carries little mass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analytics import geometry as g
from analytics.track import TrackedPose, torso_length_ih
from pose.types import N_LANDMARKS

# (proximal landmark(s), distal landmark(s), centre of mass as a fraction from proximal, mass
# fraction). Pairs of indices mean their midpoint.
_SEGMENTS: tuple[tuple[tuple[int, ...], tuple[int, ...], float, float], ...] = (
    ((g.L_EAR, g.R_EAR), (g.L_EAR, g.R_EAR), 0.0, 0.081),
    ((g.L_SHOULDER, g.R_SHOULDER), (g.L_HIP, g.R_HIP), 0.5, 0.497),
    ((g.L_SHOULDER,), (g.L_ELBOW,), 0.436, 0.028),
    ((g.R_SHOULDER,), (g.R_ELBOW,), 0.436, 0.028),
    ((g.L_ELBOW,), (g.L_WRIST,), 0.682, 0.022),
    ((g.R_ELBOW,), (g.R_WRIST,), 0.682, 0.022),
    ((g.L_HIP,), (g.L_KNEE,), 0.433, 0.100),
    ((g.R_HIP,), (g.R_KNEE,), 0.433, 0.100),
    ((g.L_KNEE,), (g.L_ANKLE,), 0.606, 0.061),
    ((g.R_KNEE,), (g.R_ANKLE,), 0.606, 0.061),
)


def _landmark_weights() -> np.ndarray:
    """Each landmark's share of the centre of mass: the segments' centres are fixed linear
    combinations of landmarks, so the whole sum is one weighted sum of them."""
    weights = np.zeros(N_LANDMARKS)
    for proximal, distal, along, mass in _SEGMENTS:
        weights[list(proximal)] += mass * (1.0 - along) / len(proximal)
        weights[list(distal)] += mass * along / len(distal)
    return weights


_COM_WEIGHTS = _landmark_weights()


def centre_of_mass_xy(xy: np.ndarray) -> np.ndarray:
    """Whole-body centre of mass (same units as `xy`) from segment masses and centres."""
    return _COM_WEIGHTS @ xy


@dataclass(frozen=True)
class BodySample:
    """One pose's fall-relevant measures. Heights are image y in image heights (down is +).

    `com_x`: the centre of mass across the image, in image heights (a re-detection after a
    gap must be where the person was).
    `torso_ih`: the body's yardstick (torso length, foreshortening-free), image heights.
    `trunk_rise`: how far the shoulders are above the hips, in torso lengths: 1 upright,
    0 lying (or torso pointing at the camera), negative head-down.
    """

    t_s: float
    torso_ih: float
    com_y: float
    com_x: float
    hip_y: float
    head_y: float
    feet_y: float
    trunk_rise: float

    @property
    def trunk_angle_deg(self) -> float:
        """Trunk from vertical as the rise implies: 0 upright, 90 horizontal, 180 head-down."""
        return math.degrees(math.acos(max(-1.0, min(1.0, self.trunk_rise))))

    @classmethod
    def from_tracked(cls, pose: TrackedPose) -> BodySample:
        xy = pose.image_xy
        torso = pose.torso_length_ih
        if torso is None:
            torso = torso_length_ih(xy, pose.world_xyz_m, pose.visibility)
        hip = g.midpoint(xy, g.L_HIP, g.R_HIP)
        shoulder = g.midpoint(xy, g.L_SHOULDER, g.R_SHOULDER)
        head = xy[[g.NOSE, g.L_EAR, g.R_EAR]].mean(axis=0)
        com = centre_of_mass_xy(xy)
        return cls(
            t_s=pose.t_s,
            torso_ih=float(torso),
            com_y=float(com[1]),
            com_x=float(com[0]),
            hip_y=float(hip[1]),
            head_y=float(head[1]),
            feet_y=float(max(xy[g.L_ANKLE, 1], xy[g.R_ANKLE, 1])),
            trunk_rise=float(hip[1] - shoulder[1]) / float(torso),
        )

"""Body geometry shared by the detectors: isotropic image coordinates, angles, body scale (and the
landmark indices of pose.types, re-exported for them).

Landmark x and y arrive as fractions of the image width and height; multiplying x by the
aspect ratio gives both axes one unit (the image height), so angles and distances are true.
Everything downstream is measured relative to the body (torso length), never in pixels.
"""

from __future__ import annotations

import math

import numpy as np

from pose.types import (
    L_ANKLE,
    L_EAR,
    L_ELBOW,
    L_FOOT,
    L_HEEL,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    NOSE,
    R_ANKLE,
    R_EAR,
    R_ELBOW,
    R_FOOT,
    R_HEEL,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
)

# The landmark indices the detectors use (g.L_HIP, ...) are pose.types', written down once there.
__all__ = [
    "NOSE",
    "L_EAR",
    "R_EAR",
    "L_SHOULDER",
    "R_SHOULDER",
    "L_ELBOW",
    "R_ELBOW",
    "L_WRIST",
    "R_WRIST",
    "L_HIP",
    "R_HIP",
    "L_KNEE",
    "R_KNEE",
    "L_ANKLE",
    "R_ANKLE",
    "L_HEEL",
    "R_HEEL",
    "L_FOOT",
    "R_FOOT",
    "isotropic_xy",
    "angle_deg",
    "inclination_deg",
    "midpoint",
    "torso_length",
]


def isotropic_xy(landmarks_xyzv: np.ndarray, resolution_wh: tuple[int, int]) -> np.ndarray:
    """(33, 2) positions in units of the image height, y pointing down."""
    width, height = resolution_wh
    xy = landmarks_xyzv[:, :2].astype(np.float64, copy=True)
    xy[:, 0] *= width / height
    return xy


def angle_deg(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """The angle at b between b->a and b->c, in degrees [0, 180]; NaN if a side has no length."""
    u, v = a - b, c - b
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu < 1e-9 or nv < 1e-9:
        return math.nan
    cos = float(np.dot(u, v)) / (nu * nv)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def inclination_deg(lower: np.ndarray, upper: np.ndarray) -> float:
    """Angle of the segment lower->upper from straight up, in degrees [0, 180] (image y points down)."""
    dx, dy = float(upper[0] - lower[0]), float(upper[1] - lower[1])
    if abs(dx) < 1e-12 and abs(dy) < 1e-12:
        return math.nan
    return math.degrees(math.atan2(abs(dx), -dy))


def midpoint(xy: np.ndarray, i: int, j: int) -> np.ndarray:
    return (xy[i] + xy[j]) / 2.0


def torso_length(xy: np.ndarray) -> float:
    """Mid-shoulder to mid-hip distance: the body's yardstick in the image (same units as xy)."""
    return float(np.linalg.norm(midpoint(xy, L_SHOULDER, R_SHOULDER) - midpoint(xy, L_HIP, R_HIP)))

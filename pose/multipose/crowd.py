"""Telling people apart: one pose per body, and the parts of the frame where nobody is known to be.

Owns the rules that decide whether two poses are the same person (coinciding nose, shoulders
and hips; or one found inside the other's torso) and which vertical strips of the frame the
people found so far leave free for the detector to search. Pure geometry on landmarks.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pose.multipose import constants as c
from pose.multipose.detector import Detection
from pose.multipose.landmarks import PersonLandmarks


def detects_known(detection: Detection, person: PersonLandmarks, image_wh: tuple[int, int]) -> bool:
    """Is `detection` of `person` already posed: its mid-hip and mid-shoulder keypoints within
    SAME_PERSON_TORSO_FRACTION of the person's region side, on average, of the person's own?"""
    scale = np.asarray(image_wh, dtype=np.float64)
    lm = person.landmarks_xyzv[:, :2].astype(np.float64) * scale
    theirs = np.stack([lm[list(c.HIP_LANDMARKS)].mean(axis=0), lm[list(c.SHOULDER_LANDMARKS)].mean(axis=0)])
    ours = detection.keypoints_xy[[c.DETECTOR_MID_HIP, c.DETECTOR_MID_SHOULDER]] * scale
    mean_dist = float(np.linalg.norm(theirs - ours, axis=1).mean())
    return mean_dist < c.SAME_PERSON_TORSO_FRACTION * person.region.side_px


def _xy_px(person: PersonLandmarks, idx: tuple[int, ...], image_wh: tuple[int, int]) -> np.ndarray:
    return person.landmarks_xyzv[list(idx), :2].astype(np.float64) * np.asarray(image_wh, dtype=np.float64)


def is_duplicate(a: PersonLandmarks, b: PersonLandmarks, image_wh: tuple[int, int]) -> bool:
    """Is `b` the same body as `a`: the same head, or the same nose, shoulders and hips, or one
    seen inside the body of the other?"""
    dist = np.linalg.norm(
        _xy_px(a, c.ANCHOR_LANDMARKS, image_wh) - _xy_px(b, c.ANCHOR_LANDMARKS, image_wh), axis=1
    )
    side = min(a.region.side_px, b.region.side_px)
    nose = c.ANCHOR_LANDMARKS.index(0)
    if (
        dist[nose] < c.SAME_HEAD_FRACTION * side
        or float(np.median(dist)) < c.DUPLICATE_ANCHOR_FRACTION * side
    ):
        return True
    return nested(b, a, image_wh) or nested(a, b, image_wh)


def nested(inner: PersonLandmarks, outer: PersonLandmarks, image_wh: tuple[int, int]) -> bool:
    """Is `inner`, the smaller of the two, centred inside `outer`'s torso, or, when much
    smaller, inside `outer`'s outline (the convex hull of its landmarks)?"""
    if inner.region.side_px >= outer.region.side_px:
        return False
    center = _xy_px(inner, c.TORSO_LANDMARKS, image_wh).mean(axis=0)
    point = (float(center[0]), float(center[1]))
    torso = _xy_px(outer, c.TORSO_LANDMARKS, image_wh).astype(np.float32)
    if cv2.pointPolygonTest(torso, point, False) >= 0:
        return True
    if inner.region.side_px >= c.NESTED_MAX_SIZE_RATIO * outer.region.side_px:
        return False
    outline = cv2.convexHull(_xy_px(outer, tuple(range(c.N_POSE_LANDMARKS)), image_wh).astype(np.float32))
    return cv2.pointPolygonTest(outline, point, False) >= 0


def free_strips(people: list[PersonLandmarks], image_wh: tuple[int, int]) -> list[tuple[int, int]]:
    """Column ranges [x0, x1) of the frame that no found person's face or torso spans, at least
    MIN_STRIP_FRACTION of the frame's height wide."""
    width, height = image_wh
    min_width = c.MIN_STRIP_FRACTION * height
    spans = sorted(
        (float(xs.min()), float(xs.max()))
        for xs in (_xy_px(p, c.OCCUPIED_LANDMARKS, image_wh)[:, 0] for p in people)
    )
    strips: list[tuple[int, int]] = []
    x = 0.0
    for start, end in spans + [(float(width), float(width))]:
        if start - x >= min_width:
            strips.append((max(0, int(math.floor(x))), min(width, int(math.ceil(start)))))
        x = max(x, end)
    return strips

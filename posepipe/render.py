"""Skeleton pictures: draw stored poses on a frame of the source video (snapshots, and later clips)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.frames import upright
from pipeline.source import is_photo_container
from pose.types import BONES, HAND_BONES, Hand, Pose

# Joints below this visibility are guesses; drawing them would show a confident skeleton
# where the model saw nothing.
DRAW_MIN_VISIBILITY = 0.3


def parse_color(text: str) -> tuple[int, int, int]:
    """'red', '#ff0000' or '255,0,0' -> (r, g, b)."""
    named = {
        "red": (255, 0, 0),
        "white": (255, 255, 255),
        "green": (0, 255, 0),
        "blue": (0, 0, 255),
        "yellow": (255, 255, 0),
        "black": (0, 0, 0),
        "cyan": (0, 255, 255),
        "magenta": (255, 0, 255),
    }
    value = text.strip().lower()
    if value in named:
        return named[value]
    if value.startswith("#") and len(value) == 7:
        return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
    parts = value.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() and 0 <= int(p) <= 255 for p in parts):
        return int(parts[0]), int(parts[1]), int(parts[2])
    raise ValueError(f"colour {text!r}: use a name ({', '.join(named)}), #rrggbb or r,g,b")


@dataclass(frozen=True)
class SkeletonStyle:
    joint_rgb: tuple[int, int, int] = (255, 0, 0)
    bone_rgb: tuple[int, int, int] = (255, 255, 255)
    # Sizes relative to the image's shorter side, so a 4K and a 240p snapshot look alike.
    joint_radius_frac: float = 0.008
    bone_thickness_frac: float = 0.004
    min_visibility: float = DRAW_MIN_VISIBILITY
    # Hands are drawn thinner and smaller: their bones are a tenth of a body's.
    hand_scale: float = 0.5


def draw_skeleton(
    rgb: np.ndarray, poses: Sequence[Pose], style: SkeletonStyle = SkeletonStyle()
) -> np.ndarray:
    """A copy of `rgb` with each pose's bones and joints drawn on it, and its hands' (when stored)."""
    out = np.ascontiguousarray(rgb.copy())
    height, width = out.shape[:2]
    short = min(width, height)
    radius = max(2, int(round(style.joint_radius_frac * short)))
    thickness = max(1, int(round(style.bone_thickness_frac * short)))
    for pose in poses:
        lm = pose.landmarks_xyzv
        points = [(int(round(x * width)), int(round(y * height))) for x, y in lm[:, :2]]
        seen = lm[:, 3] >= style.min_visibility
        for a, b in BONES:
            if seen[a] and seen[b]:
                cv2.line(out, points[a], points[b], style.bone_rgb, thickness, cv2.LINE_AA)
        for i, point in enumerate(points):
            if seen[i]:
                cv2.circle(out, point, radius, style.joint_rgb, -1, cv2.LINE_AA)
        for hand in (pose.left_hand, pose.right_hand):
            if hand is not None:
                _draw_hand(out, hand, style, radius, thickness)
    return out


def _draw_hand(out: np.ndarray, hand: Hand, style: SkeletonStyle, radius: int, thickness: int) -> None:
    # A hand has no per-point visibility: the hand model saw all of it or did not report it.
    height, width = out.shape[:2]
    points = [(int(round(x * width)), int(round(y * height))) for x, y in hand.landmarks_xyz[:, :2]]
    hand_thickness = max(1, int(round(thickness * style.hand_scale)))
    hand_radius = max(1, int(round(radius * style.hand_scale)))
    for a, b in HAND_BONES:
        cv2.line(out, points[a], points[b], style.bone_rgb, hand_thickness, cv2.LINE_AA)
    for point in points:
        cv2.circle(out, point, hand_radius, style.joint_rgb, -1, cv2.LINE_AA)


class FrameNotFoundError(LookupError):
    pass


def read_frame_at(path: str | Path, t_s: float) -> np.ndarray:
    """The upright RGB frame of `path` whose presentation time is closest to `t_s` (seconds
    from the stream's start, as the pipeline counts them)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if is_photo_container(container.format.name):
            # A photo is its one frame, whatever the time asked (an image demuxer cannot seek).
            frame = next(container.decode(stream))
            return upright(frame.to_ndarray(format="rgb24"), int(round(frame.rotation / 90.0)) * 90)
        time_base = stream.time_base
        start = stream.start_time or 0
        container.seek(start + int(max(0.0, t_s) / time_base), stream=stream, backward=True, any_frame=False)
        best: tuple[float, av.VideoFrame] | None = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            pts_s = float((frame.pts - start) * time_base)
            gap = abs(pts_s - t_s)
            if best is None or gap < best[0]:
                best = (gap, frame)
            elif pts_s > t_s:
                break
        if best is None or not math.isfinite(best[0]):
            raise FrameNotFoundError(f"{path}: no frame near {t_s:.3f} s")
        frame = best[1]
        return upright(frame.to_ndarray(format="rgb24"), int(round(frame.rotation / 90.0)) * 90)


def write_jpeg(path: str | Path, rgb: np.ndarray, quality: int = 92) -> None:
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"could not write {path}")

"""Regions of interest: rotated squares in image pixels, the crops they define, and back-projection.

Owns the geometry MediaPipe's pose graph does between its models: the region from two
alignment points (centre, and a point whose distance and direction give size and rotation),
its enlargement, the affine warp of a region into a model's input tensor, and the mapping of
points in that tensor back to the image. Knows nothing about the models themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pose.multipose import constants as c


@dataclass(frozen=True)
class RotatedRect:
    """A region of the image: centre and size in pixels, rotation clockwise in radians.

    Rotation is in the image's frame (y down), so a positive angle turns the region clockwise
    on screen; the crop of a region is the image turned the other way, upright for the model.
    """

    center_xy_px: tuple[float, float]
    size_wh_px: tuple[float, float]
    rotation_rad: float = 0.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (*self.center_xy_px, *self.size_wh_px, self.rotation_rad)):
            raise ValueError(f"non-finite region {self}")
        if self.size_wh_px[0] <= 0 or self.size_wh_px[1] <= 0:
            raise ValueError(f"region size must be positive, got {self.size_wh_px}")

    @property
    def side_px(self) -> float:
        return max(self.size_wh_px)

    def tensor_to_image(self, tensor_wh: tuple[int, int]) -> np.ndarray:
        """2x3 affine matrix taking tensor pixel coordinates to image pixel coordinates.

        The region's corners map to the tensor's corners (0, 0) and (width, height), the
        convention of MediaPipe's image-to-tensor conversion.
        """
        cos, sin = math.cos(self.rotation_rad), math.sin(self.rotation_rad)
        (cx, cy), (w, h) = self.center_xy_px, self.size_wh_px
        sx, sy = w / tensor_wh[0], h / tensor_wh[1]
        a = np.array([[cos * sx, -sin * sy], [sin * sx, cos * sy]])
        offset = np.array([cx, cy]) - a @ np.array([tensor_wh[0] / 2, tensor_wh[1] / 2])
        return np.hstack([a, offset[:, None]])

    def crop(self, rgb: np.ndarray, tensor_wh: tuple[int, int], *, replicate_border: bool) -> np.ndarray:
        """The region warped into a tensor_wh uint8 image (bilinear; outside the image:
        edge pixels repeated, or black)."""
        return cv2.warpAffine(
            rgb,
            self.tensor_to_image(tensor_wh),
            tensor_wh,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE if replicate_border else cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )

    def project(self, xy_roi: np.ndarray) -> np.ndarray:
        """Points given as fractions of the region (0..1 along its own axes) -> image pixels."""
        cos, sin = math.cos(self.rotation_rad), math.sin(self.rotation_rad)
        (cx, cy), (w, h) = self.center_xy_px, self.size_wh_px
        local_x = (xy_roi[:, 0] - 0.5) * w
        local_y = (xy_roi[:, 1] - 0.5) * h
        return np.stack([cx + cos * local_x - sin * local_y, cy + sin * local_x + cos * local_y], axis=1)

    def rotate(self, xy: np.ndarray) -> np.ndarray:
        """Vectors turned by the region's rotation (world landmarks follow the crop's turn)."""
        cos, sin = math.cos(self.rotation_rad), math.sin(self.rotation_rad)
        return np.stack([cos * xy[:, 0] - sin * xy[:, 1], sin * xy[:, 0] + cos * xy[:, 1]], axis=1)


def normalize_radians(angle: float) -> float:
    """The same angle in [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def region_from_alignment(center_xy_px: np.ndarray, scale_xy_px: np.ndarray) -> RotatedRect:
    """The body's region from its two alignment points (both in image pixels).

    Centre on the first point; the side is twice the distance to the second, times
    ROI_SCALE; the rotation turns the vector between them to point straight up.
    """
    dx = float(scale_xy_px[0] - center_xy_px[0])
    dy = float(scale_xy_px[1] - center_xy_px[1])
    side = 2.0 * math.hypot(dx, dy) * c.ROI_SCALE
    rotation = normalize_radians(c.ROI_TARGET_ANGLE_RAD - math.atan2(-dy, dx))
    return RotatedRect(
        center_xy_px=(float(center_xy_px[0]), float(center_xy_px[1])),
        size_wh_px=(max(side, 1e-3), max(side, 1e-3)),
        rotation_rad=rotation,
    )


def letterbox(image_wh: tuple[int, int]) -> tuple[RotatedRect, tuple[float, float]]:
    """The square region holding the whole image centred (keep-aspect-ratio input), and the
    padding it adds on each side as fractions of the square: (horizontal, vertical)."""
    w, h = image_wh
    side = float(max(w, h))
    rect = RotatedRect(center_xy_px=(w / 2, h / 2), size_wh_px=(side, side))
    return rect, ((1.0 - w / side) / 2, (1.0 - h / side) / 2)


def ssd_anchor_centers() -> np.ndarray:
    """(N_ANCHORS, 2) anchor centres as fractions of the detector's input (x, y).

    Layers with the same stride share one grid; every cell of a grid gets
    ANCHORS_PER_LAYER anchors per layer sharing it, all of fixed size 1 (so only centres matter).
    """
    centers: list[np.ndarray] = []
    strides = list(c.ANCHOR_STRIDES_PX)
    i = 0
    while i < len(strides):
        same = 1
        while i + same < len(strides) and strides[i + same] == strides[i]:
            same += 1
        cells = math.ceil(c.DETECTOR_INPUT_PX / strides[i])
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs.ravel() + c.ANCHOR_OFFSET) / cells, (ys.ravel() + c.ANCHOR_OFFSET) / cells], 1)
        centers.append(np.repeat(grid, same * c.ANCHORS_PER_LAYER, axis=0))
        i += same
    out = np.concatenate(centers).astype(np.float32)
    if out.shape != (c.N_ANCHORS, 2):
        raise AssertionError(f"anchor layout gives {out.shape[0]} anchors, the model has {c.N_ANCHORS}")
    return out

"""The landmark model: one person's 33 landmarks from the crop of their region of interest.

Owns the crop (the region warped to 256x256, values 0..1, edge pixels repeated), the
decoding of the model's outputs (39 landmarks x 5 values, a pose-presence flag, a 64x64
heatmap per landmark, 39 world landmarks x 3), the heatmap refinement of x and y, and the
projection of everything back into the frame. Finding people is the detector's job and
following them the estimator's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pose.multipose import constants as c
from pose.multipose.detector import sigmoid
from pose.multipose.regions import RotatedRect
from pose.multipose.runtime import TfliteModel

_HALF_KERNEL = (c.HEATMAP_KERNEL - 1) // 2
# Heatmap logit used for cells beyond the edge: sigmoid(-100) = 4e-44, i.e. no weight at all.
_OUTSIDE_LOGIT = -100.0


@dataclass(frozen=True, eq=False)
class PersonLandmarks:
    """One person in one frame, from the landmark model.

    `landmarks_xyzv`: (33, 4) x, y as fractions of the frame's width and height, z in the
    scale of x (relative to the hips), visibility 0..1. `world_xyz_m`: (33, 3) metres, origin
    between the hips. `aux_xy_px`: (2, 2) the two auxiliary landmarks in frame pixels (they
    define the next frame's region). `presence`: the model's confidence that a person is in
    the region. `region`: the region the landmarks were found in.
    """

    landmarks_xyzv: np.ndarray
    world_xyz_m: np.ndarray
    aux_xy_px: np.ndarray
    presence: float
    region: RotatedRect


def refine_with_heatmap(xy: np.ndarray, heatmap_logits: np.ndarray) -> np.ndarray:
    """Landmark x, y (fractions of the crop) moved to the score-weighted centre of their heatmap
    window where the heatmap is confident (peak >= HEATMAP_MIN_CONFIDENCE); others stay.

    A window reaching past the heatmap's edge is cut there. The weighted centre uses cell
    indices over the heatmap size, as MediaPipe's refinement does.
    """
    hm_h, hm_w, n = heatmap_logits.shape
    out = xy.copy()
    # Truncation toward zero, as a C++ float-to-int conversion.
    cols = np.trunc(xy[:, 0] * hm_w).astype(np.int64)
    rows = np.trunc(xy[:, 1] * hm_h).astype(np.int64)
    inside = (cols >= 0) & (cols < hm_w) & (rows >= 0) & (rows < hm_h)
    idx = np.nonzero(inside)[0]
    if idx.size == 0:
        return out
    padded = np.pad(
        heatmap_logits, ((_HALF_KERNEL,) * 2, (_HALF_KERNEL,) * 2, (0, 0)), constant_values=_OUTSIDE_LOGIT
    )
    offsets = np.arange(c.HEATMAP_KERNEL)
    # Window cells of each landmark: (k, kernel, kernel), in padded coordinates.
    win_rows = rows[idx][:, None, None] + offsets[None, :, None]
    win_cols = cols[idx][:, None, None] + offsets[None, None, :]
    conf = sigmoid(padded[win_rows, win_cols, idx[:, None, None]])
    total = conf.sum(axis=(1, 2))
    peak = conf.max(axis=(1, 2))
    real_rows = (win_rows - _HALF_KERNEL).astype(np.float64)
    real_cols = (win_cols - _HALF_KERNEL).astype(np.float64)
    x = (conf * real_cols).sum(axis=(1, 2)) / np.where(total > 0, total, 1.0) / hm_w
    y = (conf * real_rows).sum(axis=(1, 2)) / np.where(total > 0, total, 1.0) / hm_h
    refine = (peak >= c.HEATMAP_MIN_CONFIDENCE) & (total > 0)
    out[idx[refine], 0] = x[refine]
    out[idx[refine], 1] = y[refine]
    return out


class LandmarkModel:
    """One of BlazePose's landmark models (`model`: lite, full or heavy; see
    constants.LANDMARK_MODELS). One per estimator; not thread-safe (one interpreter)."""

    def __init__(self, model: str = "full") -> None:
        if model not in c.LANDMARK_MODELS:
            raise ValueError(f"unknown landmark model {model!r}; choose from {', '.join(c.LANDMARK_MODELS)}")
        self.model = model
        self._model = TfliteModel.load(c.LANDMARK_MODELS[model])
        n = c.N_MODEL_LANDMARKS
        self._used_outputs = (
            (1, n * c.LANDMARK_VALUES),
            (1, 1),
            (1, c.LANDMARK_INPUT_PX // 4, c.LANDMARK_INPUT_PX // 4, n),
            (1, n * 3),
        )

    def estimate(self, rgb: np.ndarray, region: RotatedRect) -> PersonLandmarks:
        """The landmarks of whoever fills `region` (check `presence` before believing them)."""
        size = (c.LANDMARK_INPUT_PX, c.LANDMARK_INPUT_PX)
        n = c.N_MODEL_LANDMARKS
        crop = region.crop(rgb, size, replicate_border=True)
        # Not the segmentation mask (256x256, unused): a copy of every output costs ~0.2 ms.
        outputs = self._model.run_pixels(crop, c.LANDMARK_RANGE, self._used_outputs)
        raw = outputs[(1, n * c.LANDMARK_VALUES)].reshape(n, c.LANDMARK_VALUES).astype(np.float64)
        presence = float(outputs[(1, 1)].reshape(()))
        heatmap = outputs[(1, c.LANDMARK_INPUT_PX // 4, c.LANDMARK_INPUT_PX // 4, n)][0]
        world = outputs[(1, n * 3)].reshape(n, 3).astype(np.float64)
        return self._decode(raw, heatmap, world, presence, region, (rgb.shape[1], rgb.shape[0]))

    @staticmethod
    def _decode(
        raw: np.ndarray,
        heatmap: np.ndarray,
        world: np.ndarray,
        presence: float,
        region: RotatedRect,
        image_wh: tuple[int, int],
    ) -> PersonLandmarks:
        xy_crop = refine_with_heatmap(raw[:, 0:2] / c.LANDMARK_INPUT_PX, heatmap)
        xy_px = region.project(xy_crop)
        width, height = image_wh
        # z is in the crop's x scale; the crop spans the region's width.
        z = raw[:, 2] / c.LANDMARK_INPUT_PX * (region.size_wh_px[0] / width)
        visibility = sigmoid(raw[:, 3])
        pose = slice(0, c.N_POSE_LANDMARKS)
        landmarks = np.stack(
            [xy_px[pose, 0] / width, xy_px[pose, 1] / height, z[pose], visibility[pose]], axis=1
        )
        world_xy = region.rotate(world[pose, 0:2])
        world_xyz = np.concatenate([world_xy, world[pose, 2:3]], axis=1)
        return PersonLandmarks(
            landmarks_xyzv=landmarks.astype(np.float32),
            world_xyz_m=world_xyz.astype(np.float32),
            aux_xy_px=xy_px[list(c.AUX_LANDMARKS)],
            presence=float(np.clip(presence, 0.0, 1.0)),
            region=region,
        )

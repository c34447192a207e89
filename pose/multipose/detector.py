"""The person detector: BlazePose's SSD detector over the whole frame, decoded into body regions.

Owns the detector's input (the frame letterboxed into 224x224, values -1..1), the decoding of
its 2254 anchor outputs (a face box and four body keypoints each), MediaPipe's weighted
non-maximum suppression, and the region of interest each surviving detection gives the
landmark model. Does not pose anyone (see landmarks) or follow anyone (see estimator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pose.multipose import constants as c
from pose.multipose.regions import RotatedRect, letterbox, region_from_alignment, ssd_anchor_centers
from pose.multipose.runtime import TfliteModel


@dataclass(frozen=True, eq=False)
class Detection:
    """One detected person. `box_xyxy` is the face box and `keypoints_xy` (4, 2) the body
    keypoints (mid-hip, full-body size point, mid-shoulder, upper-body size point), both as
    fractions of the frame's width and height."""

    score: float
    box_xyxy: np.ndarray
    keypoints_xy: np.ndarray

    def region(self, image_wh: tuple[int, int]) -> RotatedRect:
        """The landmark model's region for this person (full body: keypoints 0 and 1)."""
        scale = np.array(image_wh, dtype=np.float64)
        return region_from_alignment(self.keypoints_xy[0] * scale, self.keypoints_xy[1] * scale)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # Clipped: beyond +-80 the result is 0 or 1 to float precision, and exp would overflow.
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one xyxy box with each of `boxes` (0 when disjoint)."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(
    scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, min_iou: float
) -> list[Detection]:
    """MediaPipe's weighted NMS: take the best remaining box; every remaining box overlapping
    it by more than `min_iou` (itself included) is merged into it, coordinates and keypoints
    averaged with score weights; the merged detection keeps the best box's score."""
    order = np.argsort(-scores, kind="stable")
    out: list[Detection] = []
    while order.size:
        best = order[0]
        overlapping = iou(boxes[best], boxes[order]) > min_iou
        overlapping[0] = True  # the best box is in its own group even if degenerate (zero area)
        group = order[overlapping]
        weights = scores[group][:, None]
        total = float(weights.sum())
        out.append(
            Detection(
                score=float(scores[best]),
                box_xyxy=(boxes[group] * weights).sum(axis=0) / total,
                keypoints_xy=(keypoints[group] * weights[:, :, None]).sum(axis=0) / total,
            )
        )
        order = order[~overlapping]
    return out


class PoseDetector:
    """Finds people in a whole frame. One per estimator; not thread-safe (one interpreter)."""

    def __init__(self, min_score: float) -> None:
        if not 0.0 < min_score < 1.0:
            raise ValueError(f"min_score must be in (0, 1), got {min_score}")
        self.min_score = min_score
        self._model = TfliteModel.load(c.DETECTOR_MODEL)
        self._anchors = ssd_anchor_centers()

    def detect(self, rgb: np.ndarray, columns: tuple[int, int] | None = None) -> list[Detection]:
        """People in the frame (or only in its columns [x0, x1)), best first, coordinates as
        fractions of the whole frame."""
        full_w, full_h = rgb.shape[1], rgb.shape[0]
        x0, x1 = (0, full_w) if columns is None else columns
        if not 0 <= x0 < x1 <= full_w:
            raise ValueError(f"columns {columns} outside a frame {full_w} wide")
        part = rgb if columns is None else np.ascontiguousarray(rgb[:, x0:x1])
        region, (pad_x, pad_y) = letterbox((x1 - x0, full_h))
        size = (c.DETECTOR_INPUT_PX, c.DETECTOR_INPUT_PX)
        pixels = region.crop(part, size, replicate_border=False)
        outputs = self._model.run_pixels(pixels, c.DETECTOR_RANGE)
        raw = outputs[(1, c.N_ANCHORS, c.DETECTOR_COORDS)][0]
        logits = outputs[(1, c.N_ANCHORS, 1)][0, :, 0]
        scores = sigmoid(np.clip(logits, -c.SCORE_CLIP, c.SCORE_CLIP))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        found = self._decode(raw[keep], scores[keep], self._anchors[keep], pad_x, pad_y)
        if columns is None:
            return found
        # From fractions of the strip to fractions of the frame.
        scale = np.array([(x1 - x0) / full_w, 1.0])
        offset = np.array([x0 / full_w, 0.0])
        return [
            Detection(
                score=d.score,
                box_xyxy=d.box_xyxy * np.tile(scale, 2) + np.tile(offset, 2),
                keypoints_xy=d.keypoints_xy * scale + offset,
            )
            for d in found
        ]

    @staticmethod
    def _decode(
        raw: np.ndarray, scores: np.ndarray, anchors: np.ndarray, pad_x: float, pad_y: float
    ) -> list[Detection]:
        # Offsets are in input pixels from the anchor's centre; anchors have size 1.
        raw = raw.astype(np.float64) / c.DETECTOR_INPUT_PX
        anchors = anchors.astype(np.float64)
        center = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([center - half, center + half], axis=1)
        keypoints = raw[:, 4:].reshape(-1, c.N_DETECTOR_KEYPOINTS, 2) + anchors[:, None, :]
        detections = weighted_nms(scores.astype(np.float64), boxes, keypoints, c.NMS_MIN_IOU)
        # Letterbox removal: from fractions of the padded square to fractions of the frame.
        offset = np.array([pad_x, pad_y])
        scale = 1.0 - 2 * offset
        return [
            Detection(
                score=d.score,
                box_xyxy=(d.box_xyxy - np.tile(offset, 2)) / np.tile(scale, 2),
                keypoints_xy=(d.keypoints_xy - offset) / scale,
            )
            for d in detections
        ]

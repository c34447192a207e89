"""The `movenet` pose backend: MoveNet MultiPose Lightning (fp16 TFLite) under LiteRT, up to 6 people.

Owns MoveNet's input (the frame letterboxed into 256x256 uint8), the decoding of its output
(per person: 17 COCO keypoints as y, x, score; a box; an instance score), the retry on the
frame turned 90 degrees either way when nobody is found (MoveNet was trained on people mostly
upright; someone lying across the frame is often found only once the frame is turned), and the
mapping of COCO's 17 keypoints into the stored 33-landmark BlazePose layout (pose.types):
the 16 landmarks COCO lacks (inner/outer eyes, mouth, fingers, heels, toes) are placed on their
nearest COCO keypoint with visibility 0, so drawings and exports work unchanged and every
reader that checks visibility ignores them. No world landmarks, no depth (z = 0).

MoveNet poses every frame on its own: there is no tracking state, `reset()` does nothing, and
person identity across frames is left to analytics.track, as for the other backends. The model
file is installed by scripts/install (pose.model_files), never fetched at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from pipeline.frames import Frame
from pose import model_files
from pose.types import LANDMARK_INDEX, N_LANDMARKS, Pose

INPUT_PX = 256  # the model's square input (any multiple of 32 works; 256 is what it was exported at)
MAX_PEOPLE = 6  # the model's fixed number of output slots
N_KEYPOINTS = 17
VALUES_PER_PERSON = 56  # 17 x (y, x, score), box (ymin, xmin, ymax, xmax), instance score
BOX_START = 3 * N_KEYPOINTS
SCORE_INDEX = BOX_START + 4
# A person slot counts when its instance score reaches this. The measurement on the 16
# shared falls (frames after landing): 0.10 finds 83 %, 0.15 with the turned-frame retry 84 %
# with more horizontal trunks (72 % vs 69 %); the retry recovers what the higher threshold drops
# while keeping fewer phantom people in the scenery.
MIN_PERSON_SCORE = 0.15
# MoveNet's keypoint scores are not BlazePose's visibilities: a clearly seen joint scores 0.3-0.8
# (dance clip, photos), and the demos draw a keypoint from 0.3 up (SCORE_THRESHOLD 0.3); a
# wrist 25 px off on the labelled businessman photo scored 0.27. The analytics call a landmark
# seen at visibility 0.5 (analytics.thresholds.VISIBLE), so a score is mapped piecewise
# linearly: 0 -> 0, KEYPOINT_SEEN_SCORE -> 0.5, 1 -> 1 (monotone: the order of points is kept).
KEYPOINT_SEEN_SCORE = 0.3
BLAZEPOSE_SEEN_VISIBILITY = 0.5
# One interpreter thread: workers scale by processes (see pose.multipose.constants).
INTERPRETER_THREADS = 1

# COCO keypoint order as MoveNet gives it, by BlazePose landmark name.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO_TO_BLAZEPOSE: tuple[int, ...] = tuple(LANDMARK_INDEX[name] for name in COCO_KEYPOINTS)
# Where each BlazePose landmark COCO lacks is placed (with visibility 0): on the COCO keypoint
# it belongs to, so a bone drawn to it has no length instead of pointing at the frame's corner.
_STAND_IN: dict[str, str] = {
    "left_eye_inner": "left_eye",
    "left_eye_outer": "left_eye",
    "right_eye_inner": "right_eye",
    "right_eye_outer": "right_eye",
    "mouth_left": "nose",
    "mouth_right": "nose",
    "left_pinky": "left_wrist",
    "left_index": "left_wrist",
    "left_thumb": "left_wrist",
    "right_pinky": "right_wrist",
    "right_index": "right_wrist",
    "right_thumb": "right_wrist",
    "left_heel": "left_ankle",
    "left_foot_index": "left_ankle",
    "right_heel": "right_ankle",
    "right_foot_index": "right_ankle",
}
# For each of the 33 landmarks, the COCO keypoint its position comes from.
_SOURCE_KEYPOINT: tuple[int, ...] = tuple(
    COCO_KEYPOINTS.index(_STAND_IN.get(name, name))
    for name in sorted(LANDMARK_INDEX, key=LANDMARK_INDEX.__getitem__)
)
_TORSO = tuple(LANDMARK_INDEX[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
_SEEN = np.zeros(N_LANDMARKS, dtype=bool)
_SEEN[list(COCO_TO_BLAZEPOSE)] = True

# The frame turns tried when nobody is found upright: the cv2.rotate code and the name `unturn`
# maps points back with.
_TURNS: tuple[tuple[int, str], ...] = (
    (cv2.ROTATE_90_CLOCKWISE, "cw"),
    (cv2.ROTATE_90_COUNTERCLOCKWISE, "ccw"),
)


@dataclass(frozen=True)
class Letterbox:
    """How a frame sits in the model's square input: scaled by `scale`, top-left at (0, 0)."""

    scale: float
    frame_wh: tuple[int, int]

    @classmethod
    def of(cls, frame_wh: tuple[int, int]) -> Letterbox:
        return cls(INPUT_PX / max(frame_wh), frame_wh)

    def tensor(self, rgb: np.ndarray) -> np.ndarray:
        w, h = self.frame_wh
        size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
        # INTER_AREA: frames are shrunk (up to 1280 -> 256) and area averaging keeps thin limbs.
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        out = np.zeros((1, INPUT_PX, INPUT_PX, 3), dtype=np.uint8)
        out[0, : size[1], : size[0]] = small
        return out

    def to_frame(self, yx_input: np.ndarray) -> np.ndarray:
        """(n, 2) y, x as fractions of the square input -> (n, 2) x, y as fractions of the frame."""
        w, h = self.frame_wh
        x = yx_input[:, 1] * INPUT_PX / self.scale / w
        y = yx_input[:, 0] * INPUT_PX / self.scale / h
        return np.stack([x, y], axis=1)


def unturn(xy: np.ndarray, turn: str) -> np.ndarray:
    """Points (x, y fractions) in a frame turned `turn` ("cw" or "ccw") -> the upright frame's."""
    x, y = xy[:, 0], xy[:, 1]
    if turn == "cw":  # upright (x, y) went to (1 - y, x)
        return np.stack([y, 1.0 - x], axis=1)
    if turn == "ccw":  # upright (x, y) went to (y, 1 - x)
        return np.stack([1.0 - y, x], axis=1)
    raise ValueError(f"unknown turn {turn!r}")


def visibility_of(scores: np.ndarray) -> np.ndarray:
    """MoveNet keypoint scores -> BlazePose-like visibilities (see KEYPOINT_SEEN_SCORE)."""
    s = np.clip(scores, 0.0, 1.0)
    seen, v = KEYPOINT_SEEN_SCORE, BLAZEPOSE_SEEN_VISIBILITY
    return np.where(s < seen, s / seen * v, v + (s - seen) / (1.0 - seen) * (1.0 - v))


def to_pose(xy: np.ndarray, scores: np.ndarray) -> Pose:
    """A Pose in the 33-landmark layout from 17 COCO keypoints (x, y fractions; scores 0..1).

    The score is the mean visibility of shoulders and hips, as the mediapipe backend's, so the
    tracker's "half a torso seen" line (analytics.thresholds.TRACK_NEW_MIN_SCORE) means the same.
    """
    landmarks = np.zeros((N_LANDMARKS, 4), dtype=np.float32)
    source = list(_SOURCE_KEYPOINT)
    landmarks[:, 0:2] = xy[source]
    landmarks[:, 3] = np.where(_SEEN, visibility_of(scores[source]), 0.0)
    score = float(np.clip(landmarks[list(_TORSO), 3].mean(), 0.0, 1.0))
    return Pose(landmarks_xyzv=landmarks, world_xyz_m=None, score=score)


class MoveNetEstimator:
    """MoveNet MultiPose Lightning: every person in a frame from one inference (~8-10 ms on one core)."""

    name = "movenet"
    instances_created: ClassVar[int] = 0

    def __init__(self, min_person_score: float = MIN_PERSON_SCORE, *, retry_turned: bool = True) -> None:
        if not 0.0 < min_person_score < 1.0:
            raise ValueError(f"min_person_score must be in (0, 1), got {min_person_score}")
        path = model_files.installed_path(model_files.MOVENET_MULTIPOSE)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=INTERPRETER_THREADS)
        # The file's input is dynamic ([1, 1, 1, 3]): fixed here to the size the model was trained at.
        (inp,) = self._interpreter.get_input_details()
        self._interpreter.resize_tensor_input(inp["index"], [1, INPUT_PX, INPUT_PX, 3], strict=False)
        self._interpreter.allocate_tensors()
        (inp,) = self._interpreter.get_input_details()
        (out,) = self._interpreter.get_output_details()
        if tuple(inp["shape"]) != (1, INPUT_PX, INPUT_PX, 3) or inp["dtype"] != np.uint8:
            raise model_files.ModelMissingError(f"{path}: input {inp['shape']} {inp['dtype']}, not MoveNet's")
        if tuple(out["shape"]) != (1, MAX_PEOPLE, VALUES_PER_PERSON):
            raise model_files.ModelMissingError(f"{path}: output {out['shape']}, not MoveNet MultiPose's")
        self._input_index = int(inp["index"])
        self._output_index = int(out["index"])
        self.min_person_score = min_person_score
        self.retry_turned = retry_turned
        MoveNetEstimator.instances_created += 1

    def reset(self) -> None:
        """Nothing to forget: every frame is posed on its own."""

    def forget_ahead(self, shape: tuple[int, ...]) -> None:
        """Nothing to do ahead: `reset()` costs nothing."""

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        poses = self.people_in(frame.rgb, None)
        if poses or not self.retry_turned:
            return poses
        # Both turns, the better kept: trying one first would make a mirrored clip take the
        # other, and its poses differ from the mirror of the original's.
        tries = [self.people_in(cv2.rotate(frame.rgb, code), turn) for code, turn in _TURNS]
        return max(tries, key=lambda people: max((p.score for p in people), default=0.0))

    def people_in(self, rgb: np.ndarray, turn: str | None = None) -> tuple[Pose, ...]:
        """The people MoveNet finds in `rgb`, mapped back through `turn` (how `rgb` was turned
        from the upright frame) into the upright frame, most confident first."""
        box = Letterbox.of((rgb.shape[1], rgb.shape[0]))
        self._interpreter.set_tensor(self._input_index, box.tensor(rgb))
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output_index)[0].astype(np.float64)
        people: list[Pose] = []
        for row in out[np.argsort(-out[:, SCORE_INDEX], kind="stable")]:
            if row[SCORE_INDEX] < self.min_person_score:
                break
            keypoints = row[:BOX_START].reshape(N_KEYPOINTS, 3)
            xy = box.to_frame(keypoints[:, 0:2])
            if turn is not None:
                xy = unturn(xy, turn)
            people.append(to_pose(xy, keypoints[:, 2]))
        return tuple(people)

    def close(self) -> None:
        self._interpreter = None

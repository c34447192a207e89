"""Joint angles: definitions on hand-made poses, visibility gating, image/world combination, real clips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from analytics import geometry as g
from analytics.angles import ANGLE_COLUMNS, JointAngles
from analytics.track import Tracker
from tests.analytics.conftest import PosedClips

RES = (1000, 1000)  # square: fractions of the width and of the height are the same unit


def standing_pose() -> np.ndarray:
    """(33, 4) landmarks of a person seen from the side, upright, arms hanging, all visible."""
    lm = np.zeros((33, 4))
    lm[:, 3] = 1.0
    points = {
        g.NOSE: (0.52, 0.10), g.L_SHOULDER: (0.50, 0.20), g.R_SHOULDER: (0.50, 0.20),
        g.L_ELBOW: (0.50, 0.35), g.R_ELBOW: (0.50, 0.35), g.L_WRIST: (0.50, 0.50), g.R_WRIST: (0.50, 0.50),
        g.L_HIP: (0.50, 0.50), g.R_HIP: (0.50, 0.50), g.L_KNEE: (0.50, 0.70), g.R_KNEE: (0.50, 0.70),
        g.L_ANKLE: (0.50, 0.90), g.R_ANKLE: (0.50, 0.90),
    }  # fmt: skip
    for i, (x, y) in points.items():
        lm[i, :2] = (x, y)
    return lm


def test_columns_are_stable_and_match_the_row() -> None:
    assert ANGLE_COLUMNS == (
        "left_elbow_deg", "right_elbow_deg", "left_shoulder_deg", "right_shoulder_deg", "left_hip_deg",
        "right_hip_deg", "left_knee_deg", "right_knee_deg", "trunk_inclination_deg",
    )  # fmt: skip
    row = JointAngles.from_pose(standing_pose(), RES).as_row()
    assert len(row) == len(ANGLE_COLUMNS)


def test_standing_straight_reads_straight_joints_and_upright_trunk() -> None:
    a = JointAngles.from_pose(standing_pose(), RES)
    for name in ("left_elbow_deg", "right_elbow_deg", "left_hip_deg", "left_knee_deg", "right_knee_deg"):
        assert getattr(a, name) == pytest.approx(180.0, abs=1e-6), name
    # Arms hang along the trunk: no angle between upper arm and trunk side.
    assert a.left_shoulder_deg == pytest.approx(0.0, abs=1e-6)
    assert a.trunk_inclination_deg == pytest.approx(0.0, abs=1e-6)


def test_right_angles_at_elbow_and_knee() -> None:
    lm = standing_pose()
    lm[g.L_WRIST, :2] = (0.65, 0.35)  # forearm forward, horizontal
    lm[g.R_KNEE, :2] = (0.50, 0.70)
    lm[g.R_HIP, :2] = (0.30, 0.70)  # thigh horizontal, shin vertical
    a = JointAngles.from_pose(lm, RES)
    assert a.left_elbow_deg == pytest.approx(90.0, abs=1e-6)
    assert a.right_knee_deg == pytest.approx(90.0, abs=1e-6)


def test_aspect_ratio_is_taken_into_account() -> None:
    # In a 2:1 frame a forearm going 0.075 of the width sideways is as long as 0.15 of the height.
    lm = standing_pose()
    lm[g.L_WRIST, :2] = (0.50 + 0.075, 0.50)
    square = JointAngles.from_pose(lm, (1000, 1000)).left_elbow_deg
    wide = JointAngles.from_pose(lm, (2000, 1000)).left_elbow_deg
    assert wide == pytest.approx(135.0, abs=1e-6)
    assert square != pytest.approx(wide, abs=1.0)


def test_hidden_landmark_makes_its_joints_nan_only() -> None:
    lm = standing_pose()
    lm[g.L_WRIST, 3] = 0.1
    a = JointAngles.from_pose(lm, RES)
    assert math.isnan(a.left_elbow_deg)
    assert not math.isnan(a.right_elbow_deg)
    assert not math.isnan(a.left_shoulder_deg)  # the shoulder angle does not use the wrist
    lm[g.L_HIP, 3] = lm[g.R_HIP, 3] = 0.1
    a = JointAngles.from_pose(lm, RES)
    assert math.isnan(a.trunk_inclination_deg)
    assert math.isnan(a.left_knee_deg) and math.isnan(a.left_hip_deg)


def test_min_visibility_is_a_parameter() -> None:
    lm = standing_pose()
    lm[g.L_WRIST, 3] = 0.35
    assert math.isnan(JointAngles.from_pose(lm, RES).left_elbow_deg)
    assert not math.isnan(JointAngles.from_pose(lm, RES, min_visibility=0.3).left_elbow_deg)


def test_lying_trunk_is_ninety_degrees() -> None:
    lm = standing_pose()
    lm[[g.L_SHOULDER, g.R_SHOULDER], :2] = (0.2, 0.8)
    lm[[g.L_HIP, g.R_HIP], :2] = (0.5, 0.8)
    assert JointAngles.from_pose(lm, RES).trunk_inclination_deg == pytest.approx(90.0, abs=1e-6)


def _world_from_image(lm: np.ndarray) -> np.ndarray:
    world = np.zeros((33, 3))
    world[:, :2] = lm[:, :2] - (lm[g.L_HIP, :2] + lm[g.R_HIP, :2]) / 2
    return world


def test_world_decides_when_the_joint_plane_is_edge_on() -> None:
    # Seen from the front a bent knee looks straight in the image (the shin points back, away
    # from the camera); the world landmarks show the right angle, and the image cannot.
    lm = standing_pose()
    world = _world_from_image(lm)
    world[g.L_ANKLE] = world[g.L_KNEE] + (0.0, 0.0, 0.2)  # shin straight back from the knee
    a = JointAngles.from_pose(lm, RES, world)
    assert a.left_knee_deg == pytest.approx(90.0, abs=1e-6)
    assert a.right_knee_deg == pytest.approx(180.0, abs=1e-6)


def test_image_decides_when_the_joint_plane_faces_the_camera() -> None:
    # World landmarks pull a bend toward a middle pose; in a side view the image is exact.
    lm = standing_pose()
    lm[g.L_WRIST, :2] = (0.65, 0.35)  # image: 90 deg in the image plane
    world = _world_from_image(lm)
    world[g.L_WRIST] = world[g.L_ELBOW] + (0.15, 0.10, 0.0)  # world: same plane, more open
    a = JointAngles.from_pose(lm, RES, world)
    assert a.left_elbow_deg == pytest.approx(90.0, abs=1e-6)


def test_world_trunk_sees_a_lean_toward_the_camera() -> None:
    lm = standing_pose()
    world = _world_from_image(lm)
    shoulders = (world[g.L_SHOULDER] + world[g.R_SHOULDER]) / 2
    height = float(-shoulders[1])
    world[[g.L_SHOULDER, g.R_SHOULDER]] = (0.0, -height / math.sqrt(2), -height / math.sqrt(2))
    assert JointAngles.from_pose(lm, RES).trunk_inclination_deg == pytest.approx(0.0, abs=1e-6)
    assert JointAngles.from_pose(lm, RES, world).trunk_inclination_deg == pytest.approx(45.0, abs=1e-6)


# --- real clips: the angles follow what a person sees (times from ground_truth.json)


SQUAT = "exercise/ex_squat_side_woman.mp4"
PUSHUP = "exercise/ex_pushup_side_full_then_knee.mp4"


def _truth(media_dir: Path, rel: str) -> dict:
    return json.loads((media_dir / "ground_truth.json").read_text())[rel]


def _nearest(frames: list, t_s: float):
    return min(frames, key=lambda f: abs(f.pts_s - t_s))


def _min_knee(a: JointAngles) -> float:
    return float(np.nanmin([a.left_knee_deg, a.right_knee_deg]))


def test_squat_clip_knees_bend_at_the_labelled_bottoms(posed_clips: PosedClips, media_dir: Path) -> None:
    frames = posed_clips(SQUAT)
    for t in _truth(media_dir, SQUAT)["rep_bottom_times_s"]:
        f = _nearest(frames, t)
        pose = f.poses[0]
        a = JointAngles.from_pose(pose.landmarks_xyzv, f.resolution_wh, pose.world_xyz_m)
        assert _min_knee(a) < 70.0, (t, a)
        assert 20.0 < a.trunk_inclination_deg < 60.0, (t, a)  # squats lean forward
    # Standing between reps 1 and 2 (upright from ~3.3 s, next descent from ~4.4 s).
    f = _nearest(frames, 3.8)
    a = JointAngles.from_pose(f.poses[0].landmarks_xyzv, f.resolution_wh, f.poses[0].world_xyz_m)
    assert _min_knee(a) > 150.0 and a.trunk_inclination_deg < 15.0, a


def test_pushup_clip_elbow_follows_bottoms_and_tops(posed_clips: PosedClips, media_dir: Path) -> None:
    """From smoothed tracked poses, as the detectors see them."""
    tracker = Tracker()
    smoothed = {}
    for f in posed_clips(PUSHUP):
        for tracked in tracker.update(f).tracked:
            smoothed[round(tracked.t_s, 1)] = JointAngles.from_tracked(tracked)
    truth = _truth(media_dir, PUSHUP)

    def elbow(t: float) -> float:
        a = smoothed[min(smoothed, key=lambda k: abs(k - t))]
        return float(np.nanmin([a.left_elbow_deg, a.right_elbow_deg]))

    for bottom in truth["rep_bottom_times_s"]:
        assert elbow(bottom) < 95.0, bottom
    # Tops: halfway between a completion and the next bottom the arms are straight.
    for done, nxt in zip(truth["rep_complete_times_s"][:-1], truth["rep_bottom_times_s"][1:], strict=True):
        assert elbow((done + nxt) / 2 - 0.2) > 140.0, done

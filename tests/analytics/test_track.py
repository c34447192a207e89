"""Person tracks: per-frame tables on synthetic bodies, and the tracker on real clips.

The stick bodies built here are also used by the fall tests: side views on a square
1000x1000 frame (landmark fractions are image heights on both axes), with world landmarks
that are the same points in metres (torso 0.5 m), as MediaPipe reports a body seen side-on.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence

import numpy as np
import pytest

from analytics import geometry as g
from analytics.track import Tracker, TrackUpdate, torso_length_ih
from pose.types import FramePoses, Pose
from tests.analytics.conftest import PosedClips

RESOLUTION_WH = (1000, 1000)
TORSO = 0.1  # image heights
WORLD_TORSO_M = 0.5
DT = 0.1  # the pipeline's 10 fps


def _unit(angle_deg: float) -> np.ndarray:
    """Direction `angle_deg` from straight up, leaning toward +x (image y points down)."""
    a = math.radians(angle_deg)
    return np.array([math.sin(a), -math.cos(a)])


def stick_xy(
    ankle_xy: tuple[float, float] = (0.5, 0.9),
    shin_deg: float = 0.0,
    thigh_deg: float = 0.0,
    trunk_deg: float = 0.0,
    torso: float = TORSO,
) -> np.ndarray:
    """(33, 2) image positions of a body built up from the ankles; arms hang along the trunk."""
    ankle = np.asarray(ankle_xy, dtype=np.float64)
    knee = ankle + 0.9 * torso * _unit(shin_deg)
    hip = knee + 0.9 * torso * _unit(thigh_deg)
    shoulder = hip + torso * _unit(trunk_deg)
    head = shoulder + 0.35 * torso * _unit(trunk_deg)
    elbow = shoulder - 0.6 * torso * _unit(trunk_deg)
    wrist = elbow - 0.55 * torso * _unit(trunk_deg)
    xy = np.tile(head, (33, 1))
    for left, right, point in (
        (g.L_SHOULDER, g.R_SHOULDER, shoulder), (g.L_ELBOW, g.R_ELBOW, elbow),
        (g.L_WRIST, g.R_WRIST, wrist), (g.L_HIP, g.R_HIP, hip), (g.L_KNEE, g.R_KNEE, knee),
        (g.L_ANKLE, g.R_ANKLE, ankle), (g.L_HEEL, g.R_HEEL, ankle), (g.L_FOOT, g.R_FOOT, ankle),
    ):  # fmt: skip
        xy[left] = point
        xy[right] = point
    return xy


def toppled(angle_deg: float, x: float = 0.5, ground: float = 0.9, torso: float = TORSO) -> np.ndarray:
    """A stiff body pivoting forward about its ankles: 0 standing, 90 flat on the floor."""
    return stick_xy((x, ground), angle_deg, angle_deg, angle_deg, torso)


def seated(x: float = 0.5, ground: float = 0.9, trunk_deg: float = 0.0) -> np.ndarray:
    """On a chair: shins vertical, thighs horizontal (hips at knee height), trunk up."""
    return stick_xy((x, ground), 0.0, -90.0, trunk_deg)


def make_pose(xy: np.ndarray, depth_m: np.ndarray | None = None) -> Pose:
    """A Pose with world landmarks consistent with `xy` (plus per-landmark depth, metres)."""
    world = np.zeros((33, 3))
    hip = (xy[g.L_HIP] + xy[g.R_HIP]) / 2
    world[:, :2] = (xy - hip) * WORLD_TORSO_M / TORSO
    if depth_m is not None:
        world[:, 2] = depth_m
    return Pose(landmarks_xyzv=np.column_stack([xy, np.zeros(33), np.ones(33)]), world_xyz_m=world, score=1.0)


def make_frame(seq: int, *bodies: np.ndarray) -> FramePoses:
    return FramePoses.of(seq, round(seq * DT, 6), RESOLUTION_WH, [make_pose(xy) for xy in bodies])


def run(tracker: Tracker, frames: Sequence[FramePoses]) -> list[TrackUpdate]:
    return [tracker.update(f) for f in frames]


# --- body size


def test_torso_length_ignores_foreshortening() -> None:
    """A torso pointing at the camera looks short in the image; its size stays the same."""
    upright = stick_xy()
    assert torso_length_ih(upright, make_pose(upright).world_xyz_m, np.ones(33)) == pytest.approx(TORSO)
    # Bent forward 80 deg toward the camera: the image shows the torso at cos(80) = 17 %.
    toward = upright.copy()
    lean = math.radians(80.0)
    hip = upright[g.L_HIP]
    depth = np.zeros(33)
    for i in (
        g.NOSE,
        g.L_EAR,
        g.R_EAR,
        g.L_SHOULDER,
        g.R_SHOULDER,
        g.L_ELBOW,
        g.R_ELBOW,
        g.L_WRIST,
        g.R_WRIST,
    ):
        up = hip[1] - upright[i, 1]
        toward[i, 1] = hip[1] - up * math.cos(lean)
        depth[i] = -up * math.sin(lean) * WORLD_TORSO_M / TORSO
    assert g.torso_length(toward) == pytest.approx(TORSO * math.cos(lean))
    pose = make_pose(toward, depth)
    assert torso_length_ih(toward, pose.world_xyz_m, np.ones(33)) == pytest.approx(TORSO, rel=0.02)


# --- per-frame tables: (frame, expected track ids of its poses, tracks ended before it)


def check_table(
    tracker: Tracker, table: Sequence[tuple[FramePoses, tuple[int | None, ...], tuple[int, ...]]]
) -> None:
    for frame, ids, ended in table:
        update = tracker.update(frame)
        assert (update.track_ids, update.ended) == (ids, ended), f"at t={frame.pts_s}"


def test_walking_person_keeps_one_track() -> None:
    # 1.2 m/s = 2.4 torso lengths per second, 0.024 image heights per frame.
    table = [(make_frame(i, stick_xy((0.2 + 0.024 * i, 0.9))), (1,), ()) for i in range(20)]
    check_table(Tracker(), table)


def test_track_survives_a_short_loss_and_ends_after_a_long_one() -> None:
    body = stick_xy()

    def empty(seq: int) -> FramePoses:
        return FramePoses.of(seq, round(seq * DT, 6), RESOLUTION_WH, [])

    table = [
        (make_frame(0, body), (1,), ()),
        (make_frame(1, body), (1,), ()),
        (empty(2), (), ()),
        (make_frame(15, body), (1,), ()),  # unseen for 1.4 s (< 1.5 s): same track
        (empty(16), (), ()),
        (empty(30), (), ()),  # unseen for 1.5 s: not yet longer than allowed
        (empty(31), (), (1,)),  # 1.6 s: the track has ended
        (make_frame(32, body), (2,), ()),
    ]
    check_table(Tracker(lost_after_s=1.5), table)


def test_lost_after_is_configurable() -> None:
    body = stick_xy()
    tracker = Tracker(lost_after_s=0.5)
    assert tracker.update(make_frame(0, body)).track_ids == (1,)
    update = tracker.update(make_frame(6, body))  # 0.6 s later
    assert update.ended == (1,) and update.track_ids == (2,)
    with pytest.raises(ValueError):
        Tracker(lost_after_s=0.0)


def test_jump_to_a_bystander_starts_a_new_track() -> None:
    """MediaPipe switching to someone 3 torso lengths away in one frame is not one body moving."""
    subject, bystander = stick_xy((0.5, 0.9)), seated(0.8)
    table = [
        (make_frame(0, subject), (1,), ()),
        (make_frame(1, subject), (1,), ()),
        (make_frame(2, bystander), (2,), ()),
        (make_frame(3, bystander), (2,), ()),
        (make_frame(4, subject), (1,), ()),  # back to the subject, whose track is still alive
    ]
    check_table(Tracker(), table)


def test_neighbour_a_torso_and_a_half_away_is_another_person() -> None:
    """Side by side (dancers): every landmark jumps 1.8 torso lengths in 0.1 s."""
    table = [
        (make_frame(0, stick_xy((0.50, 0.9))), (1,), ()),
        (make_frame(1, stick_xy((0.68, 0.9))), (2,), ()),
    ]
    check_table(Tracker(), table)


def test_sudden_change_of_size_is_another_person() -> None:
    """Same place, body twice the size in 0.1 s: someone nearer the camera, not a movement."""
    near = stick_xy((0.5, 0.95), torso=2.8 * TORSO)
    near -= (near[g.L_HIP] - stick_xy()[g.L_HIP]) * np.array([1.0, 1.0])  # centred on the same hips
    table = [(make_frame(0, stick_xy()), (1,), ()), (make_frame(1, near), (2,), ())]
    check_table(Tracker(), table)


def test_fall_keeps_its_track() -> None:
    """A stiff body toppling to the floor in 0.5 s: head fast, feet still, one body."""
    angles = [0, 0, 0, 8, 25, 48, 75, 90, 90, 90]
    table = [(make_frame(i, toppled(a)), (1,), ()) for i, a in enumerate(angles)]
    check_table(Tracker(), table)


def test_two_people_in_one_frame_keep_their_ids() -> None:
    left, right = [stick_xy((0.3 + 0.01 * i, 0.9)) for i in range(5)], [seated(0.8) for _ in range(5)]
    table = [(make_frame(i, left[i], right[i]), (1, 2), ()) for i in range(5)]
    # Order of poses in a frame does not matter.
    table.append((make_frame(5, right[4], left[4]), (2, 1), ()))
    check_table(Tracker(), table)


def test_tracked_pose_carries_smoothed_landmarks_and_size() -> None:
    tracker = Tracker()
    (first,) = tracker.update(make_frame(0, stick_xy())).tracked
    assert first.new_track and first.track_id == 1
    assert first.torso_length_ih == pytest.approx(TORSO)
    assert first.image_xy.shape == (33, 2) and first.world_xyz_m is not None
    (second,) = tracker.update(make_frame(1, stick_xy((0.52, 0.9)))).tracked
    assert not second.new_track
    # Smoothed: part of the way to the new position, not all of it.
    assert 0.5 < second.image_xy[g.L_HIP, 0] < 0.52


def test_pickled_tracker_continues_the_same_tracks() -> None:
    frames = [make_frame(i, stick_xy((0.2 + 0.02 * i, 0.9))) for i in range(10)]
    whole = run(Tracker(), frames)
    tracker = Tracker()
    halves = run(tracker, frames[:5])
    halves += run(pickle.loads(pickle.dumps(tracker)), frames[5:])
    assert [u.track_ids for u in halves] == [u.track_ids for u in whole]
    assert np.allclose(halves[-1].tracked[0].image_xy, whole[-1].tracked[0].image_xy)


def test_finish_ends_every_live_track() -> None:
    tracker = Tracker()
    tracker.update(make_frame(0, stick_xy((0.2, 0.9)), stick_xy((0.8, 0.9))))
    assert set(tracker.finish()) == {1, 2}
    assert tracker.live_track_ids == ()


# --- real clips, posed as the pipeline poses them


def track_starts(frames: Sequence[FramePoses]) -> list[tuple[int, float]]:
    tracker = Tracker()
    starts = []
    for frame in frames:
        for tracked in tracker.update(frame).tracked:
            if tracked.new_track:
                starts.append((tracked.track_id, tracked.t_s))
    return starts


@pytest.mark.slow
@pytest.mark.parametrize(
    "rel",
    [
        # A walking subject passing close to the camera (partly out of frame) with a seated
        # bystander; subjects falling with a bystander in view; a fall toward the camera.
        "activity/act_upfall_s1_walking_cam2.mp4",
        "falls/fall_upfall_s1_forward_hands_cam2.mp4",
        "falls/urfall_ds13_fall_from_chair_2persons.mp4",
        "falls/urfall_ds22_fall_toward_camera.mp4",
        "exercise/ex_curl_dumbbell_alternating.mp4",
    ],
)
def test_one_person_in_view_is_one_track(posed_clips: PosedClips, rel: str) -> None:
    assert len(track_starts(posed_clips(rel))) == 1


@pytest.mark.slow
def test_switch_between_dancers_starts_a_new_track(posed_clips: PosedClips) -> None:
    """MediaPipe re-detects at a chunk boundary (3.2 s) and lands on the dancer at the far
    right for 0.5 s, then finds the first dancer again, whose track is still live; at 9.6 s
    it re-detects on the next dancer (all checked on the frames)."""
    frames = posed_clips("activity/act_dance_group_5_gumboot.mp4")
    starts = track_starts(frames)
    assert [tid for tid, _t in starts] == [1, 2, 3]
    assert starts[0][1] < 0.2 and 3.1 < starts[1][1] < 3.3 and 9.5 < starts[2][1] < 9.7
    tracker = Tracker()
    ids_at = {round(f.pts_s, 1): tracker.update(f).track_ids for f in frames}
    assert ids_at[3.8] == ids_at[3.9] == (1,)

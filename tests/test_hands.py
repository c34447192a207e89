"""Hands per person: the attachment rule on synthetic people, specs and selections, storage, drawing,
and on real footage that the hands found sit at their person's wrists; then the CLI and the API."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import inspect

from pipeline.frames import Frame
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose.estimator import PoseSpec, create_estimator, pose_spec
from pose.hand_landmarks import (
    ROI_SIDE_FOREARMS,
    HandFinder,
    HandRegion,
    forearm_px,
    region_around,
    region_at_wrist,
    wrist_crop,
)
from pose.hands import ATTACH_MAX_FOREARMS, attach_hands, wrist_gap_px
from pose.types import (
    HAND_LANDMARK_NAMES,
    LANDMARK_INDEX,
    LANDMARK_NAMES,
    FramePoses,
    Hand,
    HandSide,
    LandmarkSelection,
    Pose,
    parse_landmark_selection,
)
from posepipe.api.live import frame_poses
from posepipe.camera_supervisor import session_pose_spec
from posepipe.export import pose_csv_header
from posepipe.render import SkeletonStyle, draw_skeleton
from storage import poses, videos
from storage.cameras import CameraConfig
from storage.db import Database
from tests.test_api import api_server, token
from tests.test_cli import clean_env, posepipe

RESOLUTION_WH = (640, 480)
CURLS = "exercise/ex_curl_front_dumbbells_white_studio_man.mp4"  # front view, both hands in sight
CURLS_WH = (1088, 720)
STREET = "images/img_bus_street_people.jpg"  # several people, hands held in front of them
# Where a hand found must sit: its wrist within this many of the person's forearms of the pose's
# wrist (the pose's wrist is a few centimetres off at worst; the rule itself accepts up to one).
AT_WRIST_FOREARMS = 0.5


# --- synthetic people and hands ------------------------------------------------------------------


def person(cx: float, scale: float = 1.0, wrist_dx: float = 0.09) -> Pose:
    """A standing person centred at x = cx (fractions of a 640x480 frame), arms down and out.
    Shoulders to hips is 0.2 * scale of the height: a forearm of 48 px at scale 1."""
    lm = np.zeros((33, 4), dtype=np.float32)  # landmarks not placed below are not seen
    top = 0.3

    def put(name: str, dx: float, y: float) -> None:
        lm[LANDMARK_INDEX[name]] = (cx + dx * scale, top + y * scale, 0.0, 0.9)

    for side, sign in (("left", 1), ("right", -1)):  # facing the camera: the left side is image-right
        put(f"{side}_shoulder", 0.05 * sign, 0.0)
        put(f"{side}_hip", 0.035 * sign, 0.2)
        put(f"{side}_elbow", 0.07 * sign, 0.1)
        put(f"{side}_wrist", wrist_dx * sign, 0.18)
        for knuckle in ("pinky", "index", "thumb"):  # the pose model did not see the knuckles
            lm[LANDMARK_INDEX[f"{side}_{knuckle}"]] = (*lm[LANDMARK_INDEX[f"{side}_wrist"], :2], 0, 0.1)
    put("nose", 0.0, -0.08)
    return Pose(landmarks_xyzv=lm, world_xyz_m=None, score=0.9)


def hand_at(wrist_xy: tuple[float, float], score: float = 0.9, size: float = 0.04) -> Hand:
    """A hand pointing down from `wrist_xy`, `size` from the wrist to the middle knuckle."""
    points = np.zeros((21, 3), dtype=np.float32)
    fan = np.linspace(-0.6, 0.6, 5)
    for finger in range(5):
        for joint in range(4):
            reach = size * (1.0 + 0.3 * joint) if finger else size * (0.3 + 0.25 * joint)
            angle = fan[finger]
            points[1 + finger * 4 + joint, :2] = (
                wrist_xy[0] + reach * np.sin(angle),
                wrist_xy[1] + reach * np.cos(angle),
            )
    points[0, :2] = wrist_xy  # the middle finger (9-12) points straight down, its knuckle `size` below
    return Hand(points, score)


def wrist_xy(pose: Pose, side: HandSide) -> tuple[float, float]:
    x, y = pose.landmarks_xyzv[side.wrist, :2]
    return float(x), float(y)


def offset(xy: tuple[float, float], pose: Pose, forearms: float) -> tuple[float, float]:
    """`xy` moved right by `forearms` of `pose`'s forearm."""
    return xy[0] + forearms * forearm_px(pose, RESOLUTION_WH) / RESOLUTION_WH[0], xy[1]


def test_each_hand_goes_to_the_wrist_it_meets_whatever_order_they_come_in() -> None:
    a, b = person(0.3), person(0.7)
    hands = {
        (p, side): hand_at(offset(wrist_xy(pose, side), pose, 0.15))
        for p, pose in enumerate((a, b))
        for side in HandSide
    }
    shuffled = [
        hands[k] for k in ((1, HandSide.RIGHT), (0, HandSide.LEFT), (1, HandSide.LEFT), (0, HandSide.RIGHT))
    ]
    attached = attach_hands((a, b), shuffled, RESOLUTION_WH)
    for p, pose in enumerate(attached):
        for side in HandSide:
            assert pose.hand(side) is hands[(p, side)], (p, side)
    # The people themselves are unchanged.
    assert np.array_equal(attached[0].landmarks_xyzv, a.landmarks_xyzv)


def test_a_hand_farther_than_a_forearm_from_every_wrist_is_nobodys() -> None:
    someone = person(0.5)
    near = hand_at(offset(wrist_xy(someone, HandSide.LEFT), someone, 0.8))
    (with_near,) = attach_hands([someone], [near], RESOLUTION_WH)
    assert with_near.left_hand is near and with_near.right_hand is None
    far = hand_at(offset(wrist_xy(someone, HandSide.LEFT), someone, ATTACH_MAX_FOREARMS + 0.2))
    (with_far,) = attach_hands([someone], [far], RESOLUTION_WH)
    assert with_far.left_hand is None and with_far.right_hand is None
    assert attach_hands([], [near], RESOLUTION_WH) == ()


def test_one_hand_per_wrist_and_the_closer_hand_wins() -> None:
    someone = person(0.5, wrist_dx=0.3)  # arms spread: the wrists are far apart
    left = wrist_xy(someone, HandSide.LEFT)
    closer, farther = hand_at(offset(left, someone, 0.1)), hand_at(offset(left, someone, 0.5))
    (pose,) = attach_hands([someone], [farther, closer], RESOLUTION_WH)
    assert pose.left_hand is closer and pose.right_hand is None


def test_a_hand_found_from_both_wrists_crops_is_attached_once() -> None:
    someone = person(0.5, wrist_dx=0.01)  # hands together in front of the belly
    one_hand = hand_at(wrist_xy(someone, HandSide.LEFT), score=0.9)
    again = Hand(one_hand.landmarks_xyz + np.float32(0.002), score=0.8)
    (pose,) = attach_hands([someone], [again, one_hand], RESOLUTION_WH)
    assert [h for h in (pose.left_hand, pose.right_hand) if h is not None] == [one_hand]


def test_the_region_at_a_wrist_lies_past_it_in_the_hands_direction_and_the_crop_holds_the_wrist() -> None:
    someone = person(0.5)
    for side in HandSide:
        region = region_at_wrist(someone, side, RESOLUTION_WH)
        assert region is not None
        lm = someone.landmarks_xyzv[:, :2] * RESOLUTION_WH
        wrist, elbow = lm[side.wrist], lm[13 if side is HandSide.LEFT else 14]
        along = (np.array(region.centre_xy_px) - wrist) @ (wrist - elbow)
        assert along > 0  # past the wrist, away from the elbow
        assert region.side_px == pytest.approx(ROI_SIDE_FOREARMS * forearm_px(someone, RESOLUTION_WH))
        # The region's up is the forearm's direction: its top edge's middle is farther along.
        top_middle = region.input_to_image(224) @ np.array([112.0, 0.0, 1.0])
        assert (top_middle - wrist) @ (wrist - elbow) > along
        crop = wrist_crop(someone, side, RESOLUTION_WH)
        assert crop is not None and crop.x0 <= wrist[0] < crop.x1 and crop.y0 <= wrist[1] < crop.y1
    # Where the pose model saw the hand's pinky and index points, the region points at them
    # (a palm flat on the floor: the hand at a right angle to the forearm).
    flat = person(0.5)
    wrist = flat.landmarks_xyzv[HandSide.LEFT.wrist, :2].copy()
    for knuckle in (17, 19):
        flat.landmarks_xyzv[knuckle] = (wrist[0] + 0.03, wrist[1], 0.0, 0.9)
    region = region_at_wrist(flat, HandSide.LEFT, RESOLUTION_WH)
    assert region is not None and region.rotation_rad == pytest.approx(np.pi / 2)
    assert region.centre_xy_px[0] > wrist[0] * RESOLUTION_WH[0]
    assert region.centre_xy_px[1] == pytest.approx(wrist[1] * RESOLUTION_WH[1])
    off_frame = person(0.5)
    off_frame.landmarks_xyzv[HandSide.RIGHT.wrist, 0] = -0.2
    assert region_at_wrist(off_frame, HandSide.RIGHT, RESOLUTION_WH) is None
    assert wrist_crop(off_frame, HandSide.RIGHT, RESOLUTION_WH) is None
    unseen = person(0.5)
    unseen.landmarks_xyzv[HandSide.LEFT.wrist, 3] = 0.2
    assert region_at_wrist(unseen, HandSide.LEFT, RESOLUTION_WH) is None
    assert region_at_wrist(person(0.5, scale=0.1), HandSide.LEFT, RESOLUTION_WH) is None


def test_a_known_hand_gets_an_upright_region_around_its_palm() -> None:
    hand = hand_at((0.5, 0.5), size=0.1)
    pts = hand.landmarks_xyz[:, :2] * RESOLUTION_WH
    up = pts.copy()
    up[:, 1] = 2 * pts[0, 1] - pts[:, 1]  # the same hand pointing up
    region = region_around(up)
    assert region.rotation_rad == pytest.approx(0.0, abs=0.05)
    assert pts[0, 1] - region.side_px / 2 < region.centre_xy_px[1] < pts[0, 1]  # above the wrist
    # Turned to point right, the region turns with it.
    right = np.stack([pts[0, 0] + (pts[:, 1] - pts[0, 1]), pts[0, 1] + (pts[:, 0] - pts[0, 0])], axis=1)
    assert region_around(right).rotation_rad == pytest.approx(np.pi / 2, abs=0.05)
    assert abs(HandRegion.rotation_of(np.array([0.0, 1.0]))) == pytest.approx(np.pi)  # pointing down


# --- specs, selections, storage, drawing ----------------------------------------------------------


def test_hands_are_part_of_the_pose_spec_and_so_of_the_cache_key() -> None:
    for spec in ("mediapipe+hands", "multi:heavy+hands", "movenet+hands", "mediapipe"):
        assert str(PoseSpec.parse(spec)) == spec
    assert PoseSpec.parse("multi:heavy+hands") == PoseSpec("multi", "heavy", hands=True)
    assert pose_spec("movenet", "heavy", hands=True) == "movenet+hands"
    assert pose_spec("mediapipe") == "mediapipe"  # analyses from before hands keep their key
    with_hands = videos.AnalysisParams(10.0, pose_spec("mediapipe", hands=True), 1280, 0.3)
    without = videos.AnalysisParams(10.0, pose_spec("mediapipe"), 1280, 0.3)
    assert with_hands.key != without.key and len(with_hands.key) <= 64
    with pytest.raises(ValueError, match="unknown pose backend"):
        PoseSpec.parse("hands+hands")


def test_landmark_selection_names_hands() -> None:
    assert parse_landmark_selection("left_hand") == LandmarkSelection((), (HandSide.LEFT,))
    assert parse_landmark_selection("nose, right_hand,left_hand") == LandmarkSelection(
        (0,), (HandSide.RIGHT, HandSide.LEFT)
    )
    assert parse_landmark_selection("hands").hands == (HandSide.LEFT, HandSide.RIGHT)
    assert parse_landmark_selection("all").hands == ()
    assert parse_landmark_selection("all", with_hands=True).hands == (HandSide.LEFT, HandSide.RIGHT)
    assert parse_landmark_selection("upper_body", with_hands=True).hands == ()
    with pytest.raises(ValueError, match="left_hand"):
        parse_landmark_selection("left_paw")
    header = pose_csv_header(parse_landmark_selection("left_hand"))
    assert "left_hand_score" in header and "left_hand_index_finger_tip_x" in header
    assert not any(h.startswith(LANDMARK_NAMES) for h in header if h.endswith("_visibility"))


def test_a_cameras_sessions_have_hands_when_it_or_the_deployment_asks(make_settings) -> None:
    def camera(backend: str, hands: bool) -> CameraConfig:
        now = datetime.now(timezone.utc)
        return CameraConfig(1, "gym", 1, "rtsp://h/s", "rtsp://h/s", 10.0, None, now, backend, hands)

    plain, everywhere = make_settings(), make_settings(hands=True, pose_model="heavy")
    assert session_pose_spec(camera("mediapipe", False), plain) == "mediapipe"
    assert session_pose_spec(camera("mediapipe", True), plain) == "mediapipe+hands"
    assert session_pose_spec(camera("multi", False), everywhere) == "multi:heavy+hands"
    assert session_pose_spec(camera("movenet", False), everywhere) == "movenet+hands"


def test_hands_are_stored_and_read_back_with_their_person(db: Database) -> None:
    # The hands migration (0004_hands) is applied by every later head: its columns are there.
    pose_columns = {c["name"] for c in inspect(db.engine).get_columns("poses")}
    assert {"left_hand", "left_hand_score", "right_hand", "right_hand_score"} <= pose_columns
    a, b = person(0.3), person(0.7)
    left = hand_at(wrist_xy(a, HandSide.LEFT), score=0.75)
    right = hand_at(wrist_xy(b, HandSide.RIGHT), score=0.5)
    frame = FramePoses.of(0, 0.0, RESOLUTION_WH, [a.with_hands(left, None), b.with_hands(None, right)])
    with db.session() as s:
        source = videos.file_source(s, "/tmp/hands.mp4")
        params = videos.AnalysisParams(10.0, "mediapipe+hands", 1280, 0.3)
        video = videos.create_video(s, source, "/tmp/hands.mp4", "cd" * 32, 1, params, None)
        video_id = video.id
    with db.session() as s:
        poses.write_chunk(s, poses.ChunkWrite(video_id, 0, 0, 1, [frame], pose_s=0.1, worker="test"))
    with db.session() as s:
        (read,) = poses.read_frames(s, video_id, 0, 1, RESOLUTION_WH)
        streamed = [row.pose for row in poses.iter_poses(s, video_id)]
    live = [pose for _track, pose in frame_poses(db, video_id, 0)]  # what the live view draws
    for got in (read.poses, streamed, live):
        assert got[0].right_hand is None and got[1].left_hand is None
        assert np.array_equal(got[0].left_hand.landmarks_xyz, left.landmarks_xyz)  # type: ignore[union-attr]
        assert got[0].left_hand.score == pytest.approx(0.75)  # type: ignore[union-attr]
        assert np.array_equal(got[1].right_hand.landmarks_xyz, right.landmarks_xyz)  # type: ignore[union-attr]
        assert np.array_equal(got[1].landmarks_xyzv, b.landmarks_xyzv)


def test_snapshots_draw_the_hand_bones() -> None:
    someone = person(0.5)
    hand = hand_at(wrist_xy(someone, HandSide.LEFT), size=0.08)
    black = np.zeros((RESOLUTION_WH[1], RESOLUTION_WH[0], 3), dtype=np.uint8)
    style = SkeletonStyle(joint_rgb=(255, 0, 0), bone_rgb=(0, 255, 0))
    without = draw_skeleton(black, [someone], style)
    drawn = draw_skeleton(black, [someone.with_hands(hand, None)], style)
    # The middle finger's bone halfway between its knuckles, in pixels.
    mid = (hand.landmarks_xyz[10, :2] + hand.landmarks_xyz[11, :2]) / 2 * RESOLUTION_WH
    x, y = int(round(mid[0])), int(round(mid[1]))
    assert (
        drawn[y - 1 : y + 2, x - 1 : x + 2, 1].max() > 100
        and without[y - 1 : y + 2, x - 1 : x + 2].max() == 0
    )


# --- real footage ---------------------------------------------------------------------------------


def sampled(path: Path, fps: float, seconds: float) -> list[Frame]:
    sampler = FrameSampler(fps)
    with VideoFile(path) as video:
        return [f for f in video.sampled_frames(sampler.take, max_side=1280) if f.pts_s < seconds]


def assert_hands_at_their_wrists(people: tuple[Pose, ...], resolution_wh: tuple[int, int]) -> int:
    """Every hand sits at its person's wrist on its side, nearer it than any other wrist in the
    frame; returns how many hands there were."""
    wrists = [(p, side) for p in range(len(people)) for side in HandSide]
    count = 0
    for p, pose in enumerate(people):
        reach = forearm_px(pose, resolution_wh)
        for side in HandSide:
            hand = pose.hand(side)
            if hand is None:
                continue
            count += 1
            gap = wrist_gap_px(hand, pose, side, resolution_wh)
            assert gap <= AT_WRIST_FOREARMS * reach, (p, side, gap, reach)
            nearest = min(wrists, key=lambda w: wrist_gap_px(hand, people[w[0]], w[1], resolution_wh))
            assert nearest == (p, side), (p, side, nearest)
    return count


@pytest.mark.parametrize("backend", ["mediapipe", "movenet"])
def test_hands_found_on_a_real_clip_sit_at_the_persons_wrists(media_dir: Path, backend: str) -> None:
    frames = sampled(media_dir / CURLS, fps=4, seconds=3)
    estimator = create_estimator(pose_spec(backend, hands=True), 0.3)
    try:
        people_frames = [estimator.estimate(frame) for frame in frames]
    finally:
        estimator.close()
    people = hands = 0
    for frame, found in zip(frames, people_frames, strict=True):
        people += len(found)
        hands += assert_hands_at_their_wrists(found, frame.resolution_wh)
    assert len(frames) == 12 and people >= len(frames)
    # Both of his hands are in sight all along (front view, white studio).
    assert hands >= 0.8 * 2 * people, (hands, people)


def test_palm_detection_finds_the_hands_the_forearm_region_misses(media_dir: Path) -> None:
    """With each elbow moved to the far side of its wrist and the pose's hand points hidden, the
    region points away from the hand (as for a bent wrist seen by a pose model without hand
    points) and holds no hand, and palm detection on the crop around the wrist finds it."""
    frames = sampled(media_dir / CURLS, fps=2, seconds=3)
    poses_only = create_estimator("mediapipe", 0.3)
    regions_only, with_fallback = HandFinder(0.3, fallback=False), HandFinder(0.3)
    found = {"straight": 0, "turned": 0, "turned_fallback": 0}
    try:
        for frame in frames:
            (pose,) = poses_only.estimate(frame)
            lm = pose.landmarks_xyzv.copy()
            for side, elbow in ((HandSide.LEFT, 13), (HandSide.RIGHT, 14)):
                lm[elbow, :2] = 2 * lm[side.wrist, :2] - lm[elbow, :2]
            lm[17:23, 3] = 0.0
            turned = Pose(landmarks_xyzv=lm, world_xyz_m=None, score=pose.score)
            found["straight"] += len(regions_only.find(frame.rgb, [pose]))
            found["turned"] += len(regions_only.find(frame.rgb, [turned]))
            hands = with_fallback.find(frame.rgb, [turned])
            found["turned_fallback"] += len(hands)
            assert_hands_at_their_wrists(
                attach_hands([turned], hands, frame.resolution_wh), frame.resolution_wh
            )
    finally:
        poses_only.close()
        regions_only.close()
        with_fallback.close()
    wrists = 2 * len(frames)
    assert found["straight"] >= 0.9 * wrists and found["turned"] <= 0.5 * wrists, found
    assert found["turned_fallback"] >= 0.9 * wrists, found


def test_hands_in_a_street_photo_go_to_the_people_they_belong_to(media_dir: Path) -> None:
    (frame,) = sampled(media_dir / STREET, fps=10, seconds=1)
    estimator = create_estimator("multi+hands", 0.3)
    try:
        people = estimator.estimate(frame)
    finally:
        estimator.close()
    assert len(people) >= 2
    assert assert_hands_at_their_wrists(people, frame.resolution_wh) >= 2


# --- the CLI and the API --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analysed_with_hands(
    tmp_path_factory: pytest.TempPathFactory, media_dir: Path
) -> tuple[dict[str, str], int]:
    env = clean_env(tmp_path_factory.mktemp("data"))
    env["POSEPIPE_SECRET_KEY"] = Fernet.generate_key().decode()
    doc = json.loads(
        posepipe(env, "analyze", "--json", "--hands", "--fps", "3", str(media_dir / CURLS)).stdout
    )
    (video,) = doc["videos"]
    assert video["status"] == "done"
    return env, video["video_id"]


def test_cli_exports_the_hands_and_hands_change_the_cache_key(analysed_with_hands, media_dir: Path) -> None:
    env, video_id = analysed_with_hands
    table = list(
        csv.reader(io.StringIO(posepipe(env, "poses", str(video_id), "--landmarks", "left_hand").stdout))
    )
    header, rows = table[0], table[1:]
    assert header[6] == "left_hand_score" and header[7:10] == [
        "left_hand_wrist_x",
        "left_hand_wrist_y",
        "left_hand_wrist_z",
    ]
    assert len([h for h in header if h.startswith("left_hand_")]) == 1 + 21 * 3
    assert not any(h.startswith(("right_hand", "nose")) for h in header)
    assert len(rows) >= 20 and sum(1 for r in rows if r[6]) >= 0.8 * len(rows)
    # `all` shows the body and both hands; each hand's wrist at that person's wrist.
    doc = json.loads(posepipe(env, "poses", str(video_id), "--format", "json").stdout)
    assert doc["hands"] == ["left_hand", "right_hand"] and doc["hand_landmarks"] == list(HAND_LANDMARK_NAMES)
    for item in doc["poses"]:
        lm = np.array(item["landmarks"])
        reach = forearm_px(Pose(landmarks_xyzv=lm, world_xyz_m=None, score=0.5), CURLS_WH)
        for side in HandSide:
            if item[side.value] is not None:
                assert len(item[side.value]["landmarks"]) == 21
                gap = (np.array(item[side.value]["landmarks"][0][:2]) - lm[side.wrist, :2]) * CURLS_WH
                assert np.linalg.norm(gap) <= AT_WRIST_FOREARMS * reach
    # The same clip without hands is another analysis, not the cached one, and stores none.
    plain = json.loads(posepipe(env, "analyze", "--json", "--fps", "3", str(media_dir / CURLS)).stdout)
    plain_id = plain["videos"][0]["video_id"]
    assert plain_id != video_id
    plain_doc = json.loads(posepipe(env, "poses", str(plain_id), "--format", "json").stdout)
    assert "hands" not in plain_doc and "left_hand" not in plain_doc["poses"][0]
    # Its snapshot is the plain one plus the hands: the same frame, the same body, bones where the
    # hands are and nowhere else.
    pictures = {}
    for vid in (video_id, plain_id):
        path = Path(env["POSEPIPE_DATA_DIR"]) / f"{vid}.png"
        posepipe(env, "snapshot", str(vid), "--t", "1.0", "-o", str(path), "--bone-color", "green")
        pictures[vid] = cv2.imread(str(path)).astype(np.int16)
    diff = np.abs(pictures[video_id] - pictures[plain_id]).max(axis=2)
    item = min(doc["poses"], key=lambda i: abs(i["t_s"] - 1.0))
    hands = [
        np.array(item[side.value]["landmarks"])[:, :2] * CURLS_WH for side in HandSide if item[side.value]
    ]
    assert hands, item
    near_hands = np.zeros(diff.shape, dtype=bool)
    for points in hands:
        (x0, y0), (x1, y1) = points.min(axis=0).astype(int) - 8, points.max(axis=0).astype(int) + 8
        near_hands[max(0, y0) : y1, max(0, x0) : x1] = True
    assert (diff[near_hands] > 60).sum() >= 50 and diff[~near_hands].max() == 0


def test_api_serves_the_hands_and_cameras_take_the_switch(analysed_with_hands, tmp_path: Path) -> None:
    env, video_id = analysed_with_hands
    posepipe(env, "camera", "add", "gym", "rtsp://10.0.0.9/gym", "--hands")
    admin = token(env, "ops", "admin")
    with api_server(env, tmp_path / "api.log") as server, server.client(admin) as api:
        response = api.get(
            f"/api/videos/{video_id}/poses", params={"format": "json", "landmarks": "right_hand"}
        )
        assert response.status_code == 200, response.text
        items = response.json()["poses"]
        assert items and all(item["landmarks"] == [] and "left_hand" not in item for item in items)
        found = [item["right_hand"] for item in items if item["right_hand"] is not None]
        assert len(found) >= 0.8 * len(items)
        assert all(len(h["landmarks"]) == 21 and 0 <= h["score"] <= 1 for h in found)
        table = api.get(f"/api/videos/{video_id}/poses", params={"landmarks": "nose,left_hand"}).text
        assert table.splitlines()[0].startswith("video_id,seq,t_s,person,track_id,score,nose_x,")
        assert "left_hand_pinky_tip_z" in table.splitlines()[0]
        assert api.get(f"/api/videos/{video_id}/poses", params={"landmarks": "left_paw"}).status_code == 422
        # Cameras: the CLI's --hands shows, and the API sets and changes it.
        assert api.get("/api/cameras/gym").json()["hands"] is True
        created = api.post(
            "/api/cameras", json={"name": "hall", "url": "rtsp://10.0.0.8/hall", "hands": True}
        )
        assert created.status_code == 201 and created.json()["hands"] is True
        changed = api.patch("/api/cameras/hall", json={"hands": False})
        assert changed.status_code == 200 and changed.json()["hands"] is False
    listed = json.loads(posepipe(env, "camera", "list", "--json").stdout)["cameras"]
    assert {c["name"]: c["hands"] for c in listed} == {"gym": True, "hall": False}

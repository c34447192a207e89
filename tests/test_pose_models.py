"""Pose model choice (BlazePose lite/full/heavy) and the MoveNet backend, on real clips and photos.

Bounds and why:
- lite and heavy are other networks than full: on a standing person (an exercise clip's first
  frames, the detector path) their body landmarks lie within 2 % of the image diagonal of
  full's (measured ~0.5-1 %), yet differ (a model that is not switched gives full's bytes).
- multi runs the same graph constants as mp.solutions.pose, so with heavy selected its first
  frame agrees with the mediapipe backend's heavy to 0.05 % of the diagonal (as with full,
  tests/test_multi_pose.py).
- MoveNet on the labelled businessman photo (17 COCO keypoints in pixels): mean error under
  2 % of the diagonal (measured 0.9 %; BlazePose full 1.3 %).
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from analytics.config import AnalyticsConfig
from analytics.engine import replay
from analytics.events import rep_counts
from analytics.track import Tracker
from bench.multi_pose import pose_frames, sampled_frames
from pipeline.frames import Frame
from pose import model_files
from pose.estimator import (
    MediaPipeEstimator,
    PoseSpec,
    create_estimator,
    pose_spec,
    require_landmark_model,
)
from pose.movenet import COCO_TO_BLAZEPOSE, MoveNetEstimator, unturn
from pose.multipose.estimator import MultiPoseEstimator
from pose.rescue import RescuedEstimator
from pose.types import N_LANDMARKS, Pose
from posepipe import analyze as analysis
from posepipe.camera_supervisor import CameraRunner
from posepipe.settings import load_settings
from storage.cameras import add_camera, enabled_configs
from storage.models import Video
from storage.poses import iter_poses
from storage.secret_box import SecretBox
from workers.context import WorkerContext
from workers.jobs import _forget_ahead

CONFIDENCE = 0.3
STANDING = "exercise/ex_squat_side_woman.mp4"
BUSINESSMAN = "images/img_businessman_fullbody.jpeg"
BODY = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def body_error_of_diagonal(a: Pose, b: Pose, wh: tuple[int, int]) -> float:
    diff = (a.landmarks_xyzv[list(BODY), :2] - b.landmarks_xyzv[list(BODY), :2]) * np.asarray(wh)
    return float(np.linalg.norm(diff, axis=1).mean() / np.hypot(*wh))


@pytest.fixture(scope="module")
def movenet() -> MoveNetEstimator:
    return MoveNetEstimator()


# --- the choice and its spec ---


def test_spec_names_backend_and_model_and_keeps_old_keys() -> None:
    assert pose_spec("mediapipe", "full") == "mediapipe"  # analyses made before the choice stay cached
    assert pose_spec("mediapipe", "heavy") == "mediapipe:heavy"
    assert pose_spec("multi", "lite") == "multi:lite"
    assert pose_spec("movenet", "heavy") == "movenet"  # no BlazePose model in it: same analysis
    assert PoseSpec.parse("multi:heavy") == PoseSpec("multi", "heavy")
    for bad in ("movenet:heavy", "mediapipe:huge", "openpose"):
        with pytest.raises(ValueError):
            PoseSpec.parse(bad)


def test_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSEPIPE_POSE_MODEL", "heavy")
    assert load_settings().pose_model == "heavy"
    monkeypatch.setenv("POSEPIPE_POSE_MODEL", "huge")
    with pytest.raises(ValueError):
        load_settings()


def test_installed_model_files_are_the_published_ones() -> None:
    for model in model_files.ALL_FILES:
        path = model_files.installed_path(model)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256, path


def test_a_missing_model_is_a_clear_error_never_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mediapipe.python.solutions import download_utils

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("mediapipe tried to download a model")

    monkeypatch.setattr(download_utils, "download_oss_model", no_download)
    monkeypatch.setattr(model_files, "mediapipe_landmark_dir", lambda: tmp_path)
    monkeypatch.setattr(model_files, "data_dir", lambda: tmp_path)
    for spec in ("mediapipe:heavy", "mediapipe:lite", "multi:heavy", "movenet"):
        with pytest.raises(model_files.ModelMissingError, match="scripts/install"):
            create_estimator(spec, CONFIDENCE)
    # A truncated file is not taken for the model either.
    (tmp_path / model_files.BLAZEPOSE_HEAVY.name).write_bytes(b"not a model")
    with pytest.raises(model_files.ModelMissingError, match="bytes"):
        require_landmark_model("heavy")


# --- BlazePose lite and heavy on a real clip ---


@pytest.mark.parametrize("model", ["lite", "heavy"])
def test_lite_and_heavy_pose_a_standing_person_near_full(media_dir: Path, model: str) -> None:
    frames = sampled_frames(media_dir / STANDING)[:3]
    full = pose_frames(MediaPipeEstimator(CONFIDENCE, CONFIDENCE), frames)
    other = pose_frames(create_estimator(pose_spec("mediapipe", model), CONFIDENCE), frames)
    for f, r in zip(full, other, strict=True):
        assert len(f.poses) == 1 and len(r.poses) == 1
        error = body_error_of_diagonal(f.poses[0], r.poses[0], f.resolution_wh)
        print(f"{model} frame {f.seq}: {error:.3%} of the diagonal from full")
        assert error < 0.02
        assert f.poses[0].to_bytes() != r.poses[0].to_bytes()  # really another model


def test_multi_runs_the_selected_model(media_dir: Path) -> None:
    (frame,) = sampled_frames(media_dir / STANDING)[:1]
    reference = MediaPipeEstimator(CONFIDENCE, CONFIDENCE, "heavy").estimate(frame)
    multi = create_estimator("multi:heavy", CONFIDENCE)
    assert isinstance(multi, MultiPoseEstimator)
    multi.reset()
    ours = multi.estimate(frame)
    errors = [body_error_of_diagonal(reference[0], p, frame.resolution_wh) for p in ours]
    print(f"multi:heavy vs mediapipe:heavy, first frame: {min(errors):.4%} of the diagonal")
    assert min(errors) < 0.0005


def test_the_model_is_in_the_cache_key(make_settings, open_services, media_dir: Path) -> None:
    photo = str(media_dir / BUSINESSMAN)
    opts = analysis.AnalyzeOptions(fps=10)
    for model, spec in (("full", "mediapipe+movenet"), ("heavy", "mediapipe+movenet:heavy")):
        services = open_services(make_settings(pose_model=model))
        target = analysis.plan(services, photo, opts)
        assert target.action is analysis.Action.INGEST  # heavy does not take full's analysis
        analysis.run(services, [target], opts)
        with services.db.session() as session:
            video = session.get(Video, target.video_id)
            assert video.status.value == "done", video.error
            assert video.pose_backend == spec  # what the workers posed it with
            assert len(list(iter_poses(session, video.id))) == 1
        assert analysis.plan(services, photo, opts).action is analysis.Action.CACHED


def test_cli_takes_the_model_and_the_movenet_backend(tmp_path: Path, media_dir: Path) -> None:
    from tests.test_cli import clean_env

    photo = str(media_dir / "images/img_zidane_two_men.jpg")
    result = subprocess.run(
        [sys.executable, "-m", "posepipe", "analyze", "--json", "--pose-backend", "movenet", photo],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (video,) = json.loads(result.stdout)["videos"]
    assert video["status"] == "done" and video["frames_with_person"] == 1
    bad = subprocess.run(
        [sys.executable, "-m", "posepipe", "analyze", "--pose-model", "huge", photo],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "huge" in bad.stderr


# --- MoveNet ---


@pytest.mark.parametrize(
    ("photo", "people"),
    [("images/img_zidane_two_men.jpg", 2), (BUSINESSMAN, 1), ("images/img_yoga_tree_pose.jpeg", 1)],
)
def test_movenet_finds_the_people_in_photos(
    media_dir: Path, movenet: MoveNetEstimator, photo: str, people: int
) -> None:
    (frame,) = sampled_frames(media_dir / photo)
    assert len(movenet.estimate(frame)) == people


def test_movenet_keypoints_sit_on_the_labelled_joints_in_the_stored_layout(
    media_dir: Path, movenet: MoveNetEstimator
) -> None:
    (frame,) = sampled_frames(media_dir / BUSINESSMAN)
    (pose,) = movenet.estimate(frame)
    rows = list(csv.reader((media_dir / "images/img_businessman_fullbody.keypoints.csv").open()))
    truth_px = np.array([float(v) for v in rows[2]]).reshape(17, 2)  # row 2 is this photo (MANIFEST)
    native_wh = np.array([399, 640])  # the photo's own size: the labels are its pixels
    ours_px = pose.landmarks_xyzv[list(COCO_TO_BLAZEPOSE), :2] * native_wh
    error = float(np.linalg.norm(ours_px - truth_px, axis=1).mean() / np.hypot(*native_wh))
    print(f"MoveNet on the businessman photo: mean {error:.2%} of the diagonal")
    assert error < 0.02
    # The 16 BlazePose landmarks COCO lacks are stored as not seen; the 17 it has mostly are.
    missing = sorted(set(range(N_LANDMARKS)) - set(COCO_TO_BLAZEPOSE))
    assert len(missing) == 16 and (pose.visibility[missing] == 0).all()
    assert (pose.visibility[list(COCO_TO_BLAZEPOSE)] >= 0.5).sum() >= 14
    assert pose.world_xyz_m is None and 0.5 <= pose.score <= 1.0


def test_movenet_maps_a_turned_frame_back(media_dir: Path, movenet: MoveNetEstimator) -> None:
    (frame,) = sampled_frames(media_dir / BUSINESSMAN)
    (upright,) = movenet.people_in(frame.rgb)
    for code, turn, back in (
        (cv2.ROTATE_90_COUNTERCLOCKWISE, "cw", cv2.ROTATE_90_CLOCKWISE),
        (cv2.ROTATE_90_CLOCKWISE, "ccw", cv2.ROTATE_90_COUNTERCLOCKWISE),
    ):
        lying = np.ascontiguousarray(cv2.rotate(frame.rgb, code))  # the person lies across this frame
        # Posed upright again (as the retry does) and mapped back into the lying frame: the same
        # pixels were posed, so the points must be the upright pose's, turned.
        (retried,) = movenet.people_in(cv2.rotate(lying, back), turn)
        expected = unturn(upright.landmarks_xyzv[:, :2], turn)
        assert np.abs(retried.landmarks_xyzv[:, :2] - expected).max() < 1e-5
        assert retried.visibility.tolist() == upright.visibility.tolist()


def test_movenet_keeps_the_fallen_person_on_the_floor(media_dir: Path, movenet: MoveNetEstimator) -> None:
    # urfall ds03: lies on his back from 1.5 s (on_ground_s) to the end; BlazePose full loses
    # him in 5 of the 17 frames after landing (bench/pose_models.py).
    frames = [
        f for f in sampled_frames(media_dir / "falls/urfall_ds03_fall_from_chair.mp4") if f.pts_s >= 1.5
    ]
    posed = pose_frames(movenet, frames)
    assert sum(bool(f.poses) for f in posed) == len(frames)
    tracker = Tracker()
    ids = {tid for f in posed for tid in tracker.update(f).track_ids if tid is not None}
    assert len(ids) == 1, ids  # one person, one track


def test_movenet_finds_the_lying_person_in_the_turned_frame(
    media_dir: Path, movenet: MoveNetEstimator
) -> None:
    # urfall ds04 lies curled at the bottom edge from 4.5 s: upright, MoveNet finds nobody in
    # 4.6-5.0 s (measured: 10 of the 15 frames after landing); turned, it finds him in all.
    frames = [
        f for f in sampled_frames(media_dir / "falls/urfall_ds04_fall_while_walking.mp4") if f.pts_s >= 3.6
    ]
    upright = sum(bool(movenet.people_in(f.rgb)) for f in frames)
    retried = [movenet.estimate(f) for f in frames]
    assert upright <= len(frames) - 3
    assert all(retried)
    for people in retried:  # mapped back into the frame, not left in turned coordinates
        seen = people[0].landmarks_xyzv[people[0].visibility >= 0.5, :2]
        assert ((seen > -0.05) & (seen < 1.05)).all()


def test_movenet_people_are_tracked_on_the_dance_clip(media_dir: Path, movenet: MoveNetEstimator) -> None:
    frames = sampled_frames(media_dir / "activity/act_dance_group_5_gumboot.mp4")[:20]
    posed = pose_frames(movenet, frames)
    tracker = Tracker()
    tracked = [sum(tid is not None for tid in tracker.update(f).track_ids) for f in posed]
    print(f"dance, people tracked per frame: {tracked}")
    assert sum(n >= 4 for n in tracked) >= 0.75 * len(frames)


def test_movenet_finds_nobody_in_a_blank_frame_upright_or_turned(
    media_dir: Path, movenet: MoveNetEstimator
) -> None:
    blank = Frame(seq=0, pts_s=0.0, rgb=np.zeros((360, 640, 3), dtype=np.uint8))
    assert movenet.estimate(blank) == ()


def test_a_camera_runs_movenet_and_the_deployments_model(make_settings, open_services) -> None:
    settings = make_settings(pose_model="lite")
    services = open_services(settings)
    box = SecretBox.from_settings(settings.secret_key, settings.data_dir)
    with services.db.session() as session:
        add_camera(session, box, "ward", "rtsp://10.0.0.9/stream", 10.0, None, "movenet")
        add_camera(session, box, "hall", "rtsp://10.0.0.8/stream", 10.0, None, "mediapipe")
    with services.db.session() as session:
        configs = {cfg.name: cfg for cfg in enabled_configs(session, box)}
    ctx = WorkerContext(settings=settings.for_workers(), db=services.db, redis=None, frames=None, queue=None)  # type: ignore[arg-type]
    specs = {}
    for name, config in configs.items():
        video_id, _run = CameraRunner(config, ctx, settings)._open_session(time.time())
        with services.db.session() as session:
            specs[name] = session.get(Video, video_id).pose_backend
        estimator = ctx.session_estimator(video_id, 0.0, specs[name])
        assert isinstance(estimator, MoveNetEstimator if name == "ward" else MediaPipeEstimator)
        if isinstance(estimator, MediaPipeEstimator):
            assert estimator.model == "lite"
    assert specs == {"ward": "movenet", "hall": "mediapipe:lite"}
    ctx.close()


# --- mediapipe+movenet: MoveNet where BlazePose lost the person ---


@pytest.fixture(scope="module")
def rescued() -> RescuedEstimator:
    estimator = create_estimator("mediapipe+movenet", CONFIDENCE)
    assert isinstance(estimator, RescuedEstimator)
    return estimator


def test_rescue_keeps_the_person_blazepose_loses_on_the_floor(
    media_dir: Path, rescued: RescuedEstimator
) -> None:
    # urfall ds08 after landing (4.4 s, chunk-aligned from 3.2 s): BlazePose full finds him in 6 of
    # the 12 frames on the floor, MoveNet in all (bench/pose_models.py).
    frames = [
        f for f in sampled_frames(media_dir / "falls/urfall_ds08_fall_while_walking.mp4") if f.seq >= 32
    ]
    full = create_estimator("mediapipe", CONFIDENCE)
    try:
        alone = pose_frames(full, frames)
    finally:
        full.close()
    before = RescuedEstimator.rescues
    both = pose_frames(rescued, frames)
    landed = [i for i, f in enumerate(frames) if f.pts_s >= 4.4]
    assert sum(bool(alone[i].poses) for i in landed) <= len(landed) - 3
    assert all(both[i].poses for i in landed)
    assert RescuedEstimator.rescues > before
    # BlazePose's own poses pass through untouched: the rescue only fills frames it left empty.
    for a, b in zip(alone, both, strict=True):
        if a.poses:
            assert np.array_equal(a.poses[0].landmarks_xyzv, b.poses[0].landmarks_xyzv)
    tracker = Tracker()
    ids = {tid for f in both for tid in tracker.update(f).track_ids if tid is not None}
    assert len(ids) == 1, ids  # the stand-in continues the same person's track


def test_rescue_costs_nothing_where_nobody_was_there(rescued: RescuedEstimator) -> None:
    # An empty scene: MoveNet runs on the first frame after a reset (no past to ask), never after.
    blank = [Frame(seq=i, pts_s=i / 10, rgb=np.zeros((360, 640, 3), dtype=np.uint8)) for i in range(40)]
    before = RescuedEstimator.rescues
    posed = pose_frames(rescued, blank)
    assert not any(f.poses for f in posed)
    assert RescuedEstimator.rescues - before == 2  # frames 0 and 32, each a chunk's first


def test_rescue_is_a_backend_with_a_model_choice() -> None:
    assert pose_spec("mediapipe+movenet", "heavy") == "mediapipe+movenet:heavy"
    assert PoseSpec.parse("mediapipe+movenet") == PoseSpec("mediapipe+movenet", "full")


def test_stand_ins_do_not_make_repetitions(media_dir: Path, rescued: RescuedEstimator) -> None:
    # Someone walking down wooden stairs, slipping: no exercise. The stand-ins (no world
    # landmarks, so joint angles read from the image) came between BlazePose's poses (angles read
    # in 3-D) and the knees' readings swung between the two: 2 "squats" before rep counting left
    # world-less poses of a track with world landmarks unread.
    clip = media_dir / "falls/fall_phone_outdoor_wooden_stairs_slip_toward_camera.mp4"
    posed = pose_frames(rescued, sampled_frames(clip))
    assert any(f.poses and f.poses[0].world_xyz_m is None for f in posed)  # stand-ins were used
    assert any(f.poses and f.poses[0].world_xyz_m is not None for f in posed)
    assert rep_counts(replay(posed, AnalyticsConfig())) == {}


def test_the_next_chunks_blank_frame_is_posed_ahead_with_the_rescue_too(rescued: RescuedEstimator) -> None:
    # A pose job forgets the person for the next chunk while it stores its own (workers.jobs):
    # the default backend for files wraps BlazePose, and must not lose that.
    thread = _forget_ahead(rescued, (360, 640, 3))
    assert thread is not None
    thread.join()
    primary = rescued.primary
    assert isinstance(primary, MediaPipeEstimator)
    assert primary._forgotten_shape == (360, 640, 3)
    rescued.reset()
    blank = Frame(seq=0, pts_s=0.0, rgb=np.zeros((360, 640, 3), dtype=np.uint8))
    assert rescued.estimate(blank) == ()
    assert primary._forgotten_shape is None  # used by the next frame, then cleared

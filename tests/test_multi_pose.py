"""The multi-person backend on real clips: agreement with mp.solutions.pose, people, identity, selection.

Bounds and why (docs/multi_pose.md has the measurements):
- Agreement: on single-person clips the backend runs MediaPipe's own models and graph
  constants, so it should give MediaPipe's landmarks. On a chunk's first frame (detector
  path, no feedback) they agree to ~0.002 % of the image diagonal; across a chunk the ROI
  tracking loop feeds small float differences (float64 here, float32 there) back into the
  next crop, and the mean grows to 0.02-0.17 % per clip. The bound, 0.5 % of the diagonal
  (~7 px at 1280x720, 0.03 torso lengths for a person filling the frame's height), is about
  three times the worst clip measured and still far below any analytics threshold.
- The dance clip has 5 dancers in view 0-9 s (then they walk off): at least 5 people must
  be tracked in more than half the analysed frames (measured: 93 of 110).
- Identity: no unambiguous frame-to-frame continuation may change its track id (measured:
  0 switches, 0 restarts in 531 continuations).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.multi_pose import identity_report, pose_frames, sampled_frames, track
from pose.estimator import MediaPipeEstimator, create_estimator
from pose.multipose.estimator import MultiPoseEstimator
from pose.rescue import RescuedEstimator
from pose.types import FramePoses
from posepipe import analyze as analysis
from posepipe.camera_supervisor import CameraRunner
from storage.cameras import CameraError, add_camera, enabled_configs
from storage.models import Video
from storage.poses import iter_poses
from storage.secret_box import SecretBox
from workers.context import WorkerContext

CONFIDENCE = 0.3  # the settings' default pose_min_confidence
AGREEMENT_CLIPS = (
    "exercise/ex_squat_side_woman.mp4",
    "exercise/ex_jumping_jacks_gray.mp4",
    "exercise/ex_lunges_outdoor.mp4",
)
MAX_MEAN_ERROR_OF_DIAGONAL = 0.005
MAX_FIRST_FRAME_ERROR_OF_DIAGONAL = 0.0005
DANCE = "activity/act_dance_group_5_gumboot.mp4"


@pytest.fixture(scope="module")
def multi() -> MultiPoseEstimator:
    return MultiPoseEstimator(CONFIDENCE, CONFIDENCE)


def landmark_error_of_diagonal(reference: FramePoses, ours: FramePoses) -> float:
    """Mean distance of the 33 landmarks of the reference's person to the nearest of our people."""
    (ref,) = reference.poses
    w, h = reference.resolution_wh
    errors = [
        float(np.linalg.norm((ref.landmarks_xyzv[:, :2] - p.landmarks_xyzv[:, :2]) * (w, h), axis=1).mean())
        for p in ours.poses
    ]
    return min(errors) / float(np.hypot(w, h))


@pytest.mark.parametrize("clip", AGREEMENT_CLIPS)
def test_single_person_landmarks_agree_with_mediapipe(clip: str, media_dir: Path, multi) -> None:
    frames = sampled_frames(media_dir / clip)
    reference = pose_frames(MediaPipeEstimator(CONFIDENCE, CONFIDENCE), frames)
    ours = pose_frames(multi, frames)
    both = [(r, o) for r, o in zip(reference, ours, strict=True) if r.poses and o.poses]
    assert len(both) >= 0.95 * len(frames), f"{clip}: both found someone in {len(both)} of {len(frames)}"
    errors = np.array([landmark_error_of_diagonal(r, o) for r, o in both])
    first = np.array([landmark_error_of_diagonal(r, o) for r, o in both if r.seq % 32 == 0])
    print(f"{clip}: mean {errors.mean():.4%} median {np.median(errors):.4%} first frames {first.mean():.4%}")
    assert errors.mean() < MAX_MEAN_ERROR_OF_DIAGONAL
    assert first.max() < MAX_FIRST_FRAME_ERROR_OF_DIAGONAL


def test_dance_clip_tracks_five_people_without_identity_switches(media_dir: Path, multi) -> None:
    posed = pose_frames(multi, sampled_frames(media_dir / DANCE))
    ids = track(posed)
    tracked = [sum(tid is not None for tid in frame_ids) for frame_ids in ids]
    five = sum(n >= 5 for n in tracked)
    report = identity_report(posed, ids)
    print(f"dance: >=5 people tracked in {five} of {len(tracked)} frames; {report}")
    assert five > 0.5 * len(tracked)
    assert report.continuous > 4 * len(tracked)  # the dancers are continuously in view
    assert report.switches == 0 and report.restarts == 0


@pytest.mark.parametrize(
    ("photo", "low", "high"),
    [
        ("images/img_zidane_two_men.jpg", 2, 2),
        # 2 fully visible men and 2 people cut off at the edges (no head in view): the two
        # men must be found; the cut-off ones are beyond a face-led detector (docs/multi_pose.md).
        ("images/img_bus_street_people.jpg", 2, 4),
        ("images/img_businessman_fullbody.jpeg", 1, 1),
        ("images/img_yoga_tree_pose.jpeg", 1, 1),
    ],
)
def test_photos_have_the_right_number_of_people(
    photo: str, low: int, high: int, media_dir: Path, multi
) -> None:
    (frame,) = sampled_frames(media_dir / photo)
    multi.reset()
    found = multi.estimate(frame)
    assert low <= len(found) <= high, f"{photo}: {len(found)} people"


def test_backend_is_selectable_and_cached_apart(make_settings, open_services, media_dir: Path) -> None:
    photo = str(media_dir / "images/img_zidane_two_men.jpg")
    assert isinstance(create_estimator("multi", CONFIDENCE), MultiPoseEstimator)
    counts = {}
    for backend in ("multi", "mediapipe"):
        services = open_services(make_settings(pose_backend=backend))
        opts = analysis.AnalyzeOptions(fps=10)
        target = analysis.plan(services, photo, opts)
        assert target.action is analysis.Action.INGEST  # the backend is part of the cache key
        analysis.run(services, [target], opts)
        with services.db.session() as session:
            video = session.get(Video, target.video_id)
            assert video.status.value == "done", video.error
            assert video.pose_backend == backend
            counts[backend] = len(list(iter_poses(session, video.id)))
    assert counts == {"multi": 2, "mediapipe": 1}


def test_cli_analyze_takes_the_backend(tmp_path: Path, media_dir: Path) -> None:
    from tests.test_cli import clean_env

    result = subprocess.run(
        [sys.executable, "-m", "posepipe", "analyze", "--json", "--pose-backend", "multi"]
        + [str(media_dir / "images/img_zidane_two_men.jpg")],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (video,) = json.loads(result.stdout)["videos"]
    assert video["status"] == "done" and video["frames_with_person"] == 1


def test_camera_keeps_its_backend(make_settings, open_services) -> None:
    settings = make_settings()
    services = open_services(settings)
    box = SecretBox.from_settings(settings.secret_key, settings.data_dir)
    with services.db.session() as session:
        add_camera(session, box, "gym", "rtsp://10.0.0.9/stream", 10.0, None, "multi")
        add_camera(session, box, "hall", "rtsp://10.0.0.8/stream", 10.0, None, "mediapipe")
        with pytest.raises(CameraError, match="unknown pose backend"):
            add_camera(session, box, "bad", "rtsp://10.0.0.7/stream", 10.0, None, "openpose")
    with services.db.session() as session:
        configs = {cfg.name: cfg for cfg in enabled_configs(session, box)}
    assert {name: cfg.pose_backend for name, cfg in configs.items()} == {"gym": "multi", "hall": "mediapipe"}
    # The camera's session is posed with the camera's backend, whatever the worker's settings say.
    ctx = WorkerContext(settings=settings.for_workers(), db=services.db, redis=None, frames=None, queue=None)  # type: ignore[arg-type]
    video_id, _run = CameraRunner(configs["gym"], ctx, settings)._open_session(time.time())
    with services.db.session() as session:
        backend = session.get(Video, video_id).pose_backend
    assert backend == "multi"
    assert isinstance(ctx.session_estimator(video_id, 0.0, backend), MultiPoseEstimator)
    assert isinstance(ctx.estimator(), RescuedEstimator)  # the settings' default for files
    ctx.close()

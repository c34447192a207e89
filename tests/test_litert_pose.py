"""The `litert` backend (pose.litert): mp.solutions.pose's one-person graph on the wheel's own
models under LiteRT, checked against mp.solutions.pose itself on real clips and a photo.

Bounds and why (docs/benchmarks.md, "BlazePose under LiteRT", has the measurements):
- A chunk's first frame takes the detector path with nothing carried over, so both run the
  same networks on the same crop: their visible landmarks agree to ~0.003 % of the frame
  (median); the bound, 0.05 %, is far above float noise and far below any real difference
  (another region or model moves landmarks by ~1 %).
- Across a chunk each backend carries its own region to the next frame, so the two runtimes'
  float differences feed back: the median over a clip's visible landmarks measured 0.02-0.20 %
  of the frame on 10 clips (the squat clip 0.13 %, the falling person's 0.02 %). Bound 0.5 %,
  half of what continuing tracking instead of restarting it moves MediaPipe's own landmarks.
- Frames with a person: the same frames on 9 of 10 clips, 104 against 105 on the tenth (the
  falling person's); bound: both find someone on at least 97 % of the frames either does.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from bench.multi_pose import pose_frames, sampled_frames
from bench.pose_backends import landmark_errors, pose_timed
from pose import model_files
from pose.estimator import MediaPipeEstimator, PoseSpec, create_estimator, pose_spec
from pose.litert import LiteRtPoseEstimator
from pose.multipose import constants as c
from pose.rescue import RescuedEstimator
from posepipe import analyze as analysis
from storage.models import Video
from storage.poses import iter_poses

CONFIDENCE = 0.3  # the settings' default pose_min_confidence
CHUNK = 32
CLIPS = ("exercise/ex_squat_side_woman.mp4", "falls/fall_home_phone_backward.mp4")
PHOTO = "images/img_businessman_fullbody.jpeg"
MAX_MEDIAN_ERROR = 0.005
MAX_FIRST_FRAME_MEDIAN_ERROR = 0.0005
MIN_BOTH_OF_EITHER = 0.97


@pytest.fixture(scope="module")
def litert() -> LiteRtPoseEstimator:
    return LiteRtPoseEstimator(CONFIDENCE, CONFIDENCE)


@pytest.fixture(scope="module")
def mediapipe() -> MediaPipeEstimator:
    return MediaPipeEstimator(CONFIDENCE, CONFIDENCE)


def test_spec_names_the_backend_and_its_model() -> None:
    assert PoseSpec.parse("litert") == PoseSpec("litert")
    assert pose_spec("litert", "heavy") == "litert:heavy"
    assert PoseSpec.parse("litert+movenet:lite+hands") == PoseSpec("litert+movenet", "lite", True)
    assert str(PoseSpec("litert+movenet")) == "litert+movenet"
    assert isinstance(create_estimator("litert", CONFIDENCE), LiteRtPoseEstimator)
    rescued = create_estimator("litert+movenet", CONFIDENCE)
    assert isinstance(rescued, RescuedEstimator) and rescued.name == "litert+movenet"
    assert isinstance(rescued.primary, LiteRtPoseEstimator)
    assert create_estimator("mediapipe+movenet", CONFIDENCE).name == "mediapipe+movenet"


def test_wheel_model_files_are_the_recorded_ones() -> None:
    assert model_files.WHEEL_POSE_DETECTOR.relative == c.DETECTOR_MODEL
    assert model_files.WHEEL_POSE_LANDMARK_FULL.relative == c.LANDMARK_MODELS["full"]
    for model in model_files.WHEEL_POSE_FILES:
        path = model_files.wheel_path(model)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256, path


def test_another_wheels_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    other = dataclasses.replace(model_files.WHEEL_POSE_DETECTOR, size_bytes=1)
    monkeypatch.setattr(model_files, "WHEEL_POSE_DETECTOR", other)
    with pytest.raises(model_files.ModelMissingError, match="litert backend reproduces"):
        LiteRtPoseEstimator(CONFIDENCE, CONFIDENCE)


@pytest.mark.parametrize("clip", CLIPS)
def test_landmarks_and_frames_agree_with_mediapipe(
    clip: str, media_dir: Path, litert: LiteRtPoseEstimator, mediapipe: MediaPipeEstimator
) -> None:
    frames = sampled_frames(media_dir / clip)
    reference = pose_timed(mediapipe, frames, CHUNK).poses
    ours = pose_timed(litert, frames, CHUNK).poses
    both = sum(bool(r) and bool(o) for r, o in zip(reference, ours, strict=True))
    either = sum(bool(r) or bool(o) for r, o in zip(reference, ours, strict=True))
    errors = landmark_errors(reference, ours)
    firsts = [i for i in range(0, len(frames), CHUNK) if reference[i] and ours[i]]
    first_errors = [float(np.median(landmark_errors([reference[i]], [ours[i]]))) for i in firsts]
    print(f"{clip}: both {both} either {either} median {np.median(errors):.4%} first frames {first_errors}")
    assert either > 0.5 * len(frames) and both >= MIN_BOTH_OF_EITHER * either
    assert float(np.median(errors)) < MAX_MEDIAN_ERROR
    assert firsts and max(first_errors) < MAX_FIRST_FRAME_MEDIAN_ERROR
    # World landmarks are there, in metres around the hips, as mp.solutions gives them.
    pose = next(p for p in ours if p)[0]
    assert pose.world_xyz_m is not None and np.abs(pose.world_xyz_m).max() < 2.0


def test_a_photo_is_the_same_person_as_mediapipes(
    media_dir: Path, litert: LiteRtPoseEstimator, mediapipe: MediaPipeEstimator
) -> None:
    (frame,) = sampled_frames(media_dir / PHOTO)
    mediapipe.reset()
    litert.reset()
    (reference,) = mediapipe.estimate(frame)
    (ours,) = litert.estimate(frame)
    assert float(np.median(landmark_errors([(reference,)], [(ours,)]))) < MAX_FIRST_FRAME_MEDIAN_ERROR
    assert abs(ours.score - reference.score) < 0.01  # the same score: torso visibility


def test_the_detector_runs_only_when_nobody_is_followed(media_dir: Path, litert: LiteRtPoseEstimator) -> None:
    frames = sampled_frames(media_dir / CLIPS[0])[:12]
    blank = dataclasses.replace(frames[0], rgb=np.zeros_like(frames[0].rgb))
    litert.reset()
    detected = []
    for frame in [*frames[:6], blank, *frames[6:]]:
        found = litert.estimate(frame)
        detected.append((bool(found), litert.last_cost.detected))
    # The first frame detects, the next ones follow; in the blank frame the landmark model finds
    # nobody where the person was (and, as in MediaPipe's graph, the detector does not run again
    # on that frame), so the frame after it detects.
    assert detected[:6] == [(True, True)] + [(True, False)] * 5
    assert detected[6] == (False, False)
    assert detected[7:] == [(True, True)] + [(True, False)] * 5
    # A frame of another size (a camera that changed its stream) starts from the detector too.
    smaller = dataclasses.replace(frames[0], rgb=np.ascontiguousarray(frames[0].rgb[::2, ::2]))
    assert litert.estimate(smaller) and litert.last_cost.detected


def test_a_reset_poses_a_chunk_as_a_new_model_does(media_dir: Path, litert: LiteRtPoseEstimator) -> None:
    frames = sampled_frames(media_dir / CLIPS[1])[:24]
    litert.reset()
    for frame in frames[:12]:
        litert.estimate(frame)
    litert.reset()
    after_reset = [litert.estimate(frame) for frame in frames[12:]]
    fresh = LiteRtPoseEstimator(CONFIDENCE, CONFIDENCE)
    new_model = [fresh.estimate(frame) for frame in frames[12:]]

    def stored(posed: list) -> list:
        return [[p.to_bytes() for p in poses] for poses in posed]

    assert stored(after_reset) == stored(new_model)
    assert any(after_reset)


def test_the_movenet_rescue_keeps_the_person_litert_loses_on_the_floor(media_dir: Path) -> None:
    # urfall ds08 after landing (4.4 s), as tests/test_pose_models.py checks `mediapipe+movenet`:
    # BlazePose full (MediaPipe's or this one) loses him on several frames on the floor, MoveNet
    # finds him on all of them.
    frames = [
        f for f in sampled_frames(media_dir / "falls/urfall_ds08_fall_while_walking.mp4") if f.seq >= 32
    ]
    alone = pose_frames(LiteRtPoseEstimator(CONFIDENCE, CONFIDENCE), frames)
    rescued = create_estimator("litert+movenet", CONFIDENCE)
    before = RescuedEstimator.rescues
    both = pose_frames(rescued, frames)
    landed = [i for i, f in enumerate(frames) if f.pts_s >= 4.4]
    assert sum(bool(alone[i].poses) for i in landed) <= len(landed) - 3
    assert all(both[i].poses for i in landed)
    assert RescuedEstimator.rescues > before
    for a, b in zip(alone, both, strict=True):  # litert's own poses pass through untouched
        if a.poses:
            assert np.array_equal(a.poses[0].landmarks_xyzv, b.poses[0].landmarks_xyzv)


def test_a_video_is_analysed_with_it(make_settings, open_services, media_dir: Path) -> None:
    services = open_services(make_settings(pose_backend="litert"))
    opts = analysis.AnalyzeOptions(fps=10)
    target = analysis.plan(services, str(media_dir / "falls/urfall_ds04_fall_while_walking.mp4"), opts)
    analysis.run(services, [target], opts)
    with services.db.session() as session:
        video = session.get(Video, target.video_id)
        assert video.status.value == "done", video.error
        assert video.pose_backend == "litert"
        poses = list(iter_poses(session, video.id))
    assert len(poses) >= 45  # 51 analysed frames, a person in each for mp.solutions and litert

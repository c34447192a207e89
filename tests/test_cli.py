"""The `posepipe` command as a user runs it (subprocesses, embedded mode, a fresh data folder)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose.types import LANDMARK_NAMES
from posepipe.views import SCHEMA_VERSION

CLIP = "falls/urfall_ds22_fall_toward_camera.mp4"


def clean_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("POSEPIPE_") and k not in ("REDIS_URL", "DATABASE_URL")
    }
    env["POSEPIPE_DATA_DIR"] = str(data_dir)
    return env


def posepipe(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "posepipe", *args], env=env, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"posepipe {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> tuple[dict[str, str], dict]:
    env = clean_env(tmp_path_factory.mktemp("data"))
    result = posepipe(env, "analyze", "--json", str(media_dir / CLIP))
    return env, json.loads(result.stdout)  # stdout is exactly one JSON document


def test_analyze_json_is_the_only_stdout(analysed) -> None:
    _env, doc = analysed
    assert doc["schema_version"] == SCHEMA_VERSION
    (video,) = doc["videos"]
    assert video["status"] == "done" and video["error"] is None
    assert video["frames_analyzed"] == 25 and video["fps_analyzed"] == pytest.approx(10, abs=0.5)
    assert isinstance(video["events"], list) and isinstance(video["reps"], dict)
    assert len(video["sha256"]) == 64


def test_analyze_again_is_served_from_the_cache(analysed, media_dir: Path) -> None:
    env, doc = analysed
    again = json.loads(posepipe(env, "analyze", "--json", str(media_dir / CLIP)).stdout)
    assert again["videos"][0]["video_id"] == doc["videos"][0]["video_id"]
    assert again["videos"][0]["frames_analyzed"] == doc["videos"][0]["frames_analyzed"]


def test_poses_csv_with_a_landmark_subset(analysed) -> None:
    env, doc = analysed
    vid = str(doc["videos"][0]["video_id"])
    out = posepipe(env, "poses", vid, "--format", "csv", "--landmarks", "lower_body").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == doc["videos"][0]["frames_with_person"]
    assert "left_knee_x" in rows[0] and "nose_x" not in rows[0]
    assert 0 <= float(rows[0]["left_hip_y"]) <= 1.2
    # Joint angles come with every row; a visible, standing knee is far from folded.
    knees = [float(r["left_knee_deg"]) for r in rows if r["left_knee_deg"]]
    assert knees and all(0 <= k <= 180 for k in knees) and max(knees) > 120
    assert "trunk_inclination_deg" in rows[0]
    named = posepipe(env, "poses", vid, "--format", "csv", "--landmarks", "nose,left_wrist").stdout
    header = next(csv.reader(io.StringIO(named)))
    assert header[6:14] == [f"{n}_{f}" for n in ("nose", "left_wrist") for f in ("x", "y", "z", "visibility")]


def test_poses_json_and_bad_landmark_names(analysed) -> None:
    env, doc = analysed
    vid = str(doc["videos"][0]["video_id"])
    data = json.loads(posepipe(env, "poses", vid, "--format", "json").stdout)
    assert (
        data["landmarks"] == list(LANDMARK_NAMES)
        and len(data["poses"]) == doc["videos"][0]["frames_with_person"]
    )
    assert len(data["poses"][0]["landmarks"]) == 33 and len(data["poses"][0]["world_landmarks_m"]) == 33
    assert set(data["poses"][0]["angles_deg"]) >= {
        "left_knee_deg",
        "right_elbow_deg",
        "trunk_inclination_deg",
    }
    bad = posepipe(env, "poses", vid, "--landmarks", "elbow_of_doom", check=False)
    assert bad.returncode != 0 and "elbow_of_doom" in bad.stderr


def test_snapshot_draws_red_joints_and_white_bones(analysed, tmp_path: Path) -> None:
    env, doc = analysed
    vid = str(doc["videos"][0]["video_id"])
    poses = json.loads(posepipe(env, "poses", vid, "--format", "json").stdout)["poses"]
    pose = max(poses, key=lambda p: sum(lm[3] for lm in p["landmarks"]))
    out = tmp_path / "snap.jpg"
    posepipe(env, "snapshot", vid, "--t", str(pose["t_s"]), "-o", str(out))
    image = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    lm = np.array(pose["landmarks"])
    shoulder, hip = lm[11], lm[23]
    assert shoulder[3] > 0.5 and hip[3] > 0.5
    jx, jy = int(shoulder[0] * w), int(shoulder[1] * h)
    r, g, b = image[jy - 1 : jy + 2, jx - 1 : jx + 2].reshape(-1, 3).mean(axis=0)
    assert r > 170 and g < 110 and b < 110, (r, g, b)
    mx, my = int((shoulder[0] + hip[0]) / 2 * w), int((shoulder[1] + hip[1]) / 2 * h)
    assert image[my, mx].min() > 170, image[my, mx]
    green = tmp_path / "green.jpg"
    posepipe(env, "snapshot", vid, "--t", str(pose["t_s"]), "-o", str(green), "--joint-color", "0,255,0")
    r, g, b = (
        cv2.cvtColor(cv2.imread(str(green)), cv2.COLOR_BGR2RGB)[jy - 1 : jy + 2, jx - 1 : jx + 2]
        .reshape(-1, 3)
        .mean(axis=0)
    )
    assert g > 170 and r < 110


def test_status_and_events_commands(analysed) -> None:
    env, doc = analysed
    vid = doc["videos"][0]["video_id"]
    status = json.loads(posepipe(env, "status", str(vid), "--json").stdout)["videos"][0]
    assert status["status"] == "done" and status["progress"] == 1.0 and status["frames_total"] == 25
    listing = posepipe(env, "status").stdout
    assert CLIP.split("/")[-1] in listing
    assert status["id"] == vid and status["name"] == CLIP.split("/")[-1] and status["kind"] == "file"
    events = json.loads(posepipe(env, "events", "--video", str(vid), "--format", "json").stdout)["events"]
    # One event shape: `analyze --json` lists a video's events as `posepipe events` (and the API) do.
    assert events == doc["videos"][0]["events"]
    missing = posepipe(env, "status", "9999", check=False)
    assert missing.returncode != 0 and "no video 9999" in missing.stderr


def test_queue_commands_refuse_without_redis(tmp_path: Path, media_dir: Path) -> None:
    env = clean_env(tmp_path)
    result = posepipe(env, "enqueue", str(media_dir / CLIP), check=False)
    assert result.returncode != 0 and "REDIS_URL" in result.stderr
    result = posepipe(env, "worker", check=False)
    assert result.returncode != 0 and "REDIS_URL" in result.stderr


def test_a_burst_worker_is_a_single_one(tmp_path: Path, redis_url: str) -> None:
    env = clean_env(tmp_path) | {"REDIS_URL": redis_url}
    result = posepipe(env, "worker", "--burst", "-n", "2", check=False)
    assert result.returncode == 2 and "--burst runs a single worker" in result.stderr
    # Empty queues: the burst worker exits at once.
    assert posepipe(env, "worker", "--burst").returncode == 0


def test_a_typo_in_settings_is_reported(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    env["POSEPIPE_ANALYSYS_FPS"] = "5"
    result = posepipe(env, "status", check=False)
    assert result.returncode != 0 and "POSEPIPE_ANALYSYS_FPS" in result.stderr


# Photos: the shared images, and the businessman written again in every still format FFmpeg writes.
PHOTO = "images/img_businessman_fullbody.jpeg"
PHOTO_FORMATS = ("png", "webp", "bmp", "tiff")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> tuple[dict[str, str], Path, dict]:
    folder = tmp_path_factory.mktemp("photos")
    source = media_dir / PHOTO
    (folder / "businessman.jpg").write_bytes(source.read_bytes())
    for ext in PHOTO_FORMATS:
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), str(folder / f"businessman.{ext}")],
            check=True,
        )
    (folder / "notes.txt").write_text("not a picture: a folder's other files are left alone\n")
    env = clean_env(tmp_path_factory.mktemp("data"))
    doc = json.loads(posepipe(env, "analyze", "--json", str(folder)).stdout)
    return env, folder, doc


def test_a_folder_of_photos_is_analysed_photo_by_photo(photos) -> None:
    env, folder, doc = photos
    names = sorted(Path(v["path"]).name for v in doc["videos"])
    assert names == sorted(["businessman.jpg"] + [f"businessman.{e}" for e in PHOTO_FORMATS])
    for video in doc["videos"]:
        assert video["status"] == "done", video
        assert video["kind"] == "photo" and video["people"] == 1
        assert video["frames_analyzed"] == 1 and video["frames_with_person"] == 1
    summary = posepipe(env, "analyze", str(folder / "businessman.png")).stdout
    assert "photo: 1 person found" in summary
    assert " s of video" not in summary and "fps" not in summary


def test_a_photo_snapshot_needs_no_time_and_its_poses_are_where_the_person_is(
    photos, media_dir: Path, tmp_path: Path
) -> None:
    env, _folder, doc = photos
    video = next(v for v in doc["videos"] if v["path"].endswith(".webp"))
    vid = str(video["video_id"])
    out = tmp_path / "photo.jpg"
    result = posepipe(env, "snapshot", vid, "-o", str(out))
    assert "frame at 0.000 s" in result.stdout
    drawn = cv2.imread(str(out))
    original = cv2.imread(str(media_dir / PHOTO))
    assert drawn.shape == original.shape
    rows = list(csv.DictReader(io.StringIO(posepipe(env, "poses", vid).stdout)))
    assert len(rows) == 1 and rows[0]["t_s"] == "0.0000"
    # The labelled keypoints (pixels) of this photo: the nose found is within 4% of the picture.
    h, w = original.shape[:2]
    labelled = list(csv.DictReader((media_dir / "images/img_businessman_fullbody.keypoints.csv").open()))
    nose = np.array([float(rows[0]["nose_x"]) * w, float(rows[0]["nose_y"]) * h])
    gaps = [np.hypot(*(nose - [float(r["nose_x"]), float(r["nose_y"])])) for r in labelled]
    assert min(gaps) < 0.04 * max(w, h), gaps
    # The joints are drawn red where the model put them.
    lm = np.array([[float(rows[0][f"{n}_{f}"]) for f in ("x", "y", "visibility")] for n in LANDMARK_NAMES])
    shoulder = lm[11]
    assert shoulder[2] > 0.5
    jx, jy = int(shoulder[0] * w), int(shoulder[1] * h)
    b, g, r = drawn[jy - 1 : jy + 2, jx - 1 : jx + 2].reshape(-1, 3).mean(axis=0)
    assert r > 170 and g < 110 and b < 110, (r, g, b)
    events = json.loads(posepipe(env, "events", "--video", vid, "--format", "json").stdout)["events"]
    assert isinstance(events, list)


def test_a_video_snapshot_still_needs_a_time(analysed, tmp_path: Path) -> None:
    env, doc = analysed
    result = posepipe(
        env, "snapshot", str(doc["videos"][0]["video_id"]), "-o", str(tmp_path / "x.jpg"), check=False
    )
    assert result.returncode != 0 and "--t" in result.stderr


def test_several_people_in_a_photo_with_the_multi_backend(media_dir: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    photo = str(media_dir / "images/img_zidane_two_men.jpg")
    doc = json.loads(posepipe(env, "analyze", "--json", "--pose-backend", "multi", photo).stdout)
    (video,) = doc["videos"]
    assert video["kind"] == "photo" and video["people"] == 2, video


def test_an_empty_folder_fails_with_its_reason(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    result = posepipe(env, "analyze", str(tmp_path / "empty"), check=False)
    assert result.returncode == 1 and "a folder with no video or photo in it" in result.stdout

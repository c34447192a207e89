"""Installing posepipe: the locked environment scripts/install makes (one OpenCV wheel, nothing missing
but what was left out on purpose), and a plain `pip install` of the built wheel into a fresh
virtualenv, as README's "Installing with pip" says, which must give a working tool with every
pose backend and exactly one OpenCV."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from pose.estimator import BACKENDS

REPO = Path(__file__).resolve().parent.parent
# mediapipe declares these; Pose uses none of them, and opencv-contrib-python (GUI build,
# needs libGL) is replaced by the headless build of the same version (requirements.lock).
LEFT_OUT_ON_PURPOSE = {"jax", "jaxlib", "sentencepiece", "sounddevice", "opencv-contrib-python"}
# posepipe declares mediapipe's own OpenCV for a plain pip install; the lock swaps it likewise.
SWAPPED_BY_THE_LOCK = {"opencv-contrib-python"}
CLIP = "falls/urfall_ds22_fall_toward_camera.mp4"


def installed() -> dict[str, md.Distribution]:
    return {canonicalize_name(d.metadata["Name"]): d for d in md.distributions()}


def test_exactly_one_opencv_distribution() -> None:
    opencv = sorted(name for name in installed() if name.startswith("opencv"))
    assert opencv == ["opencv-contrib-python-headless"], opencv
    assert cv2.__version__.startswith("4.11")


def test_every_requirement_is_installed_except_the_documented_ones() -> None:
    dists = installed()
    missing = []
    for name, dist in dists.items():
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            if dep in dists:
                continue
            if name == "mediapipe" and dep in LEFT_OUT_ON_PURPOSE:
                continue
            if name == "posepipe" and dep in SWAPPED_BY_THE_LOCK:
                continue
            missing.append(f"{name} needs {req}")
    assert not missing, missing


def test_rq_is_held_to_the_installed_minor_line() -> None:
    # Its private layout is used (pyproject.toml says where): pyproject admits one minor line,
    # the one installed, and the lock pins a release of it.
    declared = [
        Requirement(line.strip().strip('",'))
        for line in (REPO / "pyproject.toml").read_text().splitlines()
        if line.strip().startswith('"rq')
    ]
    lock = (REPO / "requirements.lock").read_text().splitlines()
    locked = [line for line in lock if line.startswith("rq==")]
    assert len(declared) == 1 and len(locked) == 1
    running = Version(md.version("rq"))
    line_start = Version(f"{running.major}.{running.minor}")
    assert running in declared[0].specifier and line_start in declared[0].specifier
    assert Version(f"{running.major}.{running.minor + 1}") not in declared[0].specifier
    assert locked == [f"rq=={running}"]


def test_pose_models_ship_in_the_mediapipe_wheel() -> None:
    files = {str(f) for f in md.files("mediapipe") or []}
    assert "mediapipe/modules/pose_detection/pose_detection.tflite" in files
    assert "mediapipe/modules/pose_landmark/pose_landmark_full.tflite" in files


def test_every_imported_distribution_is_declared() -> None:
    """What the code imports at run time is in pyproject's dependencies, by distribution."""
    declared = {
        canonicalize_name(Requirement(r).name) for r in md.requires("posepipe") or [] if "extra" not in r
    }
    needed = {"ai-edge-litert", "mediapipe", "av", "numpy", "opencv-contrib-python", "uvicorn", "fastapi"}
    assert needed <= declared, needed - declared
    assert not any(name.startswith("opencv") and name != "opencv-contrib-python" for name in declared)


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_the_built_wheel_installed_by_pip_works_with_every_backend(tmp_path: Path, media_dir: Path) -> None:
    """Build the wheel, `pip install` it into a fresh venv (resolving its dependencies as any
    user's pip does), and analyse a shared clip with each backend from outside the repository."""
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(REPO), "-w", str(tmp_path / "dist")])
    (wheel,) = (tmp_path / "dist").glob("posepipe-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    # --no-compile: the same files, without byte-compiling jax and scipy (a minute of the test).
    run([str(python), "-m", "pip", "install", "-q", "--no-compile", str(wheel)], timeout=900)
    run([str(python), "-m", "pip", "check"])
    dists = json.loads(run([str(python), "-m", "pip", "list", "--format", "json"]).stdout)
    opencv = sorted(d["name"] for d in dists if d["name"].lower().startswith("opencv"))
    assert opencv == ["opencv-contrib-python"], opencv
    imported = run([str(python), "-c", "import cv2, ai_edge_litert, mediapipe; print(cv2.__version__)"])
    assert imported.stdout.startswith("4.11")
    # The model files no wheel ships (MoveNet; BlazePose lite/heavy need npm), as README says.
    run([str(python), "-m", "pose.model_files", "install"], cwd=tmp_path, timeout=600)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("POSEPIPE_") and k not in ("REDIS_URL", "DATABASE_URL")
    }
    for backend in sorted(BACKENDS):
        env["POSEPIPE_DATA_DIR"] = str(tmp_path / f"data-{backend}")
        result = run(
            [
                str(venv / "bin" / "posepipe"),
                "-q",
                "analyze",
                "--json",
                "--pose-backend",
                backend,
                str(media_dir / CLIP),
            ],
            env=env,
            cwd=tmp_path,  # not the repository: the installed package must be complete
            timeout=600,
        )
        (video,) = json.loads(result.stdout)["videos"]
        assert video["status"] == "done" and video["frames_analyzed"] == 25, (backend, video)
        assert video["frames_with_person"] >= 20, (backend, video)

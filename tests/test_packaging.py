"""The installed environment: one OpenCV wheel, and nothing missing but what was left out on purpose."""

from __future__ import annotations

import importlib.metadata as md

import cv2
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# mediapipe declares these; Pose uses none of them, and opencv-contrib-python (GUI build,
# needs libGL) is replaced by the headless build of the same version (requirements.lock).
LEFT_OUT_ON_PURPOSE = {"jax", "jaxlib", "sentencepiece", "sounddevice", "opencv-contrib-python"}


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
            missing.append(f"{name} needs {req}")
    assert not missing, missing


def test_pose_models_ship_in_the_mediapipe_wheel() -> None:
    files = {str(f) for f in md.files("mediapipe") or []}
    assert "mediapipe/modules/pose_detection/pose_detection.tflite" in files
    assert "mediapipe/modules/pose_landmark/pose_landmark_full.tflite" in files

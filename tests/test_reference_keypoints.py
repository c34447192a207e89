"""Detected joints on a photo with labelled keypoints lie where the labels say (through the pipeline)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pose.types import LANDMARK_INDEX
from posepipe import analyze as analysis
from storage.models import Video
from storage.poses import iter_poses

# The photo's reference keypoints are COCO's 17 joints; every one has a BlazePose namesake.
PHOTO = "images/img_businessman_fullbody.jpeg"


def test_businessman_joints_match_reference(make_settings, open_services, media_dir: Path) -> None:
    services = open_services(make_settings())
    opts = analysis.AnalyzeOptions(fps=10)
    target = analysis.plan(services, str(media_dir / PHOTO), opts)
    analysis.run(services, [target], opts)
    with services.db.session() as s:
        video = s.get(Video, target.video_id)
        assert video.status.value == "done", video.error
        (stored,) = list(iter_poses(s, video.id))
        width, height = video.width, video.height
    # Row 1 of the CSV is a synthetic image that is not shipped; row 2 is this photo.
    with open(media_dir / "images" / "img_businessman_fullbody.keypoints.csv") as handle:
        rows = list(csv.DictReader(handle))
    reference = rows[1]
    names = [key[:-2] for key in reference if key.endswith("_x")]
    ref_xy = np.array([(float(reference[f"{n}_x"]), float(reference[f"{n}_y"])) for n in names])
    got = stored.pose.landmarks_xyzv[[LANDMARK_INDEX[n] for n in names], :2] * (width, height)
    errors = np.linalg.norm(got - ref_xy, axis=1)
    person_height = ref_xy[:, 1].max() - ref_xy[:, 1].min()
    within = errors <= 0.05 * person_height
    assert len(names) == 17
    assert within.sum() >= 16, dict(zip(names, errors.round(1), strict=True))
    assert np.median(errors) <= 0.025 * person_height

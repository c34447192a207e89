"""Pose backends and BlazePose models on the shared falls, after the person is on the ground.

For every clip of ground_truth.json with a fall and an `on_ground_s`, the frames from the
start of the chunk holding the first frame at or after `on_ground_s` to the clip's end are
posed by each backend exactly as a pose job poses them (10 fps, longer side 1280, the model
reset at every 32-frame chunk), one backend after the other on the same decoded frames. Over
the frames at or after `on_ground_s` it reports, per backend/model:

- found: frames with at least one pose;
- horizontal: frames with a pose whose trunk (mid-hip to mid-shoulder) is more than 45 deg
  from the image's vertical (the clip's aspect ratio removed: x and y in image heights);
- agreement with BlazePose full where both find someone: per frame, the mean distance of the
  13 body landmarks both layouts share (nose, shoulders, elbows, wrists, hips, knees, ankles)
  between full's person and the nearest pose of the other backend, as % of the image
  diagonal; the median over frames (full itself loses people lying down, so this says how
  alike two models are, not which is right);
- ms a frame: the median CPU time of one `estimate` call (the whole process's, so MediaPipe's
  graph threads count), and its wall time. On a machine shared with other work the wall time
  swings with the load (2-5x seen here); the CPU time is what a frame costs a core.

    .venv/bin/python -m bench.pose_models [--only falls/urfall] [--json]
    .venv/bin/python -m bench.pose_models --eval movenet   # the analytics' eval on that backend

`--eval SPEC` instead poses every labelled clip with the backend SPEC (`mediapipe`,
`mediapipe:heavy`, `movenet`...) through bench.posed's cache, as a pipeline does, and prints
the analytics' evaluation table (bench.score_posed's, for another backend).

Numbers depend on the machine and on what else runs on it; docs/multi_pose.md keeps a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics.evaluation import load_truth
from bench.common import media_dir
from pipeline.frames import Frame
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose.estimator import PoseEstimator, create_estimator
from pose.movenet import COCO_KEYPOINTS, COCO_TO_BLAZEPOSE, MoveNetEstimator
from pose.rescue import RescuedEstimator
from pose.types import LANDMARK_INDEX, Pose

CHUNK_FRAMES = 32
ANALYSIS_FPS = 10.0
MAX_SIDE = 1280
MIN_CONFIDENCE = 0.3  # the settings' default pose_min_confidence
HORIZONTAL_DEG = 45.0
REFERENCE = "mediapipe"  # BlazePose full, today's default
# The body points both layouts have (MoveNet's COCO keypoints less the eyes and ears).
SHARED_BODY = tuple(
    index
    for name, index in zip(COCO_KEYPOINTS, COCO_TO_BLAZEPOSE, strict=True)
    if not name.endswith(("eye", "ear"))
)
HIPS = (LANDMARK_INDEX["left_hip"], LANDMARK_INDEX["right_hip"])
SHOULDERS = (LANDMARK_INDEX["left_shoulder"], LANDMARK_INDEX["right_shoulder"])

# Label -> how to build it. `movenet upright` is MoveNet without the retry on turned frames.
BACKENDS: dict[str, Callable[[], PoseEstimator]] = {
    "mediapipe": lambda: create_estimator("mediapipe", MIN_CONFIDENCE),
    "mediapipe:lite": lambda: create_estimator("mediapipe:lite", MIN_CONFIDENCE),
    "mediapipe:heavy": lambda: create_estimator("mediapipe:heavy", MIN_CONFIDENCE),
    "movenet": lambda: create_estimator("movenet", MIN_CONFIDENCE),
    "movenet upright": lambda: MoveNetEstimator(retry_turned=False),
    "mediapipe+movenet": lambda: create_estimator("mediapipe+movenet", MIN_CONFIDENCE),
    "mediapipe+movenet upright": lambda: RescuedEstimator(
        create_estimator("mediapipe", MIN_CONFIDENCE), lambda: MoveNetEstimator(retry_turned=False)
    ),
}


@dataclass
class Tally:
    frames: int = 0
    found: int = 0
    horizontal: int = 0
    agreement_of_diagonal: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    per_clip_found: dict[str, tuple[int, int]] = field(default_factory=dict)

    def row(self) -> dict[str, float | int | None]:
        agree = self.agreement_of_diagonal
        return {
            "frames": self.frames,
            "found_pct": 100.0 * self.found / max(self.frames, 1),
            "horizontal_pct": 100.0 * self.horizontal / max(self.frames, 1),
            "agreement_median_pct_of_diagonal": 100.0 * statistics.median(agree) if agree else None,
            "agreement_frames": len(agree),
            "cpu_ms_median": statistics.median(self.cpu_ms) if self.cpu_ms else 0.0,
            "cpu_ms_mean": statistics.fmean(self.cpu_ms) if self.cpu_ms else 0.0,
            "ms_median": statistics.median(self.ms) if self.ms else 0.0,
            "ms_mean": statistics.fmean(self.ms) if self.ms else 0.0,
        }


def trunk_from_vertical_deg(pose: Pose, image_wh: tuple[int, int]) -> float:
    """Angle of mid-hip -> mid-shoulder from the image's up direction, in degrees (x, y in image heights)."""
    lm = pose.landmarks_xyzv
    aspect = image_wh[0] / image_wh[1]
    hip = lm[list(HIPS), :2].mean(axis=0)
    shoulder = lm[list(SHOULDERS), :2].mean(axis=0)
    dx, dy = (shoulder[0] - hip[0]) * aspect, shoulder[1] - hip[1]
    return float(np.degrees(np.arctan2(abs(dx), -dy)))


def body_error_of_diagonal(ref: Pose, other: Pose, image_wh: tuple[int, int]) -> float:
    scale = np.asarray(image_wh, dtype=np.float64)
    a = ref.landmarks_xyzv[list(SHARED_BODY), :2] * scale
    b = other.landmarks_xyzv[list(SHARED_BODY), :2] * scale
    return float(np.linalg.norm(a - b, axis=1).mean() / np.hypot(*image_wh))


def after_landing_frames(path: Path, on_ground_s: float) -> tuple[list[Frame], int]:
    """The frames a pose job would pose from the chunk holding landing to the end, and the index
    of the first frame at or after landing."""
    with VideoFile(path) as video:
        frames = list(video.sampled_frames(FrameSampler(ANALYSIS_FPS).take, max_side=MAX_SIDE))
    first = next((i for i, f in enumerate(frames) if f.pts_s >= on_ground_s), len(frames))
    start = (frames[first].seq // CHUNK_FRAMES) * CHUNK_FRAMES if first < len(frames) else len(frames)
    kept = [f for f in frames if f.seq >= start]
    return kept, next((i for i, f in enumerate(kept) if f.pts_s >= on_ground_s), len(kept))


def pose_all(
    estimator: PoseEstimator, frames: list[Frame]
) -> tuple[list[tuple[Pose, ...]], list[float], list[float]]:
    """The poses of each frame, and each frame's wall and CPU milliseconds."""
    out, ms, cpu_ms = [], [], []
    for frame in frames:
        if frame.seq % CHUNK_FRAMES == 0 or not out:
            estimator.reset()
        started, cpu_started = time.perf_counter(), time.process_time()
        out.append(estimator.estimate(frame))
        ms.append(1000.0 * (time.perf_counter() - started))
        cpu_ms.append(1000.0 * (time.process_time() - cpu_started))
    return out, ms, cpu_ms


def run(media: Path, only: str | None, labels: list[str]) -> dict[str, Tally]:
    truth = load_truth(media / "ground_truth.json")
    clips = [t for rel, t in sorted(truth.items()) if t.fall and t.on_ground_s is not None]
    clips = [t for t in clips if not only or only in t.path]
    estimators = {label: BACKENDS[label]() for label in labels}
    tallies = {label: Tally() for label in labels}
    try:
        for clip in clips:
            frames, first = after_landing_frames(media / clip.path, float(clip.on_ground_s or 0.0))
            posed = {}
            for label, estimator in estimators.items():
                poses, ms, cpu_ms = pose_all(estimator, frames)
                posed[label] = poses[first:]
                tally = tallies[label]
                tally.ms.extend(ms)
                tally.cpu_ms.extend(cpu_ms)
            for label, poses in posed.items():
                tally = tallies[label]
                found = 0
                for frame, people in zip(frames[first:], poses, strict=True):
                    tally.frames += 1
                    found += bool(people)
                    wh = frame.resolution_wh
                    if any(trunk_from_vertical_deg(p, wh) > HORIZONTAL_DEG for p in people):
                        tally.horizontal += 1
                tally.found += found
                tally.per_clip_found[clip.path] = (found, len(poses))
                if label != REFERENCE and REFERENCE in posed:
                    for frame, ref, people in zip(frames[first:], posed[REFERENCE], poses, strict=True):
                        if ref and people:
                            wh = frame.resolution_wh
                            tally.agreement_of_diagonal.append(
                                min(body_error_of_diagonal(ref[0], p, wh) for p in people)
                            )
            print(
                f"{clip.path:70} "
                + " ".join(f"{label}={tallies[label].per_clip_found[clip.path][0]}" for label in labels)
                + f" of {len(frames) - first}",
                file=sys.stderr,
            )
    finally:
        for estimator in estimators.values():
            estimator.close()
    return tallies


def evaluate(spec: str, only: str | None) -> int:
    from analytics.evaluation import EvalReport, format_report
    from bench.posed import VARIANTS, PoseCache
    from bench.score_posed import analyse

    cache = PoseCache(backend=spec)
    truth = load_truth(cache.media / "ground_truth.json")
    try:
        scores = [
            analyse(cache, t, VARIANTS["base"], given=False)
            for rel, t in sorted(truth.items())
            if not only or only in rel
        ]
    finally:
        cache.close()
    print(f"analytics on {spec} poses (base variant, automatic recognition)")
    print(format_report(EvalReport(scores)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="clips whose path contains this")
    parser.add_argument("--backend", action="append", choices=sorted(BACKENDS), help="default: all")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--eval", metavar="SPEC", help="score the analytics on this backend's poses")
    args = parser.parse_args(argv)
    if args.eval:
        return evaluate(args.eval, args.only)
    labels = args.backend or list(BACKENDS)
    tallies = run(media_dir(), args.only, labels)
    if args.json:
        print(json.dumps({k: {**t.row(), "per_clip_found": t.per_clip_found} for k, t in tallies.items()}))
        return 0
    print(
        "| backend/model | frames | pose found | horizontal | agreement with full | CPU ms a frame (wall) |"
    )
    print("|---|---|---|---|---|---|")
    for label, tally in tallies.items():
        row = tally.row()
        agree = row["agreement_median_pct_of_diagonal"]
        agree_text = "-" if agree is None else f"{agree:.1f} % ({row['agreement_frames']} frames)"
        print(
            f"| {label} | {row['frames']} | {row['found_pct']:.0f} % | {row['horizontal_pct']:.0f} % | "
            f"{agree_text} | {row['cpu_ms_median']:.1f} ({row['ms_median']:.1f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `litert` backend against the `mediapipe` one (mp.solutions.pose) on real clips: the same
frames, one process, the same run.

Each clip is decoded once (10 fps, longer side 1280, as a pipeline samples it) and posed by both
backends, one after the other, which one goes first alternating from clip to clip. Posing is
as a pose job does it (the model reset every `--chunk-frames` frames, 32 for files) or, with
`--chunk-frames 0`, as a live session does (tracking never reset). Per clip and overall:

- frames with a person: by each backend, by both, by either; `both / either` is 1.0 when they
  find the person on exactly the same frames;
- landmark error: on the frames where both found someone, for each landmark mp.solutions gives a
  visibility of at least 0.5, the distance between the two backends' landmark in image
  fractions (x in widths, y in heights): median and 95th percentile over all such landmarks;
- ms a frame: CPU time of the whole process per `estimate` call (MediaPipe's graph threads
  count) and wall time, means over the clip, and litert's as a ratio of mediapipe's; for
  litert also how many frames ran the detector;
- the load average before and after (the machine is shared: wall times move with it, CPU
  times much less);
- start-up: in a fresh interpreter, seconds from importing pose.estimator to a built
  estimator (`import mediapipe` is in the mediapipe one), the median of three.

    .venv/bin/python -m bench.pose_backends [--clips exercise/a.mp4,falls/b.mp4] [--chunk-frames 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bench.common import media_dir
from bench.multi_pose import sampled_frames
from pipeline.frames import Frame
from pose.estimator import PoseEstimator, create_estimator
from pose.litert import LiteRtPoseEstimator
from pose.types import Pose

MIN_CONFIDENCE = 0.3  # the settings' default pose_min_confidence
CHUNK_FRAMES = 32  # a file's pose job
VISIBLE = 0.5  # a landmark counts where mp.solutions gives it at least this visibility
REFERENCE, CANDIDATE = "mediapipe", "litert"
# Exercise clips of each kind the analytics count, and falls of several sources (the live
# benchmark's clip among them).
DEFAULT_CLIPS = (
    "exercise/ex_squat_side_woman.mp4",
    "exercise/ex_jumping_jacks_gray.mp4",
    "exercise/ex_lunges_outdoor.mp4",
    "exercise/ex_pushup_garage_side.mp4",
    "exercise/ex_situps_home.mp4",
    "exercise/ex_curl_dumbbell_alternating.mp4",
    "falls/urfall_ds04_fall_while_walking.mp4",
    "falls/fall_home_phone_backward.mp4",
    "falls/le2i_office_163_fall_forward_mattress.mp4",
    "falls/fall_stock_warehouse_worker_slip_backward.mp4",
)


@dataclass
class Posed:
    """One backend's run over one clip's frames."""

    poses: list[tuple[Pose, ...]]
    cpu_s: float
    wall_s: float
    detector_frames: int | None = None


def pose_timed(estimator: PoseEstimator, frames: Sequence[Frame], chunk_frames: int) -> Posed:
    out, cpu, wall, detected = [], 0.0, 0.0, 0
    estimator.reset()
    for i, frame in enumerate(frames):
        if chunk_frames and i % chunk_frames == 0:
            estimator.reset()
        c0, w0 = time.process_time(), time.perf_counter()
        out.append(estimator.estimate(frame))
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        if isinstance(estimator, LiteRtPoseEstimator):
            detected += estimator.last_cost.detected
    return Posed(out, cpu, wall, detected if isinstance(estimator, LiteRtPoseEstimator) else None)


def landmark_errors(reference: list[tuple[Pose, ...]], candidate: list[tuple[Pose, ...]]) -> np.ndarray:
    """Per visible landmark of the frames where both found someone: the distance in image fractions."""
    errors = []
    for ref, cand in zip(reference, candidate, strict=True):
        if ref and cand:
            a, b = ref[0].landmarks_xyzv, cand[0].landmarks_xyzv
            visible = a[:, 3] >= VISIBLE
            errors.append(np.hypot(*(a[visible, :2] - b[visible, :2]).T))
    return np.concatenate(errors) if errors else np.zeros(0)


@dataclass
class ClipResult:
    clip: str
    frames: int
    found_mediapipe: int
    found_litert: int
    found_both: int
    found_either: int
    median_error: float | None
    p95_error: float | None
    mediapipe_cpu_ms: float
    litert_cpu_ms: float
    mediapipe_wall_ms: float
    litert_wall_ms: float
    litert_detector_frames: int | None


def compare_clip(
    clip: str, frames: Sequence[Frame], estimators: dict[str, PoseEstimator], first: str, chunk_frames: int
) -> ClipResult:
    order = [first] + [name for name in estimators if name != first]
    runs = {name: pose_timed(estimators[name], frames, chunk_frames) for name in order}
    ref, cand = runs[REFERENCE], runs[CANDIDATE]
    errors = landmark_errors(ref.poses, cand.poses)
    n = len(frames)
    return ClipResult(
        clip=clip,
        frames=n,
        found_mediapipe=sum(bool(p) for p in ref.poses),
        found_litert=sum(bool(p) for p in cand.poses),
        found_both=sum(bool(a) and bool(b) for a, b in zip(ref.poses, cand.poses, strict=True)),
        found_either=sum(bool(a) or bool(b) for a, b in zip(ref.poses, cand.poses, strict=True)),
        median_error=float(np.median(errors)) if errors.size else None,
        p95_error=float(np.percentile(errors, 95)) if errors.size else None,
        mediapipe_cpu_ms=1000 * ref.cpu_s / n,
        litert_cpu_ms=1000 * cand.cpu_s / n,
        mediapipe_wall_ms=1000 * ref.wall_s / n,
        litert_wall_ms=1000 * cand.wall_s / n,
        litert_detector_frames=cand.detector_frames,
    )


def startup_s(spec: str, runs: int = 3) -> float:
    """Seconds from importing pose.estimator to a built estimator, in a fresh interpreter: the
    median of `runs` (the first run of a cold machine also reads the files from disk)."""
    code = (
        "import time; t = time.perf_counter(); from pose.estimator import create_estimator; "
        f"e = create_estimator({spec!r}, {MIN_CONFIDENCE}); print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def summary(results: list[ClipResult]) -> dict[str, object]:
    frames = sum(r.frames for r in results)

    def per_frame(field: str) -> float:
        return sum(getattr(r, field) * r.frames for r in results) / frames

    cpu_mp, cpu_lr = per_frame("mediapipe_cpu_ms"), per_frame("litert_cpu_ms")
    wall_mp, wall_lr = per_frame("mediapipe_wall_ms"), per_frame("litert_wall_ms")
    either = sum(r.found_either for r in results)
    return {
        "frames": frames,
        "found_both_of_either": round(sum(r.found_both for r in results) / either, 4) if either else None,
        "median_error_of_clip_medians": statistics.median(
            r.median_error for r in results if r.median_error is not None
        ),
        "worst_clip_median_error": max(r.median_error for r in results if r.median_error is not None),
        "mediapipe_cpu_ms": round(cpu_mp, 2),
        "litert_cpu_ms": round(cpu_lr, 2),
        "litert_cpu_ratio": round(cpu_lr / cpu_mp, 3),
        "mediapipe_wall_ms": round(wall_mp, 2),
        "litert_wall_ms": round(wall_lr, 2),
        "litert_wall_ratio": round(wall_lr / wall_mp, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", default=",".join(DEFAULT_CLIPS))
    parser.add_argument("--chunk-frames", type=int, default=CHUNK_FRAMES, help="0: never reset (live)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    startup = {spec: round(startup_s(spec), 2) for spec in (CANDIDATE, REFERENCE)}
    estimators = {name: create_estimator(name, MIN_CONFIDENCE) for name in (REFERENCE, CANDIDATE)}
    media = media_dir()
    results = []
    for i, clip in enumerate(args.clips.split(",")):
        frames = sampled_frames(media / clip)
        # Warm both up on the clip's first frames (graph start-up, XNNPACK packing): not a frame's cost.
        for estimator in estimators.values():
            pose_timed(estimator, frames[:5], 0)
        first = REFERENCE if i % 2 == 0 else CANDIDATE
        result = compare_clip(clip, frames, estimators, first, args.chunk_frames)
        results.append(result)
        if not args.json:
            print(
                f"{clip}: {result.frames} frames, person mp {result.found_mediapipe} litert "
                f"{result.found_litert} both {result.found_both} either {result.found_either}; "
                f"landmark error median {100 * (result.median_error or 0):.3f} % p95 "
                f"{100 * (result.p95_error or 0):.3f} %; CPU ms/frame mp {result.mediapipe_cpu_ms:.1f} "
                f"litert {result.litert_cpu_ms:.1f} (detector on {result.litert_detector_frames}); "
                f"wall mp {result.mediapipe_wall_ms:.1f} litert {result.litert_wall_ms:.1f}",
                flush=True,
            )
    report = {
        "chunk_frames": args.chunk_frames,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "startup_s": startup,
        "overall": summary(results),
        "clips": [asdict(r) for r in results],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "clips"}, indent=2))


if __name__ == "__main__":
    main()

"""Live chunks and MediaPipe tracking: what a reset per chunk costs, and how far across a gap
tracking can continue (workers.context.TRACKING_MAX_GAP_S).

Frames of single-person clips sampled at 10 fps are cut into 3-frame chunks (a live chunk),
with `gap` frames skipped between chunks (chunks another worker posed). Two models pose the
same chunks: R resets at every chunk, C goes on tracking. For each gap: frames with a pose,
ms a frame for each, and how far C's landmarks are from R's (mean over the 33 landmarks, as a
fraction of the image diagonal). Gap 0 is the noise floor: uninterrupted tracking against a
fresh start; a gap where C stays at that floor is one tracking can cross.

    .venv/bin/python -m bench.tracking_gap [--gaps 0,3,5,6,9]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import media_dir
from bench.multi_pose import sampled_frames
from pose.estimator import MediaPipeEstimator

CLIPS = (
    "falls/urfall_ds04_fall_while_walking.mp4",
    "exercise/ex_squat_side_woman.mp4",
    "falls/fall_urfall_01_walk_fall_rgb.mp4",
    "activity/act_upfall_s1_walking_cam2.mp4",
    "falls/le2i_coffee_44_fall_forward_mattress.mp4",
)
CHUNK = 3
CONFIDENCE = 0.3  # the pipeline's default


def measure(media: Path, skip: int) -> dict[str, float]:
    fresh, tracking = MediaPipeEstimator(CONFIDENCE, CONFIDENCE), MediaPipeEstimator(CONFIDENCE, CONFIDENCE)
    frames_n = found_r = found_c = 0
    secs_r = secs_c = 0.0
    diffs: list[float] = []
    for clip in CLIPS:
        frames = sampled_frames(media / clip)
        fresh.reset()
        tracking.reset()
        for start in range(0, len(frames), CHUNK + skip):
            chunk = frames[start : start + CHUNK]
            t = time.perf_counter()
            fresh.reset()
            posed_r = [fresh.estimate(f) for f in chunk]
            secs_r += time.perf_counter() - t
            t = time.perf_counter()
            posed_c = [tracking.estimate(f) for f in chunk]
            secs_c += time.perf_counter() - t
            for frame, r, c in zip(chunk, posed_r, posed_c, strict=True):
                frames_n += 1
                found_r += bool(r)
                found_c += bool(c)
                if r and c:
                    h, w = frame.rgb.shape[:2]
                    a, b = r[0].landmarks_xyzv, c[0].landmarks_xyzv
                    px = np.hypot((a[:, 0] - b[:, 0]) * w, (a[:, 1] - b[:, 1]) * h)
                    diffs.append(float(px.mean()) / float(np.hypot(w, h)))
    fresh.close()
    tracking.close()
    d = np.array(diffs)
    return {
        "gap_s": round((skip + 1) / 10, 1),
        "frames": frames_n,
        "with_pose_reset": found_r,
        "with_pose_tracking": found_c,
        "ms_per_frame_reset": round(secs_r / frames_n * 1000, 1),
        "ms_per_frame_tracking": round(secs_c / frames_n * 1000, 1),
        "mean_diff_pct_diag": round(float(d.mean()) * 100, 2),
        "p95_diff_pct_diag": round(float(np.percentile(d, 95)) * 100, 2),
        "frames_over_5pct_diag_pct": round(float(np.mean(d > 0.05)) * 100, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gaps", default="0,3,5,6,9", help="frames skipped between chunks (at 10 fps)")
    args = parser.parse_args()
    media = media_dir()
    for skip in (int(g) for g in args.gaps.split(",")):
        print(measure(media, skip), flush=True)


if __name__ == "__main__":
    main()

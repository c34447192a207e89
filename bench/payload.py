"""Frame payload encodings compared on real clips: bytes per frame, CPU to encode and decode, effect on poses.

    .venv/bin/python -m bench.payload [--frames 60]

For each clip size class, raw (shape header + RGB bytes) against JPEG at the configured
quality: payload bytes, encode ms (ingester side) and decode ms (worker side), the Redis
memory a window of 256 frames would take, and the mean landmark shift JPEG
causes (fraction of the image diagonal) with MediaPipe run on both versions of each frame.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import media_dir
from pipeline import payload
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from posepipe.settings import FrameEncoding, Settings
from workers.estimator import MediaPipeEstimator

CLIPS = (
    "falls/urfall_ds04_fall_while_walking.mp4",  # 320x240
    "adl_negatives/adl_upfall_s1_pick_up_object_cam2.mp4",  # 640x480
    "exercise/ex_pushup_side_full_then_knee.mp4",  # 1280x720
)


def measure(clip: Path, frames: int, settings: Settings, estimator: MediaPipeEstimator) -> dict[str, float]:
    with VideoFile(clip) as video:
        sample = []
        for f in video.sampled_frames(
            FrameSampler(settings.analysis_fps).take, max_side=settings.frame_max_side
        ):
            sample.append(f)
            if len(sample) >= frames:
                break
    out: dict[str, float] = {"frames": len(sample)}
    decoded: dict[FrameEncoding, list] = {}
    for enc in FrameEncoding:
        t0 = time.perf_counter()
        blobs = [payload.encode(f, enc, settings.jpeg_quality) for f in sample]
        t1 = time.perf_counter()
        decoded[enc] = [payload.decode(b) for b in blobs]
        t2 = time.perf_counter()
        out[f"{enc.value}_kb"] = float(np.mean([len(b) for b in blobs])) / 1e3
        out[f"{enc.value}_encode_ms"] = (t1 - t0) / len(sample) * 1e3
        out[f"{enc.value}_decode_ms"] = (t2 - t1) / len(sample) * 1e3
    shifts = []
    w, h = sample[0].resolution_wh
    diag = float(np.hypot(w, h))
    for raw, jpeg in zip(decoded[FrameEncoding.RAW], decoded[FrameEncoding.JPEG], strict=True):
        estimator.reset()
        a = estimator.estimate(raw)
        estimator.reset()
        b = estimator.estimate(jpeg)
        if a and b:
            d = (a[0].landmarks_xyzv[:, :2] - b[0].landmarks_xyzv[:, :2]) * (w, h)
            shifts.append(float(np.linalg.norm(d, axis=1).mean()) / diag)
    out["jpeg_landmark_shift_pct_diag"] = 100 * float(np.mean(shifts)) if shifts else float("nan")
    out["resolution"] = f"{w}x{h}"  # type: ignore[assignment]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    media = media_dir()
    settings = Settings(redis_url=None, log_level="WARNING")
    estimator = MediaPipeEstimator(settings.pose_min_confidence, settings.pose_min_confidence)
    window = 256
    print(f"window of {window} frames, JPEG quality {settings.jpeg_quality}")
    print(
        f"{'resolution':>10} {'raw KB':>8} {'raw enc+dec ms':>15} {'jpeg KB':>8} {'jpeg enc ms':>12} "
        f"{'jpeg dec ms':>12} {'window raw MB':>14} {'window jpeg MB':>15} {'jpeg pose shift %diag':>22}"
    )
    for clip in CLIPS:
        r = measure(media / clip, args.frames, settings, estimator)
        print(
            f"{r['resolution']:>10} {r['raw_kb']:>8.0f} {r['raw_encode_ms'] + r['raw_decode_ms']:>15.2f} "
            f"{r['jpeg_kb']:>8.1f} {r['jpeg_encode_ms']:>12.2f} {r['jpeg_decode_ms']:>12.2f} "
            f"{r['raw_kb'] * window / 1e3:>14.0f} "
            f"{r['jpeg_kb'] * window / 1e3:>15.1f} {r['jpeg_landmark_shift_pct_diag']:>22.3f}"
        )


if __name__ == "__main__":
    main()

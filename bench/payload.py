"""Frame payload encodings compared on real clips: bytes per frame, CPU to encode and decode, effect on poses.

    .venv/bin/python -m bench.payload [--frames 60]

For each clip size class, yuv420 (shape header + the decoder's YUV 4:2:0 planes), raw (RGB
bytes) and JPEG at the configured quality: payload bytes, the ingester's ms from a decoded
picture to bytes (colour conversion included), the worker's ms from bytes to an RGB frame, the
Redis memory a window of 256 frames would take, and the effect on poses: whether yuv420 gives
the RGB pixels raw does, and the mean landmark shift JPEG causes (fraction of the image
diagonal) with MediaPipe run on both versions of each frame.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import media_dir
from pipeline import payload
from pipeline.frames import Frame, PlanarFrame
from pipeline.payload import FrameEncoding
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose.estimator import MediaPipeEstimator
from posepipe.settings import Settings

CLIPS = (
    "falls/urfall_ds04_fall_while_walking.mp4",  # 320x240
    "adl_negatives/adl_upfall_s1_pick_up_object_cam2.mp4",  # 640x480
    "exercise/ex_pushup_side_full_then_knee.mp4",  # 1280x720
)


def measure(clip: Path, frames: int, settings: Settings, estimator: MediaPipeEstimator) -> dict[str, float]:
    with VideoFile(clip) as video:
        take = FrameSampler(settings.analysis_fps).take
        sample = [d for d in video.frames() if take(d.pts_s)][:frames]
        rotation = video.info.rotation_deg
    source_format = sample[0].av_frame.format.name
    out: dict[str, float] = {"frames": len(sample)}
    decoded: dict[FrameEncoding, list[Frame]] = {}
    for enc in FrameEncoding:
        # The ingester's whole cost: from the decoded picture to bytes (conversion included).
        picture = PlanarFrame if enc is FrameEncoding.YUV420 else Frame
        t0 = time.perf_counter()
        blobs = [
            payload.encode(
                picture.from_av(
                    d.av_frame, seq=i, pts_s=d.pts_s, rotation_deg=rotation, max_side=settings.frame_max_side
                ),
                enc,
                settings.jpeg_quality,
            )
            for i, d in enumerate(sample)
        ]
        t1 = time.perf_counter()
        decoded[enc] = [payload.decode(b) for b in blobs]
        t2 = time.perf_counter()
        out[f"{enc.value}_kb"] = float(np.mean([len(b) for b in blobs])) / 1e3
        out[f"{enc.value}_encode_ms"] = (t1 - t0) / len(sample) * 1e3
        out[f"{enc.value}_decode_ms"] = (t2 - t1) / len(sample) * 1e3
    raw = decoded[FrameEncoding.RAW]
    # 0 for a yuv420p source; others are converted to 4:2:0 in the ingester, which rounds.
    out["yuv420_mean_rgb_diff"] = float(
        np.mean(
            [
                np.abs(a.rgb.astype(int) - b.rgb).mean()
                for a, b in zip(raw, decoded[FrameEncoding.YUV420], strict=True)
            ]
        )
    )
    w, h = raw[0].resolution_wh
    for enc in (FrameEncoding.YUV420, FrameEncoding.JPEG):
        out[f"{enc.value}_landmark_shift_pct_diag"] = landmark_shift_pct(raw, decoded[enc], estimator)
    out["resolution"] = f"{w}x{h}"  # type: ignore[assignment]
    out["source_format"] = source_format  # type: ignore[assignment]
    return out


def landmark_shift_pct(reference: list[Frame], other: list[Frame], estimator: MediaPipeEstimator) -> float:
    """Mean landmark distance between poses of the same frames, % of the image diagonal."""
    w, h = reference[0].resolution_wh
    shifts = []
    for a_frame, b_frame in zip(reference, other, strict=True):
        estimator.reset()
        a = estimator.estimate(a_frame)
        estimator.reset()
        b = estimator.estimate(b_frame)
        if a and b:
            d = (a[0].landmarks_xyzv[:, :2] - b[0].landmarks_xyzv[:, :2]) * (w, h)
            shifts.append(float(np.linalg.norm(d, axis=1).mean()) / float(np.hypot(w, h)))
    return 100 * float(np.mean(shifts)) if shifts else float("nan")


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
        f"{'resolution':>10} {'encoding':>8} {'KB':>8} {'ingester ms':>12} {'worker ms':>10} "
        f"{'window MB':>10} {'poses':>22}"
    )
    for clip in CLIPS:
        r = measure(media / clip, args.frames, settings, estimator)
        effect = {
            FrameEncoding.YUV420: "same RGB"
            if r["yuv420_mean_rgb_diff"] == 0
            else f"{r['source_format']}: shift {r['yuv420_landmark_shift_pct_diag']:.3f} % diag",
            FrameEncoding.RAW: "reference",
            FrameEncoding.JPEG: f"shift {r['jpeg_landmark_shift_pct_diag']:.3f} % diag",
        }
        for enc in FrameEncoding:
            kb = r[f"{enc.value}_kb"]
            print(
                f"{r['resolution']:>10} {enc.value:>8} {kb:>8.1f} {r[f'{enc.value}_encode_ms']:>12.2f} "
                f"{r[f'{enc.value}_decode_ms']:>10.2f} {kb * window / 1e3:>10.1f} {effect[enc]:>22}"
            )


if __name__ == "__main__":
    main()

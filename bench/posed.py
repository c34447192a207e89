"""Shared clips posed once and kept on disk, so analytics can be re-scored in seconds.

Owns the variants the robustness sweep asks for (another analysis rate, a mirror, a crop
around the person) and the cache of their poses. The poses are made exactly as a pipeline
chunk makes them (sampled at the analysis rate, carried as YUV 4:2:0, the model reset every 32
frames), so scoring
analytics on them is scoring what `posepipe analyze` would store; the cache key holds the
clip's bytes, the variant, the backend and the model's confidence.

    python -m bench.posed                  # pose every clip of ground_truth.json at 10 fps
    python -m bench.posed --variant mirror # ... or a variant: fps7.5, fps15, mirror, crop80, small50
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytics.evaluation import load_truth
from analytics.fitting import Fit, FitCheck, TrackedClip, check_fit
from bench.common import media_dir
from pipeline.frames import Frame
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose import pickles
from pose.estimator import PoseEstimator, create_estimator, pose_spec
from pose.types import FramePoses
from posepipe.evaluate import crop_origin
from posepipe.settings import Settings

CHUNK_FRAMES = 32
# 2: frames travel as YUV 4:2:0 and are converted as a worker converts them (the default encoding).
# 3: mediapipe+movenet re-finds a lost person on a zoomed window (pose.zoom).
CACHE_FORMAT = 3


@dataclass(frozen=True)
class Variant:
    """How a clip is changed before posing: analysis rate, a left-right mirror, a crop."""

    name: str
    fps: float = 10.0
    mirror: bool = False
    # Side of the crop window as a fraction of the frame's, centred on the person (0: none).
    crop: float = 0.0
    # The picture shrunk by this whole factor and centred on black at the frame's size (1: none):
    # the same person smaller in the frame, as a camera farther away or a pillarboxed phone
    # video shows them. Not one of the sweep's variants (the issues define that sweep).
    shrink: int = 1

    @property
    def key(self) -> str:
        """The variant's part of the cache key: the same as before `shrink` existed when it is 1,
        so the poses cached then stay valid."""
        base = f"Variant(name={self.name!r}, fps={self.fps!r}, mirror={self.mirror!r}, crop={self.crop!r}"
        return base + (f", shrink={self.shrink})" if self.shrink != 1 else ")")


VARIANTS = {
    v.name: v
    for v in (
        Variant("base"),
        Variant("fps7.5", fps=7.5),
        Variant("fps15", fps=15.0),
        Variant("mirror", mirror=True),
        Variant("crop80", crop=0.8),
        Variant("small50", shrink=2),
    )
}
# The robustness sweep of the issues: each clip at another rate, mirrored, cropped.
SWEEP = ("base", "fps7.5", "fps15", "mirror", "crop80")


def default_pose_spec() -> str:
    """The pose spec `posepipe analyze` uses when not told otherwise."""
    fields = Settings.model_fields
    return pose_spec(fields["pose_backend"].default, fields["pose_model"].default)


def cache_dir() -> Path:
    # Not a POSEPIPE_ name: settings refuse POSEPIPE_ variables they do not know.
    return Path(os.environ.get("BENCH_POSE_CACHE", Path.home() / ".cache" / "posepipe" / "poses"))


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class PoseCache:
    def __init__(
        self, media: Path | None = None, root: Path | None = None, backend: str | None = None
    ) -> None:
        self.media = media or media_dir()
        self.root = root or cache_dir()
        self.backend = backend or default_pose_spec()
        self.min_confidence = Settings.model_fields["pose_min_confidence"].default
        self.max_side = Settings.model_fields["frame_max_side"].default
        self._estimator: PoseEstimator | None = None

    def _path(self, rel: str, variant: Variant) -> Path:
        digest_of_file = _file_digest(self.media / rel)
        key = f"{CACHE_FORMAT}|{digest_of_file}|{variant.key}|{self.backend}|{self.min_confidence}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        return self.root / f"{Path(rel).stem}.{variant.name}.{digest}.pkl"

    def is_cached(self, rel: str, variant: Variant) -> bool:
        return self._path(rel, variant).is_file()

    def poses(self, rel: str, variant: Variant = VARIANTS["base"]) -> list[FramePoses]:
        path = self._path(rel, variant)
        if path.is_file():
            return pickles.loads(path.read_bytes())
        box = self._crop_box(rel, variant.crop) if variant.crop else None
        frames = list(self._pose(rel, variant, box))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(frames))
        tmp.replace(path)
        return frames

    def _crop_box(self, rel: str, side: float) -> tuple[float, float, float, float]:
        """The eval sweep's window (posepipe.evaluate.crop_origin) on the clip's base-rate poses."""
        x0, y0 = crop_origin(self.poses(rel), side)
        return x0, y0, x0 + side, y0 + side

    def _pose(
        self, rel: str, variant: Variant, box: tuple[float, float, float, float] | None
    ) -> Iterator[FramePoses]:
        if self._estimator is None:
            self._estimator = create_estimator(self.backend, self.min_confidence)
        estimator = self._estimator
        with VideoFile(self.media / rel) as video:
            # The planar path, as the pipeline's default encoding takes it: a 4:2:2 or 4:4:4 clip
            # is subsampled at ingest, and that changes the pose a little.
            for planar in video.sampled_planar(FrameSampler(variant.fps).take, max_side=self.max_side):
                frame = _transformed(planar.to_frame(), variant.mirror, box, variant.shrink)
                if frame.seq % CHUNK_FRAMES == 0:
                    estimator.reset()
                yield FramePoses.of(frame.seq, frame.pts_s, frame.resolution_wh, estimator.estimate(frame))

    def close(self) -> None:
        if self._estimator is not None:
            self._estimator.close()


def _transformed(
    frame: Frame, mirror: bool, box: tuple[float, float, float, float] | None, shrink: int = 1
) -> Frame:
    rgb = frame.rgb
    if box is not None:
        h, w = rgb.shape[:2]
        rgb = rgb[int(box[1] * h) : int(box[3] * h), int(box[0] * w) : int(box[2] * w)]
    if mirror:
        rgb = rgb[:, ::-1]
    if shrink > 1:
        rgb = _shrunk_on_black(rgb, shrink)
    if rgb is frame.rgb:
        return frame
    return Frame(seq=frame.seq, pts_s=frame.pts_s, rgb=np.ascontiguousarray(rgb))


def _shrunk_on_black(rgb: np.ndarray, factor: int) -> np.ndarray:
    """`rgb` made `factor` times smaller by averaging factor x factor blocks (a box filter, so
    no aliasing a camera would not make), centred on a black frame of the original size."""
    h, w = rgb.shape[:2]
    sh, sw = h // factor, w // factor
    blocks = rgb[: sh * factor, : sw * factor].reshape(sh, factor, sw, factor, 3)
    small = blocks.mean(axis=(1, 3)).round().astype(np.uint8)
    out = np.zeros_like(rgb)
    y0, x0 = (h - sh) // 2, (w - sw) // 2
    out[y0 : y0 + sh, x0 : x0 + sw] = small
    return out


def fit_check(cache: PoseCache, variant: Variant, fit: Fit, only: str | None = None) -> FitCheck:
    """`fit` made on the cached poses of every labelled clip (or those whose path has `only`)
    and again leaving one source out (analytics.fitting, as `posepipe eval` does it on the
    poses it stored). Clips not cached are posed first."""
    clips = []
    for rel, truth in sorted(load_truth(cache.media / "ground_truth.json").items()):
        if only and only not in rel:
            continue
        frames = cache.poses(rel, variant)
        clips.append(TrackedClip.track(truth, frames, frames[-1].pts_s if frames else 0.0))
    return check_fit(fit, clips, workers=os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="default: base")
    parser.add_argument("--only", help="clips whose path contains this")
    parser.add_argument("--backend", help="pose spec (default: the settings' default)")
    args = parser.parse_args(argv)
    cache = PoseCache(backend=args.backend)
    truth = load_truth(cache.media / "ground_truth.json")
    try:
        for name in args.variant or ["base"]:
            for rel in sorted(truth):
                if args.only and args.only not in rel:
                    continue
                frames = cache.poses(rel, VARIANTS[name])
                seen = sum(1 for f in frames if f.poses)
                print(f"{name:7} {rel:75} {len(frames):4} frames, {seen:4} with a person", file=sys.stderr)
    finally:
        cache.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`posepipe eval`: analyse every labelled clip with the normal pipeline and score the stored events.

Also owns the robustness sweep: each clip analysed again at another rate, mirrored, and cropped
around the person (the variants written by ffmpeg, then analysed like any file), with the
verdicts compared against the clip's own first run. Scoring itself is analytics.evaluation's.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.config import AnalyticsConfig
from analytics.engine import replay
from analytics.evaluation import ClipScore, ClipTruth, EvalReport, given_rep_count, load_truth, score_clip
from analytics.events import Exercise
from analytics.fitting import FITS, TrackedClip, check_fit
from analytics.reps.baseline import tutorial_count_clip
from pose.types import FramePoses
from posepipe import analyze as analysis
from posepipe.services import Services
from storage import events as stored_events
from storage import poses as stored_poses
from storage.models import Video, VideoStatus

# A landmark counts toward the person's box when the model is this sure it is in view.
CROP_VISIBILITY = 0.5


@dataclass(frozen=True)
class Variant:
    """One way of changing a clip for the sweep: another analysis rate, a mirror, a crop."""

    name: str
    fps: float | None = None  # None: the run's own rate
    mirror: bool = False
    crop: float = 0.0  # the window's side as a fraction of the frame's, centred on the person

    @property
    def rewrites_file(self) -> bool:
        return self.mirror or self.crop > 0


# The 7.5, 10 and 15 fps: 10 fps is the default run itself, the base of the comparison.
SWEEP = (
    Variant("7.5 fps", fps=7.5),
    Variant("15 fps", fps=15.0),
    Variant("mirror", mirror=True),
    Variant("crop 80 %", crop=0.8),
)


@dataclass(frozen=True)
class SweepRun:
    path: str
    variant: str
    base: str
    verdict: str

    @property
    def changed(self) -> bool:
        return self.verdict != self.base


@dataclass
class SweepReport:
    runs: list[SweepRun]

    @property
    def changed(self) -> list[SweepRun]:
        return [r for r in self.runs if r.changed]

    @property
    def changed_fraction(self) -> float:
        return len(self.changed) / len(self.runs) if self.runs else 0.0

    def format(self) -> str:
        lines = [f"{'clip':70} {'variant':10} {'first run':>16} {'variant run':>16}"]
        lines += [f"{r.path:70} {r.variant:10} {r.base:>16} {r.verdict:>16}" for r in self.changed]
        lines.append(
            f"sweep: {len(self.changed)} of {len(self.runs)} runs changed their verdict "
            f"({100 * self.changed_fraction:.1f} %)"
        )
        return "\n".join(lines)


def verdict(score: ClipScore) -> str:
    """What a run concluded about a clip, in the terms the clip is scored in."""
    if score.expected_reps is not None:
        return f"{score.counted_reps} reps"
    if score.fall_expected:
        return "fall found" if score.fall_found else "fall missed"
    return f"{score.false_falls} false falls"


def evaluate(
    services: Services,
    media_dir: Path,
    truth_path: Path,
    workers: int | None = None,
    only: str | None = None,
    check_fits: bool = True,
) -> EvalReport:
    """Analyse and score every labelled clip; with `check_fits`, also refit the numbers fitted
    from clips (analytics.fitting) on the stored poses, leaving one source out at a time."""
    truth = _truth(media_dir, truth_path, only)
    options = analysis.AnalyzeOptions(fps=services.settings.analysis_fps, workers=workers)
    tracked: list[TrackedClip] | None = [] if check_fits else None
    report = EvalReport(
        _run(services, {rel: (media_dir / rel, t) for rel, t in truth.items()}, options, tracked)
    )
    if tracked:
        processes = workers or os.cpu_count() or 1
        report.fit_checks = [
            check_fit(fit, tracked, processes) for fit in FITS if any(fit.applies(c.truth) for c in tracked)
        ]
    return report


def sweep(
    services: Services,
    media_dir: Path,
    truth_path: Path,
    report: EvalReport,
    variants: Sequence[Variant] = SWEEP,
    workers: int | None = None,
    only: str | None = None,
    one_variant_each: bool = False,
) -> SweepReport:
    """Run each clip again under `variants` and compare its verdict with `report`'s.

    `one_variant_each` gives each clip one variant in turn (by sorted path): every clip and every
    variant are exercised at the cost of one more pass, which is what the test suite can afford.
    """
    truth = _truth(media_dir, truth_path, only)
    base = {c.path: verdict(c) for c in report.clips}
    plans: dict[str, list[tuple[str, Variant]]] = {}
    for i, rel in enumerate(sorted(truth)):
        chosen = [variants[i % len(variants)]] if one_variant_each else list(variants)
        for variant in chosen:
            plans.setdefault(variant.name, []).append((rel, variant))
    runs: list[SweepRun] = []
    with tempfile.TemporaryDirectory(prefix="posepipe-sweep-") as tmp:
        for name, clips in plans.items():
            variant = clips[0][1]
            fps = variant.fps or services.settings.analysis_fps
            options = analysis.AnalyzeOptions(fps=fps, workers=workers)
            inputs = {
                rel: (_variant_file(services, media_dir / rel, variant, Path(tmp)), truth[rel])
                for rel, _ in clips
            }
            for score in _run(services, inputs, options):
                runs.append(SweepRun(score.path, name, base[score.path], verdict(score)))
    return SweepReport(sorted(runs, key=lambda r: (r.path, r.variant)))


def _truth(media_dir: Path, truth_path: Path, only: str | None) -> dict[str, ClipTruth]:
    truth = {rel: t for rel, t in load_truth(truth_path).items() if not only or only in rel}
    missing = [rel for rel in truth if not (media_dir / rel).is_file()]
    if missing:
        raise FileNotFoundError(f"clips named in {truth_path} are missing: {', '.join(missing[:5])}")
    return truth


def _run(
    services: Services,
    inputs: dict[str, tuple[Path, ClipTruth]],
    options: analysis.AnalyzeOptions,
    tracked: list[TrackedClip] | None = None,
) -> list[ClipScore]:
    """Analyse the inputs and score each; `tracked`, when given, receives each clip's stored poses
    as the tracker follows them (for analytics.fitting)."""
    targets = {rel: analysis.plan(services, str(path), options) for rel, (path, _) in sorted(inputs.items())}
    analysis.run(services, list(targets.values()), options)
    scores = []
    with services.db.session() as session:
        for rel, target in targets.items():
            truth = inputs[rel][1]
            video = session.get(Video, target.video_id) if target.video_id is not None else None
            if video is None or video.status.value != "done":
                raise RuntimeError(f"{rel}: analysis failed: {video.error if video else target.error}")
            found = [stored_events.to_event(r) for r in stored_events.list_events(session, video_id=video.id)]
            score = score_clip(truth, found, video.duration_s or 0.0)
            frames = (
                _stored_frames(session, video) if truth.exercise is not None or tracked is not None else []
            )
            if tracked is not None:
                tracked.append(TrackedClip.track(truth, frames, score.duration_s))
            if truth.exercise is not None:
                # The exercise given: the same stored poses through an engine told the exercise.
                exercise = Exercise(truth.exercise)
                score.given_reps = given_rep_count(truth, replay(frames, AnalyticsConfig(exercise=exercise)))
                # The yardstick of issue 25: a tutorial's one-angle counter told the exercise.
                score.baseline_reps = tutorial_count_clip(frames, exercise)
            scores.append(score)
    return scores


def _stored_frames(session: Session, video: Video) -> list[FramePoses]:
    resolution = (video.width or 1, video.height or 1)
    return stored_poses.read_frames(session, video.id, 0, (video.frames_total or 0) + 1, resolution)


def _variant_file(services: Services, src: Path, variant: Variant, tmp: Path) -> Path:
    """The clip as the variant sees it: the file itself, or a mirrored or cropped copy."""
    if not variant.rewrites_file:
        return src
    filters = []
    if variant.crop:
        x0, y0 = _crop_origin(services, src, variant.crop)
        side = variant.crop
        filters.append(f"crop=trunc(iw*{side}/2)*2:trunc(ih*{side}/2)*2:trunc(iw*{x0}):trunc(ih*{y0})")
    if variant.mirror:
        filters.append("hflip")
    dst = tmp / variant.name.replace(" ", "_").replace("%", "pct") / src.name
    dst = dst.with_suffix(".mp4")
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", ",".join(filters), "-an",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p", str(dst)],
        check=True,
    )  # fmt: skip
    return dst


def _crop_origin(services: Services, src: Path, side: float) -> tuple[float, float]:
    """Top-left corner (fractions) of a `side` window centred on everyone the first run saw."""
    sha256, _ = analysis.hash_file(src)
    with services.db.session() as session:
        video = session.scalars(
            select(Video).where(Video.sha256 == sha256, Video.status == VideoStatus.DONE).limit(1)
        ).first()
        frames = _stored_frames(session, video) if video is not None else []
    return crop_origin(frames, side)


def crop_origin(frames: Sequence[FramePoses], side: float) -> tuple[float, float]:
    """Top-left corner (fractions of the frame) of a window `side` of the frame's width and
    height, centred on every landmark seen in `frames` and slid to stay inside the frame."""
    xs: list[float] = []
    ys: list[float] = []
    for frame in frames:
        for pose in frame.poses:
            lm = pose.landmarks_xyzv
            seen = lm[:, 3] >= CROP_VISIBILITY
            xs.extend(lm[seen, 0].tolist())
            ys.extend(lm[seen, 1].tolist())
    cx = float(np.clip((min(xs) + max(xs)) / 2, 0, 1)) if xs else 0.5
    cy = float(np.clip((min(ys) + max(ys)) / 2, 0, 1)) if ys else 0.5
    return round(min(max(cx - side / 2, 0.0), 1.0 - side), 4), round(
        min(max(cy - side / 2, 0.0), 1.0 - side), 4
    )

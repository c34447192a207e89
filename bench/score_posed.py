"""Score the analytics on cached poses (bench.posed): the whole shared set in seconds, per variant.

python -m bench.score_posed                      # automatic recognition, base variant
python -m bench.score_posed --given              # the labelled exercise given
python -m bench.score_posed --variant mirror --only falls/
python -m bench.score_posed --reps               # exercise clips: recognised, given, tutorial baseline
python -m bench.score_posed --baseline           # the tutorial counter alone
python -m bench.score_posed --sweep              # how often a count changes over the variants
python -m bench.score_posed --tempo 0.5,0.7,1.5  # the clips' motions done faster or slower (below)
python -m bench.score_posed --loso               # the repetition zones fitted leaving one source out
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from analytics.config import AnalyticsConfig
from analytics.engine import replay
from analytics.evaluation import ClipScore, ClipTruth, EvalReport, format_report, load_truth, score_clip
from analytics.events import Event, EventType, Exercise, rep_counts
from analytics.fitting import REP_FIT
from analytics.reps.baseline import tutorial_count_clip
from bench.posed import SWEEP, VARIANTS, PoseCache, Variant, fit_check
from pose.types import FramePoses


def run_events(frames: Sequence[FramePoses], exercise: Exercise | None) -> list[Event]:
    return replay(frames, AnalyticsConfig(exercise=exercise))


def analyse(cache: PoseCache, truth: ClipTruth, variant: Variant, given: bool) -> ClipScore:
    frames = cache.poses(truth.path, variant)
    exercise = Exercise(truth.exercise) if given and truth.exercise else None
    events = run_events(frames, exercise)
    duration = frames[-1].pts_s if frames else 0.0
    return score_clip(truth, events, duration)


@dataclass(frozen=True)
class RepRow:
    """One exercise clip: the label and what each counter says."""

    path: str
    source: str
    exercise: str
    expected: int
    auto: int  # reps of the labelled exercise, recognised automatically
    named: str  # the exercise with the most reps in automatic mode ("-" when none)
    given: int
    baseline: int


def rep_row(cache: PoseCache, truth: ClipTruth, source: str, variant: Variant) -> RepRow:
    return rep_row_of(cache.poses(truth.path, variant), truth, source)


def rep_row_of(frames: Sequence[FramePoses], truth: ClipTruth, source: str) -> RepRow:
    assert truth.exercise is not None and truth.reps is not None
    exercise = Exercise(truth.exercise)
    auto = rep_counts(run_events(frames, None))
    named = max(auto, key=lambda e: auto[e]) if auto else "-"
    given = rep_counts(e for e in run_events(frames, exercise) if e.type == EventType.REP)
    return RepRow(
        truth.path, source, truth.exercise, truth.reps, auto.get(truth.exercise, 0), named,
        given.get(truth.exercise, 0), tutorial_count_clip(frames, exercise),
    )  # fmt: skip


def _measures(name: str, rows: Sequence[RepRow], counts: Sequence[int], named: bool) -> str:
    n = len(rows)
    errors = [abs(c - r.expected) for r, c in zip(rows, counts, strict=True)]
    exact = sum(1 for e in errors if e == 0)
    within = sum(1 for e in errors if e <= 1)
    line = (
        f"{name:34} exact {exact:2}/{n} ({100 * exact / n:3.0f} %)  MAE {sum(errors) / n:4.2f}  "
        f"off by <= 1 {within:2}/{n} ({100 * within / n:3.0f} %)"
    )
    if named:
        right = sum(1 for r in rows if r.named == r.exercise)
        line += f"  named right {right:2}/{n} ({100 * right / n:3.0f} %)"
    return line


def format_reps(rows: Sequence[RepRow]) -> str:
    lines = [f"{'clip':66} {'label':>5} {'auto':>4} {'named':>12} {'given':>5} {'tutor':>5}"]
    for r in rows:
        named = r.named if r.named != r.exercise else "="
        name = r.path.split("/")[-1][:66]
        lines.append(f"{name:66} {r.expected:5} {r.auto:4} {named:>12} {r.given:5} {r.baseline:5}")
    lines.append("")
    lines.append(_measures("posepipe, recognised", rows, [r.auto for r in rows], named=True))
    lines.append(_measures("posepipe, exercise given", rows, [r.given for r in rows], named=False))
    lines.append(_measures("tutorial counter, exercise given", rows, [r.baseline for r in rows], named=False))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="base", choices=sorted(VARIANTS))
    parser.add_argument("--only", help="clips whose path contains this")
    parser.add_argument("--given", action="store_true", help="give the labelled exercise")
    parser.add_argument("--reps", action="store_true", help="exercise clips: recognised, given, baseline")
    parser.add_argument("--baseline", action="store_true", help="the tutorial counter, told the exercise")
    parser.add_argument("--sweep", action="store_true", help="count changes over the cached variants")
    parser.add_argument(
        "--loso",
        action="store_true",
        help="fit the repetition zones leaving one source out (analytics.fitting)",
    )
    parser.add_argument(
        "--tempo",
        help="comma-separated time factors: every exercise clip's poses with their times scaled "
        "(0.5: twice as fast), at the same samples a second",
    )
    parser.add_argument("--backend", help="pose spec (default: the settings' default)")
    args = parser.parse_args(argv)
    cache = PoseCache(backend=args.backend)
    if args.loso:
        print("\n".join(fit_check(cache, VARIANTS[args.variant], REP_FIT, args.only).lines()))
        return 0
    raw = load_truth(cache.media / "ground_truth.json")
    sources = {
        k: str(v.get("source", k))
        for k, v in json.loads((cache.media / "ground_truth.json").read_text()).items()
    }
    truth = {rel: t for rel, t in sorted(raw.items()) if not args.only or args.only in rel}
    exercise_clips = [t for t in truth.values() if t.exercise and t.reps is not None]
    try:
        if args.sweep:
            print(format_sweep(cache, exercise_clips, sources))
            print(format_false_reps(cache, [t for t in truth.values() if not t.exercise]))
        elif args.tempo:
            factors = [float(f) for f in args.tempo.split(",")]
            print(format_tempo(cache, exercise_clips, sources, factors))
        elif args.reps or args.baseline:
            rows = [rep_row(cache, t, sources[t.path], VARIANTS[args.variant]) for t in exercise_clips]
            if args.baseline:
                print(_measures("tutorial counter, exercise given", rows, [r.baseline for r in rows], False))
            else:
                print(format_reps(rows))
        else:
            scores = [analyse(cache, t, VARIANTS[args.variant], args.given) for t in truth.values()]
            print(format_report(EvalReport(scores)))
    finally:
        cache.close()
    return 0


def format_sweep(cache: PoseCache, clips: Sequence[ClipTruth], sources: dict[str, str]) -> str:
    """Runs (clip x variant x mode) whose count differs from the same clip's base count.
    Variants not yet cached are skipped (posing them takes minutes), and said so."""
    lines = []
    changed = total = 0
    base = {t.path: rep_row(cache, t, sources[t.path], VARIANTS["base"]) for t in clips}
    for name in SWEEP[1:]:
        cached = [t for t in clips if cache.is_cached(t.path, VARIANTS[name])]
        n_changed = 0
        for t in cached:
            row = rep_row(cache, t, sources[t.path], VARIANTS[name])
            b = base[t.path]
            for mode, now, was in (("auto", row.auto, b.auto), ("given", row.given, b.given)):
                if now != was:
                    n_changed += 1
                    lines.append(
                        f"  {name:7} {mode:5} {t.path.split('/')[-1]}: {was} -> {now} (label {t.reps})"
                    )
        changed += n_changed
        total += 2 * len(cached)
        runs = 2 * len(cached)
        lines.append(f"{name:7}: {len(cached)}/{len(clips)} clips cached, {n_changed} of {runs} runs changed")
    share = 100 * changed / total if total else float("nan")
    lines.append(f"all: {changed} of {total} runs changed ({share:.1f} %)")
    return "\n".join(lines)


def format_false_reps(cache: PoseCache, clips: Sequence[ClipTruth]) -> str:
    """Repetitions reported in automatic mode on the clips where nobody exercises, per variant."""
    lines = []
    for name in SWEEP:
        cached = [t for t in clips if cache.is_cached(t.path, VARIANTS[name])]
        found = 0
        for t in cached:
            events = run_events(cache.poses(t.path, VARIANTS[name]), None)
            reps = [e for e in events if e.type == EventType.REP]
            if reps:
                found += len(reps)
                what = reps[0].data["exercise"]
                lines.append(f"  {name:7} {t.path.split('/')[-1]}: {len(reps)} reps ({what})")
        lines.append(f"{name:7}: {found} reps on {len(cached)} clips without exercise")
    return "\n".join(lines)


def tempo_frames(frames: Sequence[FramePoses], factor: float) -> list[FramePoses]:
    """The same motion done `factor` times as slowly (0.5: twice as fast): time scaled, and
    when faster every round(1 / factor)-th frame kept, so the samples come as often as the
    clip's. Slower, the clip's samples are spread out (x2: half as many a second), which is
    harder than a real slow rep at the clip's rate. The poses are the clip's, so this tests the
    counting's own dependence on tempo, not the model's on motion blur."""
    step = max(1, round(1 / factor))
    return [replace(f, pts_s=f.pts_s * factor) for f in frames[::step]]


def format_tempo(
    cache: PoseCache, clips: Sequence[ClipTruth], sources: dict[str, str], factors: Sequence[float]
) -> str:
    """Exact counts (recognised, given) with every clip's tempo scaled by each factor."""
    lines = []
    for factor in factors:
        rows = [rep_row_of(tempo_frames(cache.poses(t.path), factor), t, sources[t.path]) for t in clips]
        lines.append(f"tempo x{factor:g} (a rep takes {factor:g} times as long)")
        lines.append(_measures("  posepipe, recognised", rows, [r.auto for r in rows], True))
        lines.append(_measures("  posepipe, exercise given", rows, [r.given for r in rows], False))
        lines.append(_measures("  tutorial counter, exercise given", rows, [r.baseline for r in rows], False))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

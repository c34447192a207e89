"""Score fall detection on cached poses (bench.posed): by kind of clip, across the sweep's variants.

Owns the fall evidence the issue asks for: recall split by kind (research-dataset staged
falls, real-world falls, non-fall clips), false falls per hour of non-fall video, the delay
from landing to the event, and how often a clip's verdict survives another analysis rate, a
mirror and a crop. Clips not yet in the pose cache are skipped (and named), never posed here:
posing a clip takes minutes of a shared CPU.

    python -m bench.score_falls                       # base variant, per-clip table and summary
    python -m bench.score_falls --sweep               # + verdicts of every cached variant
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analytics.config import AnalyticsConfig
from analytics.engine import AnalyticsEngine
from analytics.evaluation import FALL_ONSET_EARLY_S, FALL_ONSET_LATE_AFTER_GROUND_S
from analytics.events import Event, EventType
from analytics.fitting import FALL_FIT
from bench.posed import SWEEP, VARIANTS, PoseCache, Variant, fit_check
from pose.types import FramePoses

# Kinds of clip. A labelled fall whose notes call it REAL (caught by a CCTV, doorbell or
# phone camera, not staged) is real-world; every other labelled fall was staged (research
# datasets and home or stock recordings like them).
REAL_WORLD = "real-world"
RESEARCH = "research-dataset"
NON_FALL = "non-fall"
EXERCISE = "exercise"


@dataclass(frozen=True)
class Clip:
    rel: str
    kind: str
    source: str
    fall_start_s: float | None
    on_ground_s: float | None


@dataclass(frozen=True)
class Verdict:
    """One clip's outcome: the labelled fall found or not, how many other falls were raised."""

    clip: Clip
    found: bool
    false_falls: int
    delay_from_start_s: float | None
    delay_from_ground_s: float | None
    duration_s: float

    @property
    def key(self) -> tuple[bool, int]:
        return self.found, min(self.false_falls, 1)


def load_clips(media: Path) -> list[Clip]:
    raw = json.loads((media / "ground_truth.json").read_text())
    clips = []
    for rel, entry in sorted(raw.items()):
        category = entry.get("category")
        if category == "image":
            continue
        if entry.get("fall"):
            kind = REAL_WORLD if "REAL" in str(entry.get("notes", "")) else RESEARCH
        else:
            kind = EXERCISE if category == "exercise" else NON_FALL
        clips.append(
            Clip(
                rel, kind, str(entry.get("source", rel)), entry.get("fall_start_s"), entry.get("on_ground_s")
            )
        )
    return clips


def source_repo(clip: Clip) -> str:
    """The repository a clip came from (what leave-one-source-out leaves out)."""
    return clip.source.split("@")[0]


def run_engine(frames: Sequence[FramePoses]) -> list[Event]:
    engine = AnalyticsEngine(AnalyticsConfig())
    events: list[Event] = []
    for frame in frames:
        events.extend(engine.process(frame).events)
    events.extend(engine.finish())
    return events


def verdict(clip: Clip, events: Sequence[Event], duration_s: float) -> Verdict:
    falls = sorted((e for e in events if e.type == EventType.FALL), key=lambda e: e.t_start_s)
    matched = None
    if clip.fall_start_s is not None:
        ground = clip.on_ground_s if clip.on_ground_s is not None else clip.fall_start_s
        lo, hi = clip.fall_start_s - FALL_ONSET_EARLY_S, ground + FALL_ONSET_LATE_AFTER_GROUND_S
        matched = next((e for e in falls if lo <= e.t_start_s <= hi), None)
    start = ground = None
    if matched is not None and clip.fall_start_s is not None:
        detected = float(matched.data["t_detected_s"])
        start = detected - clip.fall_start_s
        ground = detected - (clip.on_ground_s if clip.on_ground_s is not None else clip.fall_start_s)
    return Verdict(clip, matched is not None, len(falls) - (matched is not None), start, ground, duration_s)


def cached(cache: PoseCache, rel: str, variant: Variant) -> list[FramePoses] | None:
    if not cache._path(rel, variant).is_file():
        return None
    return cache.poses(rel, variant)


def score(cache: PoseCache, clips: Sequence[Clip], variant: Variant) -> tuple[list[Verdict], list[str]]:
    verdicts, missing = [], []
    for clip in clips:
        frames = cached(cache, clip.rel, variant)
        if frames is None:
            missing.append(clip.rel)
            continue
        duration = frames[-1].pts_s if frames else 0.0
        verdicts.append(verdict(clip, run_engine(frames), duration))
    return verdicts, missing


def summary(verdicts: Sequence[Verdict]) -> list[str]:
    lines = []
    for kind in (RESEARCH, REAL_WORLD, NON_FALL, EXERCISE):
        vs = [v for v in verdicts if v.clip.kind == kind]
        if not vs:
            continue
        false = sum(v.false_falls for v in vs)
        hours = sum(v.duration_s for v in vs) / 3600.0
        if kind in (RESEARCH, REAL_WORLD):
            found = [v for v in vs if v.found]
            in_2s = sum(
                1 for v in found if v.delay_from_ground_s is not None and v.delay_from_ground_s <= 2.0
            )
            mean = sum(v.delay_from_start_s or 0.0 for v in found) / len(found) if found else float("nan")
            lines.append(
                f"{kind:17} falls found {len(found)}/{len(vs)}, "
                f"event within 2 s of landing {in_2s}/{len(vs)}, "
                f"mean delay from fall start {mean:.2f} s, other falls raised {false}"
            )
        else:
            lines.append(
                f"{kind:17} clips {len(vs)} ({hours * 60:.1f} min), false falls {false} "
                f"({false / hours if hours else 0:.1f}/h) on {sum(1 for v in vs if v.false_falls)} clips"
            )
    return lines


def table(verdicts: Sequence[Verdict]) -> list[str]:
    lines = [f"{'clip':70} {'kind':17} {'fall':>5} {'false':>5} {'d_start':>7} {'d_ground':>8}"]
    for v in verdicts:
        if v.clip.kind == EXERCISE and not v.false_falls:
            continue
        fall = ("found" if v.found else "MISS") if v.clip.fall_start_s is not None else "-"
        ds = f"{v.delay_from_start_s:.2f}" if v.delay_from_start_s is not None else "-"
        dg = f"{v.delay_from_ground_s:.2f}" if v.delay_from_ground_s is not None else "-"
        lines.append(f"{v.clip.rel:70} {v.clip.kind:17} {fall:>5} {v.false_falls:>5} {ds:>7} {dg:>8}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="base", choices=sorted(VARIANTS))
    parser.add_argument("--sweep", action="store_true", help="also score every other variant")
    parser.add_argument("--only", help="clips whose path contains this")
    parser.add_argument(
        "--loso", action="store_true", help="fit the fall speeds leaving one source out (analytics.fitting)"
    )
    parser.add_argument("--backend", help="pose spec (default: the settings' default)")
    args = parser.parse_args(argv)
    cache = PoseCache(backend=args.backend)
    clips = [c for c in load_clips(cache.media) if not args.only or args.only in c.rel]
    base, missing = score(cache, clips, VARIANTS[args.variant])
    print("\n".join(table(base)))
    print()
    print("\n".join(summary(base)))
    if missing:
        print(f"not cached ({len(missing)}): {', '.join(missing)}")
    if args.loso:
        print()
        print("\n".join(fit_check(cache, VARIANTS[args.variant], FALL_FIT, args.only).lines()))
    if args.sweep:
        by_clip = {v.clip.rel: v for v in base}
        runs = same = 0
        for name in sorted(SWEEP):
            if name == args.variant:
                continue
            variant = VARIANTS[name]
            verdicts, missing = score(cache, clips, variant)
            changed = [v for v in verdicts if v.clip.rel in by_clip and v.key != by_clip[v.clip.rel].key]
            compared = sum(1 for v in verdicts if v.clip.rel in by_clip)
            runs += compared
            same += compared - len(changed)
            print(f"\n{name}: {compared - len(changed)}/{compared} verdicts as {args.variant}, "
                  f"{len(missing)} clips not cached")  # fmt: skip
            print("  " + "\n  ".join(summary(verdicts)))
            for v in changed:
                was = by_clip[v.clip.rel]
                print(f"  changed {v.clip.rel}: found {was.found}->{v.found}, "
                      f"false {was.false_falls}->{v.false_falls}")  # fmt: skip
        if runs:
            print(f"\nsweep: {same}/{runs} verdicts unchanged ({100.0 * same / runs:.1f} %)")
    cache.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

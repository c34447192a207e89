"""Scoring detected events against labelled clips (the schema of shared/media/ground_truth.json).

Reps: per exercise clip, the complete reps reported for the labelled exercise against the
label: exact-match rate, mean absolute error, off-by-one rate. Falls: a labelled fall is
found when a detected fall's onset lies within [start - 1 s, on_ground + 2 s]; every other
detected fall is false. False falls are also given per hour of video without a labelled fall.
Delay is the video time the detector reported the fall (`data["t_detected_s"]`) minus the
labelled start.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analytics.events import Event, EventType, rep_counts

FALL_ONSET_EARLY_S = 1.0
FALL_ONSET_LATE_AFTER_GROUND_S = 2.0


@dataclass(frozen=True)
class ClipTruth:
    path: str
    category: str
    duration_s: float | None = None
    exercise: str | None = None
    reps: int | None = None
    fall: bool = False
    fall_start_s: float | None = None
    on_ground_s: float | None = None

    @classmethod
    def from_json(cls, path: str, entry: Mapping[str, Any]) -> ClipTruth:
        return cls(
            path=path,
            category=str(entry.get("category", "")),
            exercise=entry.get("exercise"),
            reps=entry.get("reps_complete"),
            fall=bool(entry.get("fall", False)),
            fall_start_s=entry.get("fall_start_s"),
            on_ground_s=entry.get("on_ground_s"),
        )


def load_truth(path: str | Path) -> dict[str, ClipTruth]:
    """Clips keyed by their path relative to the media folder; still images are left out."""
    raw = json.loads(Path(path).read_text())
    return {
        rel: ClipTruth.from_json(rel, entry)
        for rel, entry in raw.items()
        if entry.get("category") != "image" and not rel.lower().endswith((".jpg", ".jpeg", ".png"))
    }


@dataclass
class ClipScore:
    path: str
    category: str
    duration_s: float
    expected_reps: int | None = None
    counted_reps: int | None = None
    reps_by_exercise: dict[str, int] = field(default_factory=dict)
    fall_expected: bool = False
    fall_found: bool = False
    false_falls: int = 0
    delay_s: float | None = None
    fall_onsets_s: list[float] = field(default_factory=list)


@dataclass
class EvalReport:
    clips: list[ClipScore]

    @property
    def rep_clips(self) -> list[ClipScore]:
        return [c for c in self.clips if c.expected_reps is not None]

    @property
    def reps_exact(self) -> int:
        return sum(1 for c in self.rep_clips if c.counted_reps == c.expected_reps)

    @property
    def reps_mae(self) -> float:
        clips = self.rep_clips
        if not clips:
            return math.nan
        return sum(abs((c.counted_reps or 0) - (c.expected_reps or 0)) for c in clips) / len(clips)

    @property
    def reps_off_by_one(self) -> int:
        return sum(1 for c in self.rep_clips if abs((c.counted_reps or 0) - (c.expected_reps or 0)) == 1)

    @property
    def falls_expected(self) -> int:
        return sum(1 for c in self.clips if c.fall_expected)

    @property
    def falls_found(self) -> int:
        return sum(1 for c in self.clips if c.fall_found)

    @property
    def false_falls(self) -> int:
        return sum(c.false_falls for c in self.clips)

    @property
    def clips_with_false_falls(self) -> list[str]:
        return [c.path for c in self.clips if c.false_falls]

    @property
    def nonfall_hours(self) -> float:
        return sum(c.duration_s for c in self.clips if not c.fall_expected) / 3600.0

    @property
    def false_falls_per_hour(self) -> float:
        hours = self.nonfall_hours
        nonfall_false = sum(c.false_falls for c in self.clips if not c.fall_expected)
        return nonfall_false / hours if hours > 0 else math.nan

    @property
    def mean_delay_s(self) -> float:
        delays = [c.delay_s for c in self.clips if c.delay_s is not None]
        return sum(delays) / len(delays) if delays else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "clips": [c.__dict__ for c in self.clips],
            "reps": {
                "clips": len(self.rep_clips), "exact": self.reps_exact, "mae": self.reps_mae,
                "off_by_one": self.reps_off_by_one,
            },
            "falls": {
                "expected": self.falls_expected, "found": self.falls_found,
                "false_falls": self.false_falls, "clips_with_false_falls": self.clips_with_false_falls,
                "false_falls_per_hour_nonfall": self.false_falls_per_hour,
                "mean_delay_s": self.mean_delay_s,
            },
        }  # fmt: skip


def score_clip(truth: ClipTruth, events: Sequence[Event], duration_s: float) -> ClipScore:
    score = ClipScore(path=truth.path, category=truth.category, duration_s=duration_s)
    reps = rep_counts(events)
    score.reps_by_exercise = reps
    if truth.reps is not None:
        score.expected_reps = truth.reps
        score.counted_reps = reps.get(str(truth.exercise), 0)

    falls = sorted((e for e in events if e.type == EventType.FALL), key=lambda e: e.t_start_s)
    score.fall_onsets_s = [e.t_start_s for e in falls]
    score.fall_expected = truth.fall
    matched = None
    if truth.fall and truth.fall_start_s is not None:
        ground = truth.on_ground_s if truth.on_ground_s is not None else truth.fall_start_s
        lo, hi = truth.fall_start_s - FALL_ONSET_EARLY_S, ground + FALL_ONSET_LATE_AFTER_GROUND_S
        matched = next((e for e in falls if lo <= e.t_start_s <= hi), None)
    if matched is not None:
        score.fall_found = True
        detected = matched.data.get("t_detected_s")
        if isinstance(detected, (int, float)) and truth.fall_start_s is not None:
            score.delay_s = float(detected) - truth.fall_start_s
    score.false_falls = len(falls) - (1 if matched is not None else 0)
    return score


def format_report(report: EvalReport) -> str:
    lines = [f"{'clip':58} {'reps':>9} {'fall':>6} {'false':>5} {'delay':>6}  onsets"]
    for c in report.clips:
        reps = f"{c.counted_reps}/{c.expected_reps}" if c.expected_reps is not None else "-"
        fall = ("found" if c.fall_found else "MISS") if c.fall_expected else "-"
        delay = f"{c.delay_s:.2f}" if c.delay_s is not None else "-"
        onsets = ",".join(f"{t:.2f}" for t in c.fall_onsets_s)
        lines.append(f"{c.path:58} {reps:>9} {fall:>6} {c.false_falls:>5} {delay:>6}  {onsets}")
    lines.append("")
    lines.append(
        f"reps: exact {report.reps_exact}/{len(report.rep_clips)}, MAE {report.reps_mae:.2f}, "
        f"off-by-one {report.reps_off_by_one}"
    )
    lines.append(
        f"falls: found {report.falls_found}/{report.falls_expected}, false falls {report.false_falls} "
        f"({report.false_falls_per_hour:.1f} per hour of non-fall video), "
        f"mean delay {report.mean_delay_s:.2f} s"
    )
    return "\n".join(lines)

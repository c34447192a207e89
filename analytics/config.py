"""What one analysis is configured with: the given exercise (or recognition) and the per-run times."""

from __future__ import annotations

from dataclasses import dataclass

from analytics import thresholds as th
from analytics.events import Exercise


@dataclass(frozen=True)
class AnalyticsConfig:
    """`exercise`: the exercise the user says is being done, or None to recognise it."""

    exercise: Exercise | None = None
    track_lost_after_s: float = th.TRACK_LOST_AFTER_S
    long_lie_after_s: float = th.LONG_LIE_AFTER_S

"""Events: what the detectors report (a repetition, an exercise set, a fall, ...), with times in seconds."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class EventType(str, Enum):
    REP = "rep"
    EXERCISE_SET = "exercise_set"
    FALL = "fall"
    # Follow-up to a fall: the person has stayed down longer than the configured time.
    LONG_LIE = "long_lie"
    # Follow-up to a fall: the same person is back on their feet (with the time it took).
    FALL_RECOVERED = "fall_recovered"
    # A live stream delivered no frames for a while (the analysis has a hole there).
    STREAM_GAP = "stream_gap"


class Exercise(str, Enum):
    SQUAT = "squat"
    PUSHUP = "pushup"
    BICEP_CURL = "bicep_curl"
    JUMPING_JACK = "jumping_jack"
    LUNGE = "lunge"
    SITUP = "situp"


@dataclass(frozen=True)
class Event:
    """One detected occurrence. Times are seconds from the start of the video or stream session.

    `data` holds the evidence and must be JSON-serialisable (it is stored and exported as is).
    """

    type: EventType
    t_start_s: float
    t_end_s: float
    track_id: int | None
    confidence: float
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.t_start_s) and math.isfinite(self.t_end_s)):
            raise ValueError("event times must be finite")
        if self.t_end_s < self.t_start_s:
            raise ValueError(f"t_end_s {self.t_end_s} is before t_start_s {self.t_start_s}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")
        json.dumps(self.data, allow_nan=False)  # fails loudly on numpy scalars or NaN


def rep_counts(events: Iterable[Event]) -> dict[str, int]:
    """Complete repetitions per exercise over all tracks."""
    counts: dict[str, int] = {}
    for event in events:
        if event.type == EventType.REP:
            name = str(event.data.get("exercise"))
            counts[name] = counts.get(name, 0) + 1
    return counts

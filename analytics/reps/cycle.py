"""The repetition state machine every exercise shares: rest -> peak -> rest over one signal, with hysteresis.

Owns when a cycle of a scalar movement signal counts as one complete repetition; knows
nothing about bodies or exercises. The signal grows as the body moves into the exercise
(e.g. knee flexion in a squat); NaN means it cannot be measured now (not visible, or the
posture does not fit), which pauses the machine.

A repetition counts only when the machine saw it whole: the signal leave the rest zone,
cross into the peak zone, stay there for
a minimum dwell, and come back into the rest zone. The gap between the two zones is the
hysteresis: jitter around either threshold cannot count twice. A clip that starts at the
peak (the descent was not seen) or ends before the return gives no repetition, and a
pause longer than `max_gap_s` drops the cycle in progress because it was not observed.

The dwell is the time between the signal's crossing into the peak zone and its last
crossing out, each placed by linear interpolation between the two samples either side of
the threshold. The signal is a sampled continuous movement: counting samples in the zone
under-reads a top by up to a sampling interval and reads nothing at all when the limb is
hidden at the top (the far arm of a curl goes behind the body exactly there), while the
crossings are seen on the way in and out. A single wrong sample crosses in and out within
one sampling interval, so it reads less than one interval; next to a sample at rest it reads
nothing, since the way between the zones was not seen at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

Snapshot = TypeVar("Snapshot")
_EPS_S = 1e-6


class Phase(str, Enum):
    UNSEEN = "unseen"  # no valid sample yet, or the last cycle was lost in a gap
    REST = "rest"
    APPROACH = "approach"  # between the zones on the way in (from rest, or at the start)
    PEAK = "peak"  # in or past the peak zone of a cycle whose approach was seen
    PEAK_UNSEEN_ENTRY = "peak_unseen_entry"  # first seen past the rest zone: cannot count


@dataclass(frozen=True)
class CycleSpec:
    """Thresholds of one movement signal, in its own units (degrees for every exercise here)."""

    peak_at: float
    rest_at: float
    min_peak_dwell_s: float
    min_duration_s: float
    max_duration_s: float
    max_gap_s: float

    def __post_init__(self) -> None:
        if not self.rest_at < self.peak_at:
            raise ValueError(f"rest_at {self.rest_at} must be below peak_at {self.peak_at}")
        if self.min_peak_dwell_s < 0 or self.min_duration_s < 0 or self.max_gap_s <= 0:
            raise ValueError("dwell and durations must be >= 0, max_gap_s > 0")
        if self.max_duration_s <= self.min_duration_s:
            raise ValueError("max_duration_s must exceed min_duration_s")


@dataclass(frozen=True)
class Cycle(Generic[Snapshot]):
    """One complete repetition of a signal.

    `top_value` is the most rested value seen just before the cycle (None when the cycle
    started between the zones, so its top was not seen) and `end_value` the first value
    back in the rest zone. `peak_snapshot` is whatever the caller attached to the peak
    sample (the body measurements, for form checks). `quality` is the mean of
    the per-sample qualities passed in (visibility) over the cycle. `peak_dwell_s` is the
    time from the crossing into the peak zone to the last crossing out of it.
    """

    t_start_s: float
    t_peak_s: float
    t_end_s: float
    peak_dwell_s: float
    peak_value: float
    top_value: float | None
    end_value: float
    peak_snapshot: Snapshot
    quality: float

    @property
    def rested_value(self) -> float:
        """The most rested value seen at either end of the cycle (the top of a squat)."""
        return self.end_value if self.top_value is None else min(self.top_value, self.end_value)

    @property
    def rom(self) -> float:
        """Range of motion: from the more rested end of the cycle to its peak."""
        return self.peak_value - self.rested_value


class CycleCounter(Generic[Snapshot]):
    """Feed samples in time order with `update`; it returns a Cycle when one completes."""

    def __init__(self, spec: CycleSpec) -> None:
        self.spec = spec
        self.phase = Phase.UNSEEN
        self._last_valid_t: float | None = None
        self._last_valid_value = math.nan
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._t_start: float | None = None
        self._top_value: float | None = None
        self._peak_value = -float("inf")
        self._peak_snapshot: Snapshot | None = None
        self._t_peak = 0.0
        # When the signal crossed into the peak zone and (last) out of it, interpolated.
        self._t_cross_in = 0.0
        self._t_cross_out: float | None = None
        self._quality_sum = 0.0
        self._quality_n = 0

    @property
    def cycle_start_s(self) -> float | None:
        """When the cycle now in progress left rest (None outside a cycle)."""
        return self._t_start if self.phase in (Phase.APPROACH, Phase.PEAK) else None

    def update(
        self, t_s: float, value: float, snapshot: Snapshot, quality: float = 1.0
    ) -> Cycle[Snapshot] | None:
        if math.isnan(value):  # not measurable now; the gap is judged at the next valid sample
            return None
        if self._last_valid_t is not None and t_s - self._last_valid_t > self.spec.max_gap_s:
            self.phase = Phase.UNSEEN
        cycle = self._step(t_s, value, snapshot)
        self._last_valid_t, self._last_valid_value = t_s, value
        # This sample belongs to the cycle now in progress (the one that just ended is complete).
        self._quality_sum += quality
        self._quality_n += 1
        return cycle

    def _step(self, t_s: float, value: float, snapshot: Snapshot) -> Cycle[Snapshot] | None:
        spec = self.spec
        at_peak, at_rest = value >= spec.peak_at, value <= spec.rest_at

        if self.phase is Phase.UNSEEN:
            if at_peak:
                self._reset_cycle()
                self.phase = Phase.PEAK_UNSEEN_ENTRY
            elif at_rest:
                self._enter_rest(t_s, value)
            else:
                # First seen on the way (in or out): the rest before it was not seen, and a
                # clip that starts mid-rep does not count that rep (only complete ones do).
                self._reset_cycle()
                self.phase = Phase.PEAK_UNSEEN_ENTRY
            return None
        if self.phase is Phase.PEAK_UNSEEN_ENTRY:
            if at_rest:
                self._enter_rest(t_s, value)
            return None
        if self.phase is Phase.REST:
            if at_rest:
                self._enter_rest(t_s, value, keep_top=True)
            elif at_peak:
                self._enter_peak(t_s, value, snapshot)
            else:
                self.phase = Phase.APPROACH
            return None
        if self.phase is Phase.APPROACH:
            if at_peak:
                self._enter_peak(t_s, value, snapshot)
            elif at_rest:
                # Turned back before the peak: a partial movement, not a repetition.
                self._enter_rest(t_s, value)
            return None
        # Phase.PEAK
        if at_peak:
            if value > self._peak_value:
                self._peak_value, self._t_peak, self._peak_snapshot = value, t_s, snapshot
            return None
        if self._last_valid_value >= spec.peak_at:  # leaving the peak zone (for now)
            assert self._last_valid_t is not None
            self._t_cross_out = self._crossing_s(self._last_valid_t, self._last_valid_value, t_s, value)
        if not at_rest:
            return None  # inside the hysteresis band: still the same cycle
        cycle = self._finish(t_s, value)
        self._enter_rest(t_s, value)
        return cycle

    def _enter_rest(self, t_s: float, value: float, keep_top: bool = False) -> None:
        if not keep_top:
            self._reset_cycle()
        self.phase = Phase.REST
        self._t_start = t_s  # the cycle starts when the body last was at rest
        if self._top_value is None or value < self._top_value:
            self._top_value = value

    def _enter_peak(self, t_s: float, value: float, snapshot: Snapshot) -> None:
        # Entered from rest or the approach, so the previous valid sample is below the peak
        # zone and no further back than max_gap_s.
        self.phase = Phase.PEAK
        if self._t_start is None:
            self._t_start = t_s
        self._t_peak = t_s
        t0 = self._last_valid_t
        self._t_cross_in = t_s if t0 is None else self._crossing_s(t_s, value, t0, self._last_valid_value)
        self._t_cross_out = None
        self._peak_value, self._peak_snapshot = value, snapshot

    def _crossing_s(self, t_peak_s: float, peak_value: float, t_other_s: float, other_value: float) -> float:
        """When the signal crossed `peak_at` between a sample in the peak zone and its valid
        neighbour outside it (before or after), assuming a steady movement in between, also
        across a short loss of sight. Only a neighbour between the zones places the crossing:
        from one at rest the whole way between the zones went unseen (a jump within one
        sample, or hidden), so the crossing is put at the peak sample and no time is credited."""
        if other_value <= self.spec.rest_at:
            return t_peak_s
        fraction = (peak_value - self.spec.peak_at) / (peak_value - other_value)
        return t_peak_s + min(max(fraction, 0.0), 1.0) * (t_other_s - t_peak_s)

    def _finish(self, t_s: float, value: float) -> Cycle[Snapshot] | None:
        spec = self.spec
        start = self._t_start if self._t_start is not None else self._t_cross_in
        duration = t_s - start
        dwell = (self._t_cross_out if self._t_cross_out is not None else t_s) - self._t_cross_in
        # Sample times carry float rounding; a microsecond is far below any frame interval.
        if (
            dwell < spec.min_peak_dwell_s - _EPS_S
            or not spec.min_duration_s - _EPS_S <= duration <= spec.max_duration_s
        ):
            return None
        if self._peak_snapshot is None:
            return None
        return Cycle(
            t_start_s=start, t_peak_s=self._t_peak, t_end_s=t_s, peak_dwell_s=dwell,
            peak_value=self._peak_value, top_value=self._top_value, end_value=value,
            peak_snapshot=self._peak_snapshot, quality=self._quality_sum / max(self._quality_n, 1),
        )  # fmt: skip

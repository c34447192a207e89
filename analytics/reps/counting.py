"""Counting complete repetitions of one signal from its own range: thresholds that follow the motion.

Owns how a window of a signal becomes cycles. No fixed degrees: the signal's range is taken
between robust percentiles of its values (REP_RANGE_*_PERCENTILE), and the shared cycle
machine (reps.cycle) runs with its peak zone within REP_ZONE_FRACTION of the range from the
peak extreme and its rest zone within the same fraction of the rest extreme. A repetition
therefore has to travel the middle of the motion's own range, whatever the view (a knee seen
from the front reads a smaller bend than from the side), the person's depth (quarter squats,
arms to shoulder height) or the camera. Only complete cycles count: the cycle machine needs
the rest zone before the peak and again after it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from analytics import thresholds as th
from analytics.reps.cycle import Cycle, CycleCounter, CycleSpec

Snapshot = TypeVar("Snapshot")


@dataclass(frozen=True)
class SignalRange:
    """Where a signal's values lie over the window (robust extremes), in its own units."""

    low: float
    high: float

    @property
    def span(self) -> float:
        return self.high - self.low

    def spec(self) -> CycleSpec:
        """The cycle machine's zones for this range (the signal grows into the movement)."""
        band = th.REP_ZONE_FRACTION * self.span
        return CycleSpec(
            peak_at=self.high - band,
            rest_at=self.low + band,
            min_peak_dwell_s=th.REP_MIN_PEAK_DWELL_S,
            min_duration_s=th.REP_MIN_DURATION_S,
            max_duration_s=th.REP_MAX_DURATION_S,
            max_gap_s=th.REP_MAX_GAP_S,
        )


def signal_range(values: Sequence[float]) -> SignalRange | None:
    """The robust range of the valid values, or None when there is no movement to count."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    # Fewer than a few samples cannot show a cycle (rest, way in, peak, way out, rest).
    if arr.size < 5:
        return None
    low = float(np.percentile(arr, th.REP_RANGE_LOW_PERCENTILE))
    high = float(np.percentile(arr, th.REP_RANGE_HIGH_PERCENTILE))
    if high - low < th.REP_MIN_RANGE_DEG:
        return None
    return SignalRange(low, high)


def count_cycles(
    times_s: Sequence[float],
    values: Sequence[float],
    snapshots: Sequence[Snapshot],
    qualities: Sequence[float],
    rng: SignalRange | None = None,
) -> list[Cycle[Snapshot]]:
    """Complete cycles of `values` (NaN = not measurable) in time order, zones from `rng`
    (default: the values' own range)."""
    rng = signal_range(values) if rng is None else rng
    if rng is None:
        return []
    counter: CycleCounter[Snapshot] = CycleCounter(rng.spec())
    cycles: list[Cycle[Snapshot]] = []
    for t, v, snap, q in zip(times_s, values, snapshots, qualities, strict=True):
        if math.isnan(v):
            continue
        cycle = counter.update(t, v, snap, q)
        if cycle is not None:
            cycles.append(cycle)
    return merge_fragments(cycles)


def merge_fragments(cycles: Sequence[Cycle[Snapshot]]) -> list[Cycle[Snapshot]]:
    """Join a cycle far shorter than the set's typical one to the neighbour it touches.

    A limb placed by guesswork (the far arm behind the body) can read one slow curl as two
    quick ones that meet in a single sample at rest. A body repeats an exercise at a steady
    tempo, so a "repetition" shorter than REP_FRAGMENT_FRACTION of the median one that starts
    (or ends) within REP_FRAGMENT_MAX_REST_S of its neighbour is part of that neighbour, and
    so is any touching piece of a limb seen only by guesswork (mean visibility below VISIBLE);
    a quick repetition with a real rest on both sides still counts.
    """
    if len(cycles) < 2:
        return list(cycles)
    typical = statistics.median(c.t_end_s - c.t_start_s for c in cycles)
    merged: list[Cycle[Snapshot]] = []
    for cycle in cycles:
        if merged:
            last = merged[-1]
            touching = cycle.t_start_s - last.t_end_s <= th.REP_FRAGMENT_MAX_REST_S
            short = min(cycle.t_end_s - cycle.t_start_s, last.t_end_s - last.t_start_s)
            # A limb seen well that returns to rest and goes again is a new rep however quick;
            # a guessed one (both pieces seen below VISIBLE on average) touching rest for a
            # sample is more likely the guess wobbling than the arm.
            guessed = max(cycle.quality, last.quality) < th.VISIBLE
            if touching and (guessed or short < th.REP_FRAGMENT_FRACTION * typical):
                deeper = cycle if cycle.peak_value > last.peak_value else last
                merged[-1] = replace(
                    deeper, t_start_s=last.t_start_s, t_end_s=cycle.t_end_s, top_value=last.top_value,
                    end_value=cycle.end_value, peak_dwell_s=last.peak_dwell_s + cycle.peak_dwell_s,
                    quality=(last.quality + cycle.quality) / 2,
                )  # fmt: skip
                continue
        merged.append(cycle)
    return merged

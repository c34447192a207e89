"""Frame sampling: choose which decoded frames are analysed, by presentation time, to a target rate."""

from __future__ import annotations

import math


class FrameSampler:
    """Keeps the first frame of each 1/fps slot of presentation time.

    Working on timestamps rather than frame counts makes variable-frame-rate video sample
    evenly. Frames whose timestamp does not move forward (duplicated or reordered pts) are
    never kept twice. fps <= 0 keeps every frame with a new timestamp.
    """

    # Timestamps within a microsecond of a slot edge count as on it (float pts rounding).
    _EDGE_EPS_S = 1e-6

    def __init__(self, fps: float) -> None:
        if not math.isfinite(fps) or fps < 0:
            raise ValueError(f"fps must be >= 0, got {fps}")
        self.period_s = 1.0 / fps if fps > 0 else 0.0
        self._last_slot = -1
        self._last_pts_s = -math.inf

    def take(self, pts_s: float) -> bool:
        if pts_s <= self._last_pts_s:
            return False
        if self.period_s == 0.0:
            self._last_pts_s = pts_s
            return True
        slot = math.floor((pts_s + self._EDGE_EPS_S) / self.period_s)
        if slot <= self._last_slot:
            return False
        self._last_slot = slot
        self._last_pts_s = pts_s
        return True

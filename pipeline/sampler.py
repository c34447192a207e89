"""Frame sampling: choose which decoded frames are analysed, by presentation time, to a target rate."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplerState:
    """What a sampler remembers between frames: the slot and time of the last frame it kept.

    A sampler started with the state one sampler had just before some frame decides every
    later frame as that sampler does, which is how a segment of a file decoded on its own
    samples exactly the frames one pass over the whole file does (pipeline.segments)."""

    last_slot: int = -1
    last_pts_s: float = -math.inf


class FrameSampler:
    """Keeps the first frame of each 1/fps slot of presentation time.

    Working on timestamps rather than frame counts makes variable-frame-rate video sample
    evenly. Frames whose timestamp does not move forward (duplicated or reordered pts) are
    never kept twice. fps <= 0 keeps every frame with a new timestamp.
    """

    # Timestamps within a microsecond of a slot edge count as on it (float pts rounding).
    _EDGE_EPS_S = 1e-6

    def __init__(self, fps: float, state: SamplerState | None = None) -> None:
        if not math.isfinite(fps) or fps < 0:
            raise ValueError(f"fps must be >= 0, got {fps}")
        self.period_s = 1.0 / fps if fps > 0 else 0.0
        state = state or SamplerState()
        self._last_slot = state.last_slot
        self._last_pts_s = state.last_pts_s

    @property
    def state(self) -> SamplerState:
        return SamplerState(self._last_slot, self._last_pts_s)

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

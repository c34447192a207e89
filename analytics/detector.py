"""The contract every per-track detector keeps: poses of one track in, events out, in time order."""

from __future__ import annotations

from typing import Protocol

from analytics.events import Event
from analytics.track import TrackedPose


class TrackDetector(Protocol):
    """One instance per track. Must be picklable: its state is saved between chunks."""

    def update(self, pose: TrackedPose) -> list[Event]:
        """Consume the track's next pose; return the events it completes."""

    def finish(self, t_s: float) -> list[Event]:
        """The track ended (person gone, or video/stream over) at `t_s`: flush what is open."""

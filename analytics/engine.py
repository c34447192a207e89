"""The analytics engine: tracker -> smoothing -> per-track detectors, over FramePoses in time order.

One engine serves a whole video or stream session. It is fed frames strictly in order and
pickled between chunks (storage keeps it next to the chunk cursor), so a recorded video posed
in parallel chunks and a live stream run the very same code and keep state across chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from analytics.config import AnalyticsConfig
from analytics.detector import TrackDetector
from analytics.events import Event
from analytics.falls import FallDetector
from analytics.falls_body import BodySample
from analytics.floor_watch import FloorWatch
from analytics.reps import RepDetector
from analytics.track import TrackedPose, Tracker, TrackUpdate
from pose.types import FramePoses

# Bump when a change to the analytics would change stored events: stored videos analysed
# with another version get their events recomputed from their stored poses.
ANALYTICS_VERSION = 7


@dataclass(frozen=True)
class FrameOutcome:
    track_ids: tuple[int | None, ...]
    events: tuple[Event, ...]


# A detector class (or any picklable callable) taking (track_id, config).
DetectorFactory = Callable[[int, AnalyticsConfig], TrackDetector]


def default_detectors() -> list[DetectorFactory]:
    """The detectors every track gets."""
    return [FallDetector, RepDetector]


class AnalyticsEngine:
    def __init__(self, config: AnalyticsConfig, detectors: list[DetectorFactory] | None = None) -> None:
        self.config = config
        self.tracker = Tracker(lost_after_s=config.track_lost_after_s)
        self._factories = default_detectors() if detectors is None else detectors
        self._detectors: dict[int, list[TrackDetector]] = {}
        self.last_t_s: float | None = None
        self.floor_watch = FloorWatch(config.long_lie_after_s)

    def process(self, frame: FramePoses) -> FrameOutcome:
        if self.last_t_s is not None and frame.pts_s < self.last_t_s:
            raise ValueError(f"frames out of order: {frame.pts_s} after {self.last_t_s}")
        return self.apply(self.tracker.update(frame), frame.pts_s)

    def apply(self, update: TrackUpdate, t_s: float) -> FrameOutcome:
        """The detectors on one frame's tracker output (`process` after tracking). The tracker
        does not depend on the detectors, so analytics.fitting tracks a clip once and replays
        its updates through fresh detectors for each value of a fitted number."""
        events: list[Event] = []
        for tid in update.ended:
            events.extend(self._end_track(tid, self.last_t_s if self.last_t_s is not None else t_s))
        for tracked in update.tracked:
            new = tracked.track_id not in self._detectors
            detectors = self._detectors_for(tracked.track_id)
            if new:
                self._continue_lost_fall(tracked, detectors)
            for detector in detectors:
                events.extend(detector.update(tracked))
        events.extend(self._unseen(update, t_s))
        events.extend(self.floor_watch.tick(t_s))
        self.last_t_s = t_s
        return FrameOutcome(update.track_ids, tuple(events))

    def finish(self) -> list[Event]:
        """The video or session is over: every open track ends now."""
        return self.end_tracks(self.tracker.finish())

    def end_tracks(self, track_ids: Iterable[int]) -> list[Event]:
        """The tracks `track_ids` end at the last frame (`finish` after the tracker's)."""
        events: list[Event] = []
        t = self.last_t_s if self.last_t_s is not None else 0.0
        for tid in track_ids:
            events.extend(self._end_track(tid, t))
        return events

    def detectors(self, track_id: int) -> tuple[TrackDetector, ...]:
        """The detectors of a live track (none for a track not seen or ended)."""
        return tuple(self._detectors.get(track_id, ()))

    def _detectors_for(self, track_id: int) -> list[TrackDetector]:
        if track_id not in self._detectors:
            self._detectors[track_id] = [factory(track_id, self.config) for factory in self._factories]
        return self._detectors[track_id]

    def _continue_lost_fall(self, first: TrackedPose, detectors: list[TrackDetector]) -> None:
        """A new track found lying where a fallen person was lost continues their fall."""
        if not self.floor_watch.lost:
            return
        lost = self.floor_watch.claim(BodySample.from_tracked(first))
        if lost is None:
            return
        for detector in detectors:
            if isinstance(detector, FallDetector):
                detector.resume(lost)

    def _unseen(self, update: TrackUpdate, t_s: float) -> list[Event]:
        """Fall detectors of the live tracks without a pose in this frame: a fallen person out
        of sight is confirmed on time, before the track ends (FallDetector.unseen)."""
        seen = {tracked.track_id for tracked in update.tracked}
        events: list[Event] = []
        for track_id, detectors in self._detectors.items():
            if track_id in seen:
                continue
            for detector in detectors:
                if isinstance(detector, FallDetector):
                    events.extend(detector.unseen(t_s))
        return events

    def _end_track(self, track_id: int, t_s: float) -> list[Event]:
        # Per-track state is evicted when its track ends; a fallen person lost while down is
        # kept by the floor watch.
        events: list[Event] = []
        for detector in self._detectors.pop(track_id, []):
            events.extend(detector.finish(t_s))
            if isinstance(detector, FallDetector) and (lost := detector.lost_on_floor()) is not None:
                self.floor_watch.add(lost)
        return events


def replay(frames: Iterable[FramePoses], config: AnalyticsConfig) -> list[Event]:
    """Every event of one video's frames run through a fresh engine, the end of the video included.

    What `posepipe eval` uses to score other settings (the exercise given) on poses already
    stored, without posing again.
    """
    engine = AnalyticsEngine(config)
    events: list[Event] = []
    for frame in frames:
        events.extend(engine.process(frame).events)
    events.extend(engine.finish())
    return events

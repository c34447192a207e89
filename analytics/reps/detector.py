"""RepDetector: the per-track TrackDetector that counts exercise repetitions and reports sets.

Owns the wiring: measurements per frame -> one cycle machine per exercise channel ->
recognition test and form flags -> SetTracker. Holds only plain data (exercise names,
machines, candidate reps), so it pickles between chunks; the rules are looked up by name.
"""

from __future__ import annotations

import logging

from analytics import thresholds as th
from analytics.config import AnalyticsConfig
from analytics.events import Event, Exercise
from analytics.reps.cycle import Cycle, CycleCounter
from analytics.reps.exercises import RULES, ExerciseRule
from analytics.reps.features import BodyFeatures
from analytics.reps.sets import Rep, SetTracker
from analytics.track import TrackedPose

log = logging.getLogger(__name__)


class _Channel:
    """One cycle machine: an exercise read on one side (or both)."""

    def __init__(self, exercise: Exercise, channel: str) -> None:
        self.exercise = exercise
        self.channel = channel
        self.counter: CycleCounter[BodyFeatures] = CycleCounter(RULES[exercise].cycle)


class RepDetector:
    """Counts complete repetitions on one track (see docs/analytics.md)."""

    def __init__(self, track_id: int, config: AnalyticsConfig) -> None:
        self.track_id = track_id
        self.given = config.exercise
        exercises = [config.exercise] if config.exercise is not None else list(RULES)
        self._channels = [_Channel(e, ch) for e in exercises for ch in RULES[e].channels]
        self._sets = SetTracker(track_id, config.exercise)
        # The last counted rep per exercise, to merge two arms moving together into one rep.
        self._last_rep: dict[Exercise, Rep] = {}

    def update(self, pose: TrackedPose) -> list[Event]:
        features = BodyFeatures.from_tracked(pose)
        events: list[Event] = []
        for ch in self._channels:
            rule = RULES[ch.exercise]
            reading = rule.read(features, ch.channel)
            cycle = ch.counter.update(pose.t_s, reading.value, features, reading.quality)
            if cycle is not None:
                events.extend(self._on_cycle(rule, ch.channel, cycle))
        events.extend(self._sets.tick(pose.t_s, self._open_cycle_start()))
        return events

    def finish(self, t_s: float) -> list[Event]:
        return self._sets.finish()

    def _on_cycle(self, rule: ExerciseRule, channel: str, cycle: Cycle[BodyFeatures]) -> list[Event]:
        # Recognition tells exercises apart; once a set of this exercise is open the question
        # is settled, and an odd rep of it (legs not quite apart, say) still counts, flagged.
        recognising = self.given is None and self._sets.open_exercise != rule.exercise
        if recognising and not rule.accepts(cycle, channel):
            return []
        rep = Rep(
            exercise=rule.exercise, side=channel, driving_angle=rule.driving_angle,
            t_start_s=cycle.t_start_s, t_peak_s=cycle.t_peak_s, t_end_s=cycle.t_end_s,
            peak_angle_deg=rule.angle(cycle.peak_value), top_angle_deg=rule.angle(cycle.rested_value),
            rom_deg=cycle.rom, quality=cycle.quality,
            # Form is judged only on a limb seen well; a hidden limb's angles are guesses.
            form_checked=cycle.quality >= th.VISIBLE,
            form_flags=rule.form(cycle, channel) if cycle.quality >= th.VISIBLE else (),
        )  # fmt: skip
        last = self._last_rep.get(rule.exercise)
        if (
            last is not None
            and last.side != rep.side
            and rep.overlap_fraction(last) >= th.REP_SAME_REP_OVERLAP
        ):
            return []  # the other arm of a rep done with both arms at once
        self._last_rep[rule.exercise] = rep
        log.debug("track=%s %s rep %.2f-%.2f s side=%s", self.track_id, rep.exercise.value, rep.t_start_s,
                  rep.t_end_s, rep.side)  # fmt: skip
        return self._sets.add(rep)

    def _open_cycle_start(self) -> float | None:
        """Start of a cycle of the open set's exercise still in progress (it may continue the set)."""
        exercise = self._sets.open_exercise
        starts = [ch.counter.cycle_start_s for ch in self._channels if ch.exercise == exercise]
        known = [s for s in starts if s is not None]
        return min(known) if known else None

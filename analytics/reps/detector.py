"""RepDetector: the per-track TrackDetector that counts exercise repetitions and reports sets.

Owns the timing: measurements per frame are kept for the last REP_ANALYSIS_WINDOW_S; every
REP_ANALYSE_EVERY_S the window is counted again (each exercise's signal from its own range,
reps.counting), the exercise is recognised (reps.recognise) unless given, and repetitions
that ended at least REP_COMMIT_DELAY_S ago are reported, each once. When the track ends every
complete repetition left is reported. So a recorded video and a live stream (pickled between
chunks: the state is plain data) give the same counts; a live stream gets them a few seconds
late. Once a set is open its exercise holds until the set closes (one exercise per set).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from analytics import thresholds as th
from analytics.config import AnalyticsConfig
from analytics.events import Event, Exercise
from analytics.reps.counting import count_cycles
from analytics.reps.cycle import Cycle
from analytics.reps.exercises import RULES, ExerciseRule
from analytics.reps.features import BodyFeatures
from analytics.reps.plausible import plausible
from analytics.reps.recognise import Recognition, recognise, single_rep_stands
from analytics.reps.sets import Rep, SetTracker
from analytics.track import TrackedPose

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelCycle:
    """A counted cycle and the channel (side) it was read on."""

    channel: str
    cycle: Cycle[BodyFeatures]


def exercise_cycles(rule: ExerciseRule, frames: Sequence[BodyFeatures]) -> list[ChannelCycle]:
    """Complete repetitions of one exercise over `frames`, in time order.

    Each channel (both sides, or each arm for curls) is counted from its own range. Two arms'
    cycles that overlap by REP_SAME_REP_OVERLAP of the shorter are one repetition done with
    both arms; less overlap means they alternate and each counts.
    """
    found: list[ChannelCycle] = []
    times = [f.t_s for f in frames]
    for channel in rule.channels:
        readings = [rule.read(f, channel) for f in frames]
        cycles = count_cycles(times, [r.value for r in readings], frames, [r.quality for r in readings])
        found.extend(ChannelCycle(channel, c) for c in cycles)
    found.sort(key=lambda cc: cc.cycle.t_peak_s)
    kept: list[ChannelCycle] = []
    for cc in found:
        if any(
            k.channel != cc.channel and _overlap(k.cycle, cc.cycle) >= th.REP_SAME_REP_OVERLAP for k in kept
        ):
            continue
        kept.append(cc)
    return kept


def auto_cycles(exercise: Exercise, frames: Sequence[BodyFeatures]) -> list[ChannelCycle]:
    """An exercise's repetitions when nobody said what is being done: its cycles that also have
    the exercise's shape (reps.plausible: in place, folding at the hip)."""
    return [cc for cc in exercise_cycles(RULES[exercise], frames) if plausible(exercise, cc.cycle, frames)]


def seen_fraction(frames: Sequence[BodyFeatures], count: int) -> float:
    """`count` of the window's frames as a fraction of them, times the share of the window's
    time the person was seen at all.

    Time the person was not seen is not time seen in a posture: a track with gaps (people
    passing behind one another) cannot show that someone stayed in an exercise's posture. A
    step between frames longer than REP_SEEN_MAX_STEP_RATIO times the usual one is a gap (a
    video's frame timing jitters by less: 25 fps sampled at 7.5 gives steps of 0.12 and 0.16 s);
    its time beyond one usual step went unseen."""
    if len(frames) < 2:
        return 1.0 if frames else 0.0
    steps = sorted(b.t_s - a.t_s for a, b in zip(frames, frames[1:], strict=False))
    usual = steps[len(steps) // 2]
    unseen = sum(step - usual for step in steps if step > th.REP_SEEN_MAX_STEP_RATIO * usual)
    span = frames[-1].t_s - frames[0].t_s
    return count / len(frames) * (1.0 - unseen / span if span > 0 else 1.0)


def _overlap(a: Cycle[BodyFeatures], b: Cycle[BodyFeatures]) -> float:
    shared = min(a.t_end_s, b.t_end_s) - max(a.t_start_s, b.t_start_s)
    shorter = min(a.t_end_s - a.t_start_s, b.t_end_s - b.t_start_s)
    return max(shared, 0.0) / shorter if shorter > 0 else 0.0


def window_analysis(
    frames: Sequence[BodyFeatures], given: Exercise | None
) -> tuple[Recognition | None, list[ChannelCycle]]:
    """The exercise of a window (given, or recognised) and its repetitions."""
    if given is not None:
        return Recognition(given, 1.0, "given"), exercise_cycles(RULES[given], frames)
    per_exercise = {e: auto_cycles(e, frames) for e in RULES}
    recognition = recognise({e: [cc.cycle for cc in ccs] for e, ccs in per_exercise.items()}, frames)
    if recognition is None:
        return None, []
    # Squat and lunge read the same signal; the recognised one names its cycles.
    source = Exercise.SQUAT if recognition.exercise is Exercise.LUNGE else recognition.exercise
    cycles = per_exercise[source]
    if len(cycles) == 1:
        rule = RULES[source]
        readable = sum(
            1 for f in frames if any(not math.isnan(rule.read(f, ch).value) for ch in rule.channels)
        )
        if not single_rep_stands(recognition.exercise, cycles[0].cycle, seen_fraction(frames, readable)):
            return None, []
    return recognition, cycles


class RepDetector:
    """Counts complete repetitions on one track (see docs/analytics.md)."""

    # Until when a pose without world landmarks is not read (see `update`). A class default so
    # that states pickled before it existed load.
    _world_until_s: float = -math.inf

    def __init__(self, track_id: int, config: AnalyticsConfig) -> None:
        self.track_id = track_id
        self.given = config.exercise
        self._frames: deque[BodyFeatures] = deque()
        self._sets = SetTracker(track_id, config.exercise)
        self._next_analysis_s: float | None = None
        # The last reported repetition's peak and end: later analyses report only what follows.
        self._reported_peak_s = -float("inf")
        self._reported_end_s = -float("inf")
        # The last reported rep's channel, start and end: the same cycle found again by a later
        # analysis (its ends can move by a sample as the range changes) is not reported twice.
        self._reported_last: tuple[str, float, float] | None = None
        # The open set's exercise and how sure its recognition was (None: no set open).
        self._locked: Recognition | None = None

    def update(self, pose: TrackedPose) -> list[Event]:
        # Joint angles are read in 3-D from world landmarks when the backend gives them, else
        # from the image, where a limb pointing at the camera reads bent: the same elbow reads
        # differently in the two. A track whose poses come from two models in turn (the
        # mediapipe+movenet backend's stand-ins have no world landmarks) would swing between the
        # readings with nobody moving, so while the track has world landmarks a pose without
        # them is not read: a gap, as for a frame where nobody was found.
        if pose.world_xyz_m is not None:
            self._world_until_s = pose.t_s + th.REP_ANALYSIS_WINDOW_S
        if pose.world_xyz_m is not None or pose.t_s > self._world_until_s:
            self._frames.append(BodyFeatures.from_tracked(pose))
        while self._frames and self._frames[0].t_s < pose.t_s - th.REP_ANALYSIS_WINDOW_S:
            self._frames.popleft()
        events: list[Event] = []
        if self._next_analysis_s is None:
            self._next_analysis_s = pose.t_s + th.REP_ANALYSE_EVERY_S
        elif pose.t_s >= self._next_analysis_s:
            self._next_analysis_s = pose.t_s + th.REP_ANALYSE_EVERY_S
            events.extend(self._report(until_s=pose.t_s - th.REP_COMMIT_DELAY_S))
        # A repetition that continues the open set starts within REP_SET_MAX_GAP_S of its last
        # one, lasts at most REP_MAX_DURATION_S and is reported at most REP_COMMIT_DELAY_S +
        # REP_ANALYSE_EVERY_S after it ends: only once that time is past is the set over.
        settled_s = pose.t_s - th.REP_COMMIT_DELAY_S - th.REP_ANALYSE_EVERY_S - th.REP_MAX_DURATION_S
        events.extend(self._sets.tick(settled_s))
        if self._sets.open_exercise is None:
            self._locked = None
        return events

    @property
    def current_set(self) -> tuple[Exercise, int] | None:
        """The exercise of the set under way and its reps reported so far (what a live view shows)."""
        exercise = self._sets.open_exercise
        return None if exercise is None else (exercise, self._sets.open_reps)

    def finish(self, t_s: float) -> list[Event]:
        events = self._report(until_s=None)
        events.extend(self._sets.finish())
        return events

    def _report(self, until_s: float | None) -> list[Event]:
        """Report the window's repetitions that ended by `until_s` (all when None) and were not yet."""
        frames = list(self._frames)
        recognition: Recognition | None = None
        if self._locked is not None:
            locked = self._locked
            source = Exercise.SQUAT if locked.exercise is Exercise.LUNGE else locked.exercise
            cycles = exercise_cycles(RULES[source], frames) if self.given else auto_cycles(source, frames)
            following = [cc for cc in cycles if cc.cycle.t_peak_s > self._reported_end_s]
            if following and following[0].cycle.t_start_s - self._reported_end_s > th.REP_SET_MAX_GAP_S:
                self._locked = None  # the set is over; what comes next is judged afresh
            else:
                recognition = locked
        if self._locked is None:
            # A new set is judged on the motion since the last one.
            fresh = [f for f in frames if f.t_s > self._reported_end_s]
            recognition, cycles = window_analysis(fresh, self.given)
        if recognition is None:
            return []
        rule = RULES[recognition.exercise]
        events: list[Event] = []
        for cc in cycles:
            c = cc.cycle
            if c.t_peak_s <= self._reported_peak_s or self._already_reported(cc):
                continue
            if until_s is not None and c.t_end_s > until_s:
                break
            events.extend(self._sets.add(self._rep(rule, cc), recognition.confidence, recognition.cue))
            self._locked = recognition
            self._reported_peak_s, self._reported_end_s = c.t_peak_s, c.t_end_s
            self._reported_last = (cc.channel, c.t_start_s, c.t_end_s)
            log.debug(
                "track=%s %s rep %.2f-%.2f s", self.track_id, rule.exercise.value, c.t_start_s, c.t_end_s
            )
        return events

    def _already_reported(self, cc: ChannelCycle) -> bool:
        if self._reported_last is None:
            return False
        channel, start, end = self._reported_last
        c = cc.cycle
        shared = min(end, c.t_end_s) - max(start, c.t_start_s)
        shorter = min(end - start, c.t_end_s - c.t_start_s)
        return channel == cc.channel and shorter > 0 and shared / shorter >= th.REP_SAME_REP_OVERLAP

    @staticmethod
    def _rep(rule: ExerciseRule, cc: ChannelCycle) -> Rep:
        cycle = cc.cycle
        return Rep(
            exercise=rule.exercise, side=cc.channel, driving_angle=rule.driving_angle,
            t_start_s=cycle.t_start_s, t_peak_s=cycle.t_peak_s, t_end_s=cycle.t_end_s,
            peak_angle_deg=rule.angle(cycle.peak_value), top_angle_deg=rule.angle(cycle.rested_value),
            rom_deg=cycle.rom, quality=cycle.quality,
            # Form is judged only on a limb seen well; a hidden limb's angles are guesses.
            form_checked=cycle.quality >= th.VISIBLE,
            form_flags=rule.form(cycle, cc.channel) if cycle.quality >= th.VISIBLE else (),
        )  # fmt: skip

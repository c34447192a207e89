"""The six exercises as rules over body measurements: the signal, the posture it is read in, form checks.

Owns what each exercise's signal is; the counting is reps.counting (thresholds from the
signal's own range) and telling exercises apart is reps.recognise. Each rule turns a
frame's measurements into one signal per channel (both sides together, or each arm alone
for curls) that grows into the movement, in degrees:
joint flexion (180 - joint angle), shoulder elevation, or trunk elevation (90 - trunk
inclination). The signal is NaN whenever the posture the exercise needs is not there, so
a curl is never read off someone lying down, nor a push-up off someone standing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from analytics import thresholds as th
from analytics.events import Exercise
from analytics.reps.cycle import Cycle
from analytics.reps.features import LEFT, RIGHT, SIDES, BodyFeatures

BOTH = "both"
_NAN = math.nan


@dataclass(frozen=True)
class Reading:
    """A channel's signal in one frame (NaN when not measurable) and how well it was seen."""

    value: float
    quality: float


NOT_MEASURABLE = Reading(_NAN, 0.0)

# A rule's two functions: the signal of a channel in a frame; the form flags of a counted cycle.
Read = Callable[[BodyFeatures, str], Reading]
Form = Callable[[Cycle[BodyFeatures], str], tuple[str, ...]]


@dataclass(frozen=True)
class ExerciseRule:
    """Everything exercise-specific. `angle_offset`: the driving angle is `angle_offset - signal`
    (flexion of a joint: 180; trunk elevation: 90); None when the signal is the angle itself."""

    exercise: Exercise
    driving_angle: str
    channels: tuple[str, ...]
    angle_offset: float | None
    read: Read
    form: Form

    def angle(self, signal: float) -> float:
        """The driving angle (degrees) for a value of the signal."""
        return signal if self.angle_offset is None else self.angle_offset - signal


# --- reading signals


def _sides(features: BodyFeatures, joint: str, allowed: tuple[str, ...] = SIDES) -> Reading:
    """A joint read from both sides: their mean when both are seen well, else the better-seen side.

    In a side view the far limb is hidden and wrong more often than not; averaging it in
    would drag the near limb's clean signal. Used for exercises where both sides move alike.
    """
    seen = [features.side(joint, s) for s in allowed]
    seen = [v for v in seen if not math.isnan(v.angle_deg)]
    if not seen:
        return NOT_MEASURABLE
    good = [v for v in seen if v.visibility >= th.VISIBLE]
    if len(good) == 2:
        return Reading(
            (good[0].angle_deg + good[1].angle_deg) / 2, (good[0].visibility + good[1].visibility) / 2
        )
    best = max(seen, key=lambda v: v.visibility)
    return Reading(best.angle_deg, best.visibility)


def _trunk_within(features: BodyFeatures, max_deg: float) -> bool:
    incl = features.angles.trunk_inclination_deg
    return not math.isnan(incl) and incl <= max_deg


def _flexion(reading: Reading) -> Reading:
    return Reading(180.0 - reading.value, reading.quality)


def read_squat(f: BodyFeatures, _channel: str) -> Reading:
    if not _trunk_within(f, th.LEGS_MAX_TRUNK_INCLINATION_DEG):
        return NOT_MEASURABLE
    return _flexion(_sides(f, "knee"))


def read_lunge(f: BodyFeatures, channel: str) -> Reading:
    # Both knees bend in a lunge (the back one toward the floor), and which leg leads changes
    # between reps: the knees together follow every lunge, as they follow every squat.
    return read_squat(f, channel)


def read_pushup(f: BodyFeatures, _channel: str) -> Reading:
    incl = f.angles.trunk_inclination_deg
    if math.isnan(incl) or incl < th.PUSHUP_MIN_TRUNK_INCLINATION_DEG:
        return NOT_MEASURABLE
    # The plank: shoulders, hips and knees in a line. Hips hidden behind the body (a push-up
    # filmed head-on) cannot show it either way; the trunk and forearms still do.
    hip = _sides(f, "hip").value
    if not math.isnan(hip) and hip < th.PUSHUP_MIN_HIP_DEG:
        return NOT_MEASURABLE
    # Only arms whose hands are on the floor below the elbows (not hands behind the head).
    supporting = tuple(s for s in SIDES if f.forearm_down(s) >= th.PUSHUP_MIN_FOREARM_DOWN)
    if not supporting:
        return NOT_MEASURABLE
    return _flexion(_sides(f, "elbow", supporting))


def read_curl(f: BodyFeatures, channel: str) -> Reading:
    if not _trunk_within(f, th.UPRIGHT_MAX_TRUNK_INCLINATION_DEG):
        return NOT_MEASURABLE
    shoulder = f.side("shoulder", channel)
    if math.isnan(shoulder.angle_deg) or shoulder.angle_deg > th.CURL_MAX_SHOULDER_DEG:
        return NOT_MEASURABLE
    elbow = f.side("elbow", channel)
    return Reading(180.0 - elbow.angle_deg, elbow.visibility)


def read_jumping_jack(f: BodyFeatures, _channel: str) -> Reading:
    if not _trunk_within(f, th.UPRIGHT_MAX_TRUNK_INCLINATION_DEG):
        return NOT_MEASURABLE
    return _sides(f, "shoulder")


def read_situp(f: BodyFeatures, _channel: str) -> Reading:
    incl = f.angles.trunk_inclination_deg
    if math.isnan(incl) or not f.thigh_rise_torso >= th.SITUP_MIN_THIGH_RISE_TORSO:
        return NOT_MEASURABLE
    return Reading(90.0 - incl, f.trunk_visibility)


# --- form checks: short snake_case flags on a counted repetition


def form_squat(cycle: Cycle[BodyFeatures], _channel: str) -> tuple[str, ...]:
    knee_at_bottom = 180.0 - cycle.peak_value
    return ("depth_not_reached",) if knee_at_bottom > th.SQUAT_DEPTH_KNEE_MAX_DEG else ()


def form_lunge(cycle: Cycle[BodyFeatures], _channel: str) -> tuple[str, ...]:
    # The front knee is the less bent one at the bottom (the back knee drops to the floor).
    knees = [cycle.peak_snapshot.side("knee", s).angle_deg for s in SIDES]
    knees = [k for k in knees if not math.isnan(k)]
    if len(knees) < 2:
        return ()
    front = max(knees)
    off_target = abs(front - th.LUNGE_FRONT_KNEE_TARGET_DEG) > th.LUNGE_FRONT_KNEE_TOLERANCE_DEG
    return ("front_knee_not_90",) if off_target else ()


def form_pushup(cycle: Cycle[BodyFeatures], _channel: str) -> tuple[str, ...]:
    flags = []
    if 180.0 - cycle.rested_value < th.PUSHUP_LOCKOUT_ELBOW_MIN_DEG:
        flags.append("no_lockout")
    if 180.0 - cycle.peak_value > th.PUSHUP_DEPTH_ELBOW_MAX_DEG:
        flags.append("not_low_enough")
    return tuple(flags)


def form_curl(cycle: Cycle[BodyFeatures], _channel: str) -> tuple[str, ...]:
    flags = []
    if 180.0 - cycle.rested_value < th.CURL_EXTENDED_ELBOW_MIN_DEG:
        flags.append("not_fully_extended")
    if 180.0 - cycle.peak_value > th.CURL_CONTRACTED_ELBOW_MAX_DEG:
        flags.append("not_fully_contracted")
    return tuple(flags)


def form_jumping_jack(cycle: Cycle[BodyFeatures], _channel: str) -> tuple[str, ...]:
    flags = []
    peak = cycle.peak_snapshot
    if not peak.wrist_above_nose_torso >= th.JUMPING_JACK_MIN_WRIST_ABOVE_NOSE_TORSO:
        flags.append("arms_not_overhead")
    if not peak.ankle_spread_torso >= th.JUMPING_JACK_MIN_ANKLE_SPREAD_TORSO:
        flags.append("legs_not_apart")
    return tuple(flags)


def form_situp(cycle: Cycle[BodyFeatures], _channel: str) -> tuple[str, ...]:
    inclination_at_top = 90.0 - cycle.peak_value
    return ("not_reaching_up",) if inclination_at_top > th.SITUP_REACH_TRUNK_INCLINATION_MAX_DEG else ()


# --- the rules


def _joint_rule(
    exercise: Exercise, joint: str, channels: tuple[str, ...], read: Read, form: Form
) -> ExerciseRule:
    """A rule driven by a joint's flexion (180 - angle): its peak is the smaller angle."""
    return ExerciseRule(exercise, joint, channels, 180.0, read, form)


RULES: dict[Exercise, ExerciseRule] = {
    Exercise.SQUAT: _joint_rule(Exercise.SQUAT, "knee", (BOTH,), read_squat, form_squat),
    Exercise.LUNGE: _joint_rule(Exercise.LUNGE, "knee", (BOTH,), read_lunge, form_lunge),
    Exercise.PUSHUP: _joint_rule(Exercise.PUSHUP, "elbow", (BOTH,), read_pushup, form_pushup),
    Exercise.BICEP_CURL: _joint_rule(Exercise.BICEP_CURL, "elbow", (LEFT, RIGHT), read_curl, form_curl),
    Exercise.JUMPING_JACK: ExerciseRule(
        Exercise.JUMPING_JACK, "shoulder", (BOTH,), None, read_jumping_jack, form_jumping_jack
    ),
    Exercise.SITUP: ExerciseRule(Exercise.SITUP, "trunk_inclination", (BOTH,), 90.0, read_situp, form_situp),
}

"""The six exercises as rules over body measurements: signal, posture, recognition test, form checks.

Owns what makes each exercise that exercise; the counting itself is the shared machine in
reps.cycle. Each rule turns a frame's measurements into one signal per channel (both
sides together, or each arm alone for curls) that grows into the movement, in degrees:
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
from analytics.reps.cycle import Cycle, CycleSpec
from analytics.reps.features import LEFT, RIGHT, SIDES, BodyFeatures

BOTH = "both"
_NAN = math.nan


@dataclass(frozen=True)
class Reading:
    """A channel's signal in one frame (NaN when not measurable) and how well it was seen."""

    value: float
    quality: float


NOT_MEASURABLE = Reading(_NAN, 0.0)

# A rule's three functions: the signal of a channel in a frame; whether a cycle looks like
# this exercise (automatic recognition); the form flags of a counted cycle.
Read = Callable[[BodyFeatures, str], Reading]
Accepts = Callable[[Cycle[BodyFeatures], str], bool]
Form = Callable[[Cycle[BodyFeatures], str], tuple[str, ...]]


@dataclass(frozen=True)
class ExerciseRule:
    """Everything exercise-specific. `angle_offset`: the driving angle is `angle_offset - signal`
    (flexion of a joint: 180; trunk elevation: 90); None when the signal is the angle itself."""

    exercise: Exercise
    driving_angle: str
    channels: tuple[str, ...]
    cycle: CycleSpec
    angle_offset: float | None
    read: Read
    accepts: Accepts
    form: Form

    def angle(self, signal: float) -> float:
        """The driving angle (degrees) for a value of the signal."""
        return signal if self.angle_offset is None else self.angle_offset - signal


def _spec(peak_signal: float, rest_signal: float) -> CycleSpec:
    return CycleSpec(
        peak_at=peak_signal,
        rest_at=rest_signal,
        min_peak_dwell_s=th.REP_MIN_PEAK_DWELL_S,
        min_duration_s=th.REP_MIN_DURATION_S,
        max_duration_s=th.REP_MAX_DURATION_S,
        max_gap_s=th.REP_MAX_GAP_S,
    )


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


def read_lunge(f: BodyFeatures, _channel: str) -> Reading:
    if not _trunk_within(f, th.LEGS_MAX_TRUNK_INCLINATION_DEG):
        return NOT_MEASURABLE
    # The knee that bends most drives a lunge (which leg is in front changes between reps).
    knees = [f.side("knee", s) for s in SIDES]
    knees = [k for k in knees if not math.isnan(k.angle_deg)]
    if not knees:
        return NOT_MEASURABLE
    deepest = min(knees, key=lambda k: k.angle_deg)
    return Reading(180.0 - deepest.angle_deg, deepest.visibility)


def read_pushup(f: BodyFeatures, _channel: str) -> Reading:
    incl = f.angles.trunk_inclination_deg
    if math.isnan(incl) or incl < th.PUSHUP_MIN_TRUNK_INCLINATION_DEG:
        return NOT_MEASURABLE
    # The plank: shoulders, hips and knees in a line. Unseen hips cannot show it.
    if not _sides(f, "hip").value >= th.PUSHUP_MIN_HIP_DEG:
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


# --- recognition: does a counted cycle look like this exercise (automatic mode only)


def accepts_any(_cycle: Cycle[BodyFeatures], _channel: str) -> bool:
    return True


def accepts_squat(cycle: Cycle[BodyFeatures], _channel: str) -> bool:
    gap = cycle.peak_snapshot.knee_gap_torso
    return not math.isnan(gap) and gap < th.LUNGE_MIN_KNEE_GAP_TORSO


def accepts_lunge(cycle: Cycle[BodyFeatures], _channel: str) -> bool:
    peak = cycle.peak_snapshot
    gap = peak.knee_gap_torso
    if math.isnan(gap) or gap < th.LUNGE_MIN_KNEE_GAP_TORSO:
        return False
    # The lower knee is the back knee, bent toward the floor. Lifting a knee (marching,
    # dancing, stepping up) also splits the knees, but over a straight standing leg.
    lower = peak.lower_knee_side
    return lower is not None and peak.side("knee", lower).angle_deg <= th.SQUAT_LUNGE_REST_KNEE_DEG


def accepts_jumping_jack(cycle: Cycle[BodyFeatures], _channel: str) -> bool:
    return cycle.peak_snapshot.ankle_spread_torso >= th.JUMPING_JACK_MIN_ANKLE_SPREAD_TORSO


def accepts_situp(cycle: Cycle[BodyFeatures], _channel: str) -> bool:
    return _min_hip_deg(cycle.peak_snapshot) <= th.SITUP_MAX_HIP_AT_PEAK_DEG


def _min_hip_deg(f: BodyFeatures) -> float:
    hips = [f.side("hip", s).angle_deg for s in SIDES]
    hips = [h for h in hips if not math.isnan(h)]
    return min(hips) if hips else _NAN


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
    exercise: Exercise, joint: str, channels: tuple[str, ...], peak_deg: float, rest_deg: float,
    read: Read, accepts: Accepts, form: Form,
) -> ExerciseRule:  # fmt: skip
    """A rule driven by a joint's flexion (180 - angle): its peak is the smaller angle."""
    spec = _spec(180.0 - peak_deg, 180.0 - rest_deg)
    return ExerciseRule(exercise, joint, channels, spec, 180.0, read, accepts, form)


RULES: dict[Exercise, ExerciseRule] = {
    Exercise.SQUAT: _joint_rule(
        Exercise.SQUAT, "knee", (BOTH,), th.SQUAT_LUNGE_PEAK_KNEE_DEG, th.SQUAT_LUNGE_REST_KNEE_DEG,
        read_squat, accepts_squat, form_squat,
    ),
    Exercise.LUNGE: _joint_rule(
        Exercise.LUNGE, "knee", (BOTH,), th.SQUAT_LUNGE_PEAK_KNEE_DEG, th.SQUAT_LUNGE_REST_KNEE_DEG,
        read_lunge, accepts_lunge, form_lunge,
    ),
    Exercise.PUSHUP: _joint_rule(
        Exercise.PUSHUP, "elbow", (BOTH,), th.PUSHUP_PEAK_ELBOW_DEG, th.PUSHUP_REST_ELBOW_DEG,
        read_pushup, accepts_any, form_pushup,
    ),
    Exercise.BICEP_CURL: _joint_rule(
        Exercise.BICEP_CURL, "elbow", (LEFT, RIGHT), th.CURL_PEAK_ELBOW_DEG, th.CURL_REST_ELBOW_DEG,
        read_curl, accepts_any, form_curl,
    ),
    Exercise.JUMPING_JACK: ExerciseRule(
        exercise=Exercise.JUMPING_JACK, driving_angle="shoulder", channels=(BOTH,),
        cycle=_spec(th.JUMPING_JACK_PEAK_SHOULDER_DEG, th.JUMPING_JACK_REST_SHOULDER_DEG), angle_offset=None,
        read=read_jumping_jack, accepts=accepts_jumping_jack, form=form_jumping_jack,
    ),
    Exercise.SITUP: ExerciseRule(
        exercise=Exercise.SITUP, driving_angle="trunk_inclination", channels=(BOTH,),
        cycle=_spec(90.0 - th.SITUP_PEAK_TRUNK_INCLINATION_DEG, 90.0 - th.SITUP_REST_TRUNK_INCLINATION_DEG),
        angle_offset=90.0, read=read_situp, accepts=accepts_situp, form=form_situp,
    ),
}  # fmt: skip

"""Which exercise a window of motion is: cues from which joints move and how the trunk lies.

Owns the recognition decision; the counting is reps.counting. Every exercise's signal is
first counted on its own (each only in its posture: upright for squats, lunges, curls and
jumping jacks, trunk toward horizontal for push-ups, knees not below the hips for sit-ups),
giving its cycles and their range of motion. The cues, each with its physical reason:

- **the knees bend** (knee flexion swings at least RECOGNISE_LEGS_MIN_ROM_DEG per cycle):
  a squat or a lunge. Nothing done with the arms or on the floor bends the knees of an
  upright body that far, so legs win over arms (arms raised in a squat are a counterweight).
  The body must go down: at the bottom the lower knee is bent (at most
  RECOGNISE_LOWER_KNEE_MAX_DEG); a knee lifted over a straight standing leg (marching, high
  knees) is neither; nor is sitting down and stretching out (after the cycle the knees must
  be back a thigh below the hips, `RECOGNISE_STANDING_MAX_THIGH_RISE_TORSO`); nor are knees
  seen only by guesswork (cycle quality below VISIBLE: out of the frame, the guess follows the
  upper body), which then rule nothing else out either. Going down folds the hip too (at
  most LEGS_MAX_BOTTOM_HIP_DEG at the bottom): knees bending that far under a hip held near
  straight (stepping, swaying over a walker, kneeling up) are no squat or lunge, and no
  exercise done standing still on the legs (curl, jumping jack) either.
- **squat or lunge**: a lunge splits the legs, one knee drops toward the floor while the
  front one stays a shin's length up, or (lateral lunge) one knee bends while the other stays
  straight; squatting knees stay level and bend alike. Lunge when, through the middle half
  of the typical cycle (upper quartile), the knees are RECOGNISE_LUNGE_MIN_KNEE_GAP_TORSO
  apart in height or RECOGNISE_LUNGE_MIN_KNEE_ASYMMETRY_DEG apart in angle.
- **the arms swing up beside the body** (shoulder angle swings at least
  RECOGNISE_JACK_MIN_SHOULDER_ROM_DEG) with the trunk upright and the knees nearly straight:
  a jumping jack. A curl keeps the upper arm along the body.
- **the elbows bend with the upper arms down** by RECOGNISE_CURL_MIN_ROM_DEG or more, to at
  most RECOGNISE_CURL_MAX_PEAK_ELBOW_DEG at the top of the upper quarter of the reps (the
  forearm past horizontal: the weight comes up; sampling and smoothing under-read a quick top),
  and nothing above: a curl. Arms swinging in a walk bend the elbows 20-40 deg;
  leaning on a table or carrying a bag bends them to 100-120 deg.
- **on the floor**: a push-up bends the elbows with the trunk held horizontal; a sit-up
  swings the trunk itself. Whichever explains more of the motion (cycles weighted by how
  much of a full range each travels) wins.

When no cue fits, the candidate with the most cycles that no cue ruled out physically is
taken, with a low confidence, if it repeated (RECOGNISE_MIN_GUESSED_CYCLES): the exercise_set
event says how sure. A cue rules its exercise out when the movement is too small for it (knees
bending less than a quarter squat, arms below shoulder height, elbows not lifting a weight) or
the wrong shape (a knee lifted over a straight leg, not standing up again): walking, gestures
and everyday bends repeat too, and are not exercise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analytics import thresholds as th
from analytics.events import Exercise
from analytics.reps.cycle import Cycle
from analytics.reps.features import LEFT, RIGHT, BodyFeatures
from analytics.reps.plausible import bent_hip_deg


@dataclass(frozen=True)
class Recognition:
    """The exercise, how sure (0-1), and the cue that decided it (for the event data)."""

    exercise: Exercise
    confidence: float
    cue: str


def median_rom(cycles: Sequence[Cycle[BodyFeatures]]) -> float:
    return statistics.median(c.rom for c in cycles) if cycles else 0.0


def _evidence(exercise: Exercise, cycles: Sequence[Cycle[BodyFeatures]]) -> float:
    """Cycles weighted by how much of the exercise's full range of motion each travelled."""
    full = th.RECOGNISE_FULL_ROM_DEG[exercise.value]
    return sum(min(1.0, c.rom / full) for c in cycles)


def _cycle_middle(cycle: Cycle[BodyFeatures], frames: Sequence[BodyFeatures]) -> list[BodyFeatures]:
    """The frames of the middle half of a cycle: the way down, the bottom and the way up, not
    the standing ends (the legs split as a lunge steps out and come back together after)."""
    quarter = (cycle.t_end_s - cycle.t_start_s) / 4
    return [f for f in frames if cycle.t_start_s + quarter <= f.t_s <= cycle.t_end_s - quarter]


def _upper_quartile(values: Sequence[float]) -> float | None:
    values = [v for v in values if not math.isnan(v)]
    return float(np.percentile(values, 75)) if values else None


def _lunge_split(cycles: Sequence[Cycle[BodyFeatures]], frames: Sequence[BodyFeatures]) -> bool:
    gaps, asymmetry = [], []
    for cycle in cycles:
        middle = _cycle_middle(cycle, frames)
        gap = _upper_quartile([f.knee_gap_torso for f in middle])
        asym = _upper_quartile(
            [abs(f.side("knee", LEFT).angle_deg - f.side("knee", RIGHT).angle_deg) for f in middle]
        )
        if gap is not None:
            gaps.append(gap)
        if asym is not None:
            asymmetry.append(asym)
    split_height = bool(gaps) and statistics.median(gaps) >= th.RECOGNISE_LUNGE_MIN_KNEE_GAP_TORSO
    split_angle = (
        bool(asymmetry) and statistics.median(asymmetry) >= th.RECOGNISE_LUNGE_MIN_KNEE_ASYMMETRY_DEG
    )
    return split_height or split_angle


def _back_up(cycles: Sequence[Cycle[BodyFeatures]], frames: Sequence[BodyFeatures]) -> bool:
    """After the typical cycle the person stands again: the knees a thigh below the hips.
    Sitting down onto a couch and stretching out bends and straightens the knees too, but
    ends with the knees level with the hips."""
    drops = []
    for cycle in cycles:
        end = [
            f.thigh_rise_torso
            for f in frames
            if cycle.t_end_s <= f.t_s <= cycle.t_end_s + th.REP_ANALYSE_EVERY_S
        ]
        end = [x for x in end if not math.isnan(x)]
        if end:
            drops.append(min(end))
    return not drops or statistics.median(drops) <= th.RECOGNISE_STANDING_MAX_THIGH_RISE_TORSO


def _lower_knee_bent(cycles: Sequence[Cycle[BodyFeatures]]) -> bool:
    """At the median bottom, the lower knee is bent: the body went down (squat, any lunge)."""
    angles = []
    for c in cycles:
        side = c.peak_snapshot.lower_knee_side
        if side is not None:
            angles.append(c.peak_snapshot.side("knee", side).angle_deg)
    angles = [a for a in angles if not math.isnan(a)]
    return not angles or statistics.median(angles) <= th.RECOGNISE_LOWER_KNEE_MAX_DEG


def _hip_folds(cycles: Sequence[Cycle[BodyFeatures]]) -> bool:
    """At the median bottom, the more bent hip is folded: the body went down by sitting back as
    well as bending the knees (a squat, any lunge), not by bending the knees under an extended
    hip (a step, a sway over a walker)."""
    hips = [bent_hip_deg(c.peak_snapshot) for c in cycles]
    hips = [h for h in hips if not math.isnan(h)]
    return not hips or statistics.median(hips) <= th.LEGS_MAX_BOTTOM_HIP_DEG


def recognise(
    cycles: Mapping[Exercise, Sequence[Cycle[BodyFeatures]]], frames: Sequence[BodyFeatures]
) -> Recognition | None:
    """The exercise of a window (`frames`), from each exercise's cycles counted on its own signal."""
    legs = cycles.get(Exercise.SQUAT, [])
    excluded: set[Exercise] = set()  # ruled out on physical grounds, even as a guess
    if legs and statistics.median(c.quality for c in legs) < th.VISIBLE:
        # The knees moved only as guessed (out of the frame or hidden): the guess follows the
        # upper body, so nothing shows how the knees move: no squat or lunge, and no more.
        excluded.update((Exercise.SQUAT, Exercise.LUNGE))
    elif legs and median_rom(legs) < th.RECOGNISE_LEGS_MIN_ROM_DEG:
        # Knees bending less than a quarter squat, again and again: walking or stepping in place.
        excluded.update((Exercise.SQUAT, Exercise.LUNGE))
    elif legs:
        if _lower_knee_bent(legs) and not _hip_folds(legs):
            # The knees bend a quarter squat's range or more, again and again, under a hip held
            # near straight: stepping, swaying, kneeling up. Not a squat or lunge, and not an
            # exercise done standing still on the legs either (curls, jumping jacks).
            excluded.update((Exercise.SQUAT, Exercise.LUNGE, Exercise.BICEP_CURL, Exercise.JUMPING_JACK))
        elif not _lower_knee_bent(legs) or not _back_up(legs, frames):
            # A knee lifted over a straight standing leg (marching, high knees, a step up):
            # the body does not go down, so it is neither a squat nor a lunge, even as a guess.
            excluded.update((Exercise.SQUAT, Exercise.LUNGE))
        elif _lunge_split(legs, frames):
            return Recognition(Exercise.LUNGE, 0.8, "knees bend, legs split")
        else:
            return Recognition(Exercise.SQUAT, 0.8, "knees bend level")
    jacks = cycles.get(Exercise.JUMPING_JACK, [])
    upright_arms = {e: _evidence(e, cycles.get(e, [])) for e in (Exercise.JUMPING_JACK, Exercise.BICEP_CURL)}
    floor = {e: _evidence(e, cycles.get(e, [])) for e in (Exercise.PUSHUP, Exercise.SITUP)}
    best_floor = max(floor, key=lambda e: floor[e])
    best_arms_score = max(upright_arms.values())
    if floor[best_floor] > 0 and floor[best_floor] >= best_arms_score:
        cue = "elbows bend, trunk horizontal" if best_floor is Exercise.PUSHUP else "trunk swings up"
        return Recognition(best_floor, 0.8, cue)
    if (
        Exercise.JUMPING_JACK not in excluded
        and jacks
        and median_rom(jacks) >= th.RECOGNISE_JACK_MIN_SHOULDER_ROM_DEG
    ):
        return Recognition(Exercise.JUMPING_JACK, 0.8, "arms swing up beside the body")
    # Arms that do not reach shoulder height, again and again: swinging in a walk, gesturing.
    excluded.add(Exercise.JUMPING_JACK)
    curls = cycles.get(Exercise.BICEP_CURL, [])
    if curls and Exercise.BICEP_CURL not in excluded:
        # The weight comes up: the forearm passes horizontal (elbow flexion past 90 deg). A
        # sample lands up to half an interval from the top and the smoother takes ~40 % off a
        # 2 Hz motion, so a quick rep's top reads low: the better-read quarter of the tops counts.
        top = float(np.percentile([c.peak_value for c in curls], 75))
        lifted = top >= 180.0 - th.RECOGNISE_CURL_MAX_PEAK_ELBOW_DEG
        if lifted and median_rom(curls) >= th.RECOGNISE_CURL_MIN_ROM_DEG:
            return Recognition(Exercise.BICEP_CURL, 0.7, "elbows bend, upper arms down")
        excluded.add(Exercise.BICEP_CURL)
    # No cue fits: the most repeated candidate not ruled out on physical grounds, said to be
    # a guess (a push-up or sit-up whose arms moved more than its trunk). Once is not a repetition.
    counted = {
        e: len(c)
        for e, c in cycles.items()
        if len(c) >= th.RECOGNISE_MIN_GUESSED_CYCLES and e not in excluded
    }
    if not counted:
        return None
    guess = max(counted, key=lambda e: (counted[e], _evidence(e, cycles[e])))
    return Recognition(guess, 0.3, "most repeated movement")


def single_rep_stands(exercise: Exercise, cycle: Cycle[BodyFeatures], readable_fraction: float) -> bool:
    """Whether one lone cycle, recognised automatically, is a repetition of `exercise`.

    Everyday life passes through exercise postures once (a crouch to pick something up, a
    collapse to the knees, lying back on a sofa); someone doing one rep stays in the
    exercise's posture the whole time (`readable_fraction` of the window's frames in which the
    exercise's signal can be read, at least RECOGNISE_SINGLE_MIN_POSTURE_FRACTION) and goes
    through the full range (at least RECOGNISE_SINGLE_MIN_FULL_ROM_FRACTION of a full rep).
    """
    full = th.RECOGNISE_FULL_ROM_DEG[exercise.value]
    return (
        readable_fraction >= th.RECOGNISE_SINGLE_MIN_POSTURE_FRACTION
        and cycle.rom >= th.RECOGNISE_SINGLE_MIN_FULL_ROM_FRACTION * full
    )

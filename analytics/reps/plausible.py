"""What a repetition of each exercise must look like beyond its own signal (automatic mode).

Owns the per-cycle shape checks that keep everyday movement out when nobody said an exercise
is being done. A signal cycle (the elbow bending and straightening, the trunk rising) is
necessary but not sufficient; each check below is a physical property of the exercise that
walking, swaying or getting about does not have:

- **in place** (curl, jumping jack, push-up, sit-up): the body ends a rep where it began; the
  mid-hip moves at most REP_MAX_TRAVEL_TORSO torso lengths from the rep's start to its end.
  Walking swings the arms (elbows bending 20-110 deg) while it carries the body across the
  frame. Squats and lunges are not held to it: a walking lunge travels a stride per rep.
- **a curl is done with the feet planted**: neither ankle seen well moves more than
  CURL_MAX_FEET_TRAVEL_TORSO torso lengths during the rep. Walking bends the elbows in the arm
  swing, in time with steps, and a person walking toward the camera hardly moves the hips
  across the image; each step moves a foot.
- **a sit-up folds at the hip**: at its top the hip angle is at most SITUP_MAX_PEAK_HIP_DEG;
  a trunk that rises over an open hip is standing or kneeling up.

A check that cannot be measured (hips not seen) does not reject a cycle: a rep is never lost
to a landmark the pose backend did not place. With the exercise given, none of this applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from analytics import thresholds as th
from analytics.events import Exercise
from analytics.reps.cycle import Cycle
from analytics.reps.features import LEFT, RIGHT, BodyFeatures

IN_PLACE = frozenset({Exercise.BICEP_CURL, Exercise.JUMPING_JACK, Exercise.PUSHUP, Exercise.SITUP})


def travel_torso(cycle: Cycle[BodyFeatures], frames: Sequence[BodyFeatures]) -> float:
    """How far the mid-hip moved in the image from the cycle's start to its end, in torso
    lengths (NaN when the hips were not seen at two moments of it)."""
    seen = [
        f
        for f in frames
        if cycle.t_start_s <= f.t_s <= cycle.t_end_s and not math.isnan(f.hip_x_ih) and f.torso_ih > 0
    ]
    if len(seen) < 2:
        return math.nan
    first, last = seen[0], seen[-1]
    torso = (first.torso_ih + last.torso_ih) / 2
    return math.hypot(last.hip_x_ih - first.hip_x_ih, last.hip_y_ih - first.hip_y_ih) / torso


def feet_travel_torso(cycle: Cycle[BodyFeatures], frames: Sequence[BodyFeatures]) -> float:
    """How far the farther-moving ankle got from where it was at the cycle's start, in torso
    lengths (NaN when neither ankle was seen well at the start and later in the cycle)."""
    inside = [f for f in frames if cycle.t_start_s <= f.t_s <= cycle.t_end_s and f.torso_ih > 0]
    most = math.nan
    for x, y in ((0, 1), (2, 3)):
        seen = [f for f in inside if not math.isnan(f.ankles_ih[x])]
        if len(seen) < 2:
            continue
        first = seen[0]
        for f in seen[1:]:
            d = math.hypot(f.ankles_ih[x] - first.ankles_ih[x], f.ankles_ih[y] - first.ankles_ih[y])
            d /= (first.torso_ih + f.torso_ih) / 2
            most = d if math.isnan(most) else max(most, d)
    return most


def bent_hip_deg(features: BodyFeatures) -> float:
    """The more bent hip's angle (NaN when neither hip angle is seen)."""
    hips = [features.side("hip", s).angle_deg for s in (LEFT, RIGHT)]
    hips = [h for h in hips if not math.isnan(h)]
    return min(hips) if hips else math.nan


def plausible(exercise: Exercise, cycle: Cycle[BodyFeatures], frames: Sequence[BodyFeatures]) -> bool:
    """Whether `cycle` has the shape of a repetition of `exercise` (see the module docstring)."""
    if exercise in IN_PLACE and travel_torso(cycle, frames) > th.REP_MAX_TRAVEL_TORSO:
        return False
    # NaN compares False: feet out of the frame do not reject a curl.
    if exercise is Exercise.BICEP_CURL and feet_travel_torso(cycle, frames) > th.CURL_MAX_FEET_TRAVEL_TORSO:
        return False
    hip = bent_hip_deg(cycle.peak_snapshot)
    # NaN compares False: an unseen hip does not reject the cycle.
    return not (exercise is Exercise.SITUP and hip > th.SITUP_MAX_PEAK_HIP_DEG)

"""The tutorial counter: one joint angle, fixed thresholds, told the exercise. A yardstick, not a detector.

Owns the baseline that posepipe's counts must beat (issue 25): what a typical 60-line
tutorial does with MediaPipe landmarks. Per frame, the image-plane angle of one joint (the
better-seen side); a repetition is counted when the angle goes past the "down" threshold
and then back past the "up" threshold. Jumping jacks: arms overhead with the legs apart,
then arms down with the feet together. No smoothing of its own beyond the tracker's, no
recognition, no adaptation: the numbers are the ones tutorials print.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from analytics import geometry as g
from analytics import thresholds as th
from analytics.events import Exercise
from analytics.track import TrackedPose, Tracker
from pose.types import FramePoses

_JOINT = {
    "knee": ((g.L_HIP, g.L_KNEE, g.L_ANKLE), (g.R_HIP, g.R_KNEE, g.R_ANKLE)),
    "elbow": ((g.L_SHOULDER, g.L_ELBOW, g.L_WRIST), (g.R_SHOULDER, g.R_ELBOW, g.R_WRIST)),
    "hip": ((g.L_SHOULDER, g.L_HIP, g.L_KNEE), (g.R_SHOULDER, g.R_HIP, g.R_KNEE)),
}


@dataclass(frozen=True)
class TutorialRule:
    """Count when `joint` goes below `down_deg`, then back above `up_deg`. `most_bent`: take
    the more bent side (a lunge's front knee, the curling arm) instead of the better-seen one."""

    joint: str
    down_deg: float
    up_deg: float
    most_bent: bool = False


TUTORIAL_RULES = {
    Exercise.SQUAT: TutorialRule("knee", th.BASELINE_SQUAT_DOWN_KNEE_DEG, th.BASELINE_UP_DEG),
    Exercise.LUNGE: TutorialRule("knee", th.BASELINE_SQUAT_DOWN_KNEE_DEG, th.BASELINE_UP_DEG, most_bent=True),
    Exercise.PUSHUP: TutorialRule("elbow", th.BASELINE_PUSHUP_DOWN_ELBOW_DEG, th.BASELINE_UP_DEG),
    Exercise.BICEP_CURL: TutorialRule(
        "elbow", th.BASELINE_CURL_UP_ELBOW_DEG, th.BASELINE_CURL_DOWN_ELBOW_DEG, most_bent=True
    ),
    Exercise.SITUP: TutorialRule("hip", th.BASELINE_SITUP_UP_HIP_DEG, th.BASELINE_SITUP_DOWN_HIP_DEG),
}


def _angle(pose: TrackedPose, joint: str, most_bent: bool) -> float:
    sides = []
    for a, b, c in _JOINT[joint]:
        vis = float(min(pose.visibility[a], pose.visibility[b], pose.visibility[c]))
        if vis >= th.VISIBLE:
            sides.append((vis, g.angle_deg(pose.image_xy[a], pose.image_xy[b], pose.image_xy[c])))
    sides = [s for s in sides if not math.isnan(s[1])]
    if not sides:
        return math.nan
    return min(s[1] for s in sides) if most_bent else max(sides)[1]


def _jack_state(pose: TrackedPose) -> str | None:
    """ "open" (both wrists above the nose, ankles wider than the shoulders), "closed" (wrists
    below the shoulders, ankles within the shoulders' width), else None."""
    xy, vis = pose.image_xy, pose.visibility
    needed = (g.NOSE, g.L_WRIST, g.R_WRIST, g.L_SHOULDER, g.R_SHOULDER, g.L_ANKLE, g.R_ANKLE)
    if any(vis[i] < th.VISIBLE for i in needed):
        return None
    shoulders = abs(float(xy[g.L_SHOULDER][0] - xy[g.R_SHOULDER][0]))
    ankles = abs(float(xy[g.L_ANKLE][0] - xy[g.R_ANKLE][0]))
    wrists_y = max(float(xy[g.L_WRIST][1]), float(xy[g.R_WRIST][1]))  # the lower wrist
    if wrists_y < xy[g.NOSE][1] and ankles > shoulders:
        return "open"
    if wrists_y > max(float(xy[g.L_SHOULDER][1]), float(xy[g.R_SHOULDER][1])) and ankles <= shoulders:
        return "closed"
    return None


def tutorial_count(poses: Iterable[TrackedPose], exercise: Exercise) -> int:
    """Repetitions the tutorial counter reports for one track's poses, told the exercise."""
    count, down = 0, False
    for pose in poses:
        if exercise is Exercise.JUMPING_JACK:
            state = _jack_state(pose)
            if state == "open":
                down = True
            elif state == "closed" and down:
                count, down = count + 1, False
            continue
        rule = TUTORIAL_RULES[exercise]
        angle = _angle(pose, rule.joint, rule.most_bent)
        if np.isnan(angle):
            continue
        if angle < rule.down_deg:
            down = True
        elif angle > rule.up_deg and down:
            count, down = count + 1, False
    return count


def tutorial_count_clip(frames: Sequence[FramePoses], exercise: Exercise) -> int:
    """The tutorial counter over every track of a clip, the tracks made as the engine makes them."""
    tracker = Tracker(lost_after_s=th.TRACK_LOST_AFTER_S)
    tracks: dict[int, list[TrackedPose]] = {}
    for frame in frames:
        for pose in tracker.update(frame).tracked:
            tracks.setdefault(pose.track_id, []).append(pose)
    return sum(tutorial_count(poses, exercise) for poses in tracks.values())

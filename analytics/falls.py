"""Fall detection for one track: a FALL event per fall, and a LONG_LIE event if the person stays down.

Owns the fall rules, the per-track state machine and the events' evidence; the body
measurements come from analytics.falls_body and every number from analytics.thresholds
(docs/analytics.md gives the reasons).

A fall is an uncontrolled descent: the body's centre of mass drops far, faster than a
person lowers themselves on purpose, the trunk goes from upright to near horizontal, and
the person stays down. How fast is "uncontrolled" depends on the height fallen from
(gravity gives v = sqrt(2 g h)), so a fall from a chair needs less speed than one from
standing. Controlled movements (sitting, lying down, kneeling, bending, exercising) fail
at least one test: they are slow for their height, or shallow, or keep the trunk up, or
start from lying, or end with the person back up within a second.

States: WATCHING (looking for such a descent ending with the trunk down), LANDED (it ended;
the person must stay down for FALL_CONFIRM_S), FALLEN (reported; a LONG_LIE follows if the
person stays down, and a FALL_RECOVERED, with the time it took, when they are back on their
feet, which returns to WATCHING). A track whose person is out of sight a second after the
landing, or that ends while LANDED (the person left the frame, the video ended), is reported
on what was seen.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from analytics import thresholds as th
from analytics.config import AnalyticsConfig
from analytics.events import Event, EventType
from analytics.falls_body import BodySample
from analytics.track import TrackedPose

log = logging.getLogger(__name__)

# The BodySample heights a speed can be measured on.
Height = Literal["com_y", "hip_y", "head_y"]

# Timestamps are floats (2.4 - 2.1 is 0.2999...): durations compare with this slack.
_EPS_S = 1e-6


class FallState(str, Enum):
    WATCHING = "watching"
    LANDED = "landed"
    FALLEN = "fallen"


class Confirmation(str, Enum):
    STAYED_DOWN = "stayed_down"
    TRACK_ENDED = "track_ended"
    # Out of sight since the landing for FALL_CONFIRM_S, the track not ended yet.
    UNSEEN = "unseen"


@dataclass(frozen=True)
class Descent:
    """A descent that qualifies as a fall. Heights are image y (image heights, down is +);
    speeds are downward in torso lengths per second; the drop is in torso lengths; trunk
    angles are from vertical in degrees (0 upright, 90 horizontal)."""

    onset_s: float
    landed_s: float
    top_com_y: float
    top_hip_y: float
    top_feet_y: float
    torso_ih: float
    start_height_torso: float
    drop_torso: float
    peak_com_speed: float
    peak_hip_speed: float
    peak_head_speed: float
    head_start_height_torso: float
    trunk_before_deg: float
    trunk_after_deg: float

    @property
    def freefall_fraction(self) -> float:
        """Peak centre-of-mass speed as a fraction of free fall from the starting height."""
        return self.peak_com_speed / freefall_speed_torso_per_s(self.start_height_torso)

    @property
    def head_freefall_fraction(self) -> float:
        """Peak head speed as a fraction of free fall from the head's starting height."""
        return self.peak_head_speed / freefall_speed_torso_per_s(self.head_start_height_torso)

    @property
    def strength(self) -> float:
        """How far past the tests the descent is: 1 just passes, 2 is twice as fast and deep."""
        return min(
            self.freefall_fraction / th.FALL_MIN_FREEFALL_FRACTION,
            self.drop_torso / (th.FALL_MIN_DROP_FRACTION * self.start_height_torso),
        )

    def hip_height_fraction(self, sample: BodySample) -> float:
        """The pelvis's height above the floor now, as a fraction of what it was before the
        descent: the lower of its height above where the feet stood (a still camera; legs
        stretched toward the camera put the feet low in the image) and its height above the
        feet now, in the body's own torso lengths (a camera that pans, tilts or zooms to
        follow the fall moves the whole body in the image, not the pelvis against the feet)."""
        before = (self.top_feet_y - self.top_hip_y) / self.torso_ih
        if before <= 1e-9:
            return 0.0
        where_stood = (self.top_feet_y - sample.hip_y) / self.torso_ih
        above_feet = (sample.feet_y - sample.hip_y) / sample.torso_ih
        return min(where_stood, above_feet) / before

    def is_up(self, sample: BodySample) -> bool:
        """Back on their feet: not down, and the pelvis back above FALL_MAX_HIP_HEIGHT_FRACTION
        of its standing height (sitting up or kneeling on the floor, or someone kneeling
        beside them that the pose model switched to, is not up)."""
        return not self.is_down(sample) and self.hip_height_fraction(sample) > th.FALL_MAX_HIP_HEIGHT_FRACTION

    def is_down(self, sample: BodySample) -> bool:
        """Still on the ground: trunk not upright, or centre of mass still well below its start."""
        low = self.top_com_y + th.FALL_STAYS_DOWN_FRACTION * self.drop_torso * self.torso_ih
        return sample.trunk_rise < th.FALL_UPRIGHT_RISE or sample.com_y >= low


def freefall_speed_torso_per_s(height_torso: float) -> float:
    """Speed after falling freely from `height_torso` (torso lengths), in torso lengths/s."""
    g_torso = th.GRAVITY_M_PER_S2 / th.WORLD_TORSO_M
    return math.sqrt(2.0 * g_torso * max(height_torso, 0.0))


def downward_speed(samples: list[BodySample], i: int, height: Height) -> float:
    """Downward speed of `height` (a BodySample field) at samples[i] in torso lengths per
    second, over the shortest span of at least FALL_SPEED_SPAN_S ending there, so that every
    analysis rate measures over about the same time (0 if there is no such span, or only
    across a gap longer than FALL_SPEED_MAX_SPAN_S)."""
    now = samples[i]
    j = i - 1
    while j >= 0 and now.t_s - samples[j].t_s < th.FALL_SPEED_SPAN_S - _EPS_S:
        j -= 1
    if j < 0 or now.t_s - samples[j].t_s > th.FALL_SPEED_MAX_SPAN_S:
        return 0.0
    then = samples[j]
    return (getattr(now, height) - getattr(then, height)) / (now.t_s - then.t_s) / then.torso_ih


def start_height_torso(samples: list[BodySample], top: int, height: Height = "com_y") -> float:
    """Height of the centre of mass (or another `height`) above the feet before a descent from
    samples[top], in torso lengths: the most it was in the FALL_START_LOOKBACK_S up to `top`
    (so a window that begins mid-descent cannot lower it). The centre's is kept within the
    plausible range of a seat to standing; the head's is at least that."""
    t_top = samples[top].t_s
    heights = [
        (s.feet_y - getattr(s, height)) / s.torso_ih
        for s in samples[: top + 1]
        if t_top - s.t_s <= th.FALL_START_LOOKBACK_S
    ]
    com = min(max(max(heights), th.FALL_MIN_START_HEIGHT_TORSO), th.FALL_MAX_START_HEIGHT_TORSO)
    return com if height == "com_y" else max(max(heights), com)


def find_descent(samples: list[BodySample]) -> Descent | None:
    """The fall ending at the last sample, if the trunk is down there and the samples before
    show it upright, then a drop of the centre of mass fast and deep enough for a fall."""
    now = samples[-1]
    if now.trunk_rise > th.FALL_DOWN_RISE:
        return None
    first = 0
    while now.t_s - samples[first].t_s > th.FALL_MAX_DURATION_S:
        first += 1
    upright = [k for k in range(first, len(samples) - 1) if samples[k].trunk_rise >= th.FALL_UPRIGHT_RISE]
    if not upright:
        return None
    # The drop is measured from the highest the centre of mass was while the trunk was still
    # up: knees can buckle before the trunk tips.
    top = min(upright, key=lambda k: samples[k].com_y)
    # A fall's fast drop comes before or with the trunk's turn to horizontal (the body lands
    # as the trunk tips): a drop while already lying is the pose jumping, not a fall.
    down = next(k for k in range(upright[-1] + 1, len(samples)) if samples[k].trunk_rise <= th.FALL_DOWN_RISE)
    by = samples[down].t_s + th.FALL_PEAK_AFTER_DOWN_S + _EPS_S
    speeds = {k: downward_speed(samples, k, "com_y") for k in range(top + 1, len(samples))}
    # (A speed across a gap in the poses counts if the gap began in time: the fall was unseen.)
    peak_at = max((k for k in speeds if samples[k - 1].t_s <= by), key=lambda k: speeds[k], default=None)
    if peak_at is None:
        return None
    ref, height = samples[top], start_height_torso(samples, top)
    if (ref.feet_y - ref.hip_y) / ref.torso_ih < th.FALL_MIN_START_PELVIS_TORSO:
        log.debug("t=%.2f the descent starts with the pelvis on the floor: no height to fall", now.t_s)
        return None
    drop = (now.com_y - ref.com_y) / ref.torso_ih
    fraction = speeds[peak_at] / freefall_speed_torso_per_s(height)
    in_time = [k for k in speeds if samples[k - 1].t_s <= by]
    head_speed = max(downward_speed(samples, k, "head_y") for k in in_time)
    head_height = start_height_torso(samples, top, "head_y")
    head_fraction = head_speed / freefall_speed_torso_per_s(head_height)
    # Fast enough: the centre of mass falling at a fall's speed, or, a little slower, while the
    # body topples (the head, at the top of a body turning about its feet or knees, falling
    # at a fall's speed: someone lowering themselves on purpose keeps the head slow).
    fast = fraction >= th.FALL_MIN_FREEFALL_FRACTION or (
        fraction >= th.FALL_MIN_TOPPLE_FREEFALL_FRACTION
        and head_fraction >= th.FALL_MIN_HEAD_FREEFALL_FRACTION
    )
    if drop < th.FALL_MIN_DROP_FRACTION * height or not fast:
        log.debug(
            "t=%.2f too slow or shallow for a fall: drop %.2f of %.2f torso, %.3f of free-fall speed "
            "(head %.3f)",
            now.t_s, drop, height, fraction, head_fraction,
        )  # fmt: skip
        return None
    # Onset: the last still moment before the descent that reached the peak. Landing: the
    # middle of the first still span after it (a speed covers the span before its sample).
    slow = th.FALL_ONSET_SPEED_TORSO_PER_S
    onset = next((k for k in range(peak_at, top, -1) if speeds[k] < slow), top)
    still = next((k for k in range(peak_at, len(samples)) if speeds[k] < slow), len(samples) - 1)
    landed_by = samples[still].t_s - th.FALL_SPEED_SPAN_S / 2
    landed = max([peak_at] + [k for k in range(peak_at, still + 1) if samples[k].t_s <= landed_by + _EPS_S])
    if _someone_else(samples, onset):
        return None
    if _rested_on_the_floor(samples, top):
        log.debug("t=%.2f lying back from sitting still on the floor: not a fall", now.t_s)
        return None

    return Descent(
        onset_s=samples[onset].t_s,
        landed_s=samples[landed].t_s,
        top_com_y=ref.com_y,
        top_hip_y=ref.hip_y,
        top_feet_y=ref.feet_y,
        torso_ih=ref.torso_ih,
        start_height_torso=height,
        drop_torso=drop,
        peak_com_speed=speeds[peak_at],
        peak_hip_speed=max(downward_speed(samples, k, "hip_y") for k in in_time),
        peak_head_speed=head_speed,
        head_start_height_torso=head_height,
        trunk_before_deg=min(samples[k].trunk_angle_deg for k in range(top, upright[-1] + 1)),
        trunk_after_deg=now.trunk_angle_deg,
    )


def _someone_else(samples: list[BodySample], onset: int) -> bool:
    """True if the drop since `onset` is not one body's movement. Between two frames a body
    cannot cover most of a fall (it takes 0.3 s or more), so most of the drop in one frame
    step is the tracker following someone else already down. Across a gap in the poses (the
    person lost mid-fall) the body had the time, and a re-detection on the floor is the same
    person if it is where they were: a fall carries the centre of mass sideways by about its
    height at most."""
    now = samples[-1]
    drop = now.com_y - samples[onset].com_y
    for k in range(onset + 1, len(samples)):
        a, b = samples[k - 1], samples[k]
        if b.t_s - a.t_s <= th.FALL_SPEED_SPAN_S + _EPS_S:
            if b.com_y - a.com_y > th.FALL_MAX_ONE_STEP_FRACTION * drop:
                log.debug("t=%.2f down in one step from upright: the tracker followed someone else", now.t_s)
                return True
        elif abs(b.com_x - a.com_x) > th.FALL_REDETECT_MAX_SHIFT_TORSO * a.torso_ih:
            log.debug("t=%.2f re-detected on the floor away from where the person was", now.t_s)
            return True
    return False


def _rested_on_the_floor(samples: list[BodySample], top: int) -> bool:
    """True if, before the trunk went down, the person sat still with the pelvis on the floor
    for FALL_FLOOR_REST_S: someone sitting on the floor is already down, and lying back from
    there is lying down (a fall that ends sitting was over when they came to rest)."""
    ref = samples[top]
    before = (ref.feet_y - ref.hip_y) / ref.torso_ih
    since: float | None = None
    for k in range(top + 1, len(samples)):
        s = samples[k]
        if s.trunk_rise <= th.FALL_DOWN_RISE:
            break
        pelvis = (s.feet_y - s.hip_y) / s.torso_ih
        low = before > 1e-9 and pelvis / before <= th.FALL_MAX_HIP_HEIGHT_FRACTION
        if low and abs(downward_speed(samples, k, "com_y")) < th.FALL_ONSET_SPEED_TORSO_PER_S:
            since = s.t_s if since is None else since
            if s.t_s - since >= th.FALL_FLOOR_REST_S - _EPS_S:
                return True
        else:
            since = None
    return False


class FallDetector:
    """Per-track fall detector (TrackDetector protocol). Picklable: plain data only."""

    # A class default so that detectors pickled before it existed load.
    _fall_track_id: int | None = None

    def __init__(self, track_id: int, config: AnalyticsConfig) -> None:
        self.track_id = track_id
        self.long_lie_after_s = config.long_lie_after_s
        self.state = FallState.WATCHING
        self._samples: deque[BodySample] = deque()
        self._descent: Descent | None = None
        self._up_since_s: float | None = None
        self._long_lie_reported = False
        # The track the fall was seen on, when this track continues it (see `resume`).
        self._fall_track_id: int | None = None

    def update(self, pose: TrackedPose) -> list[Event]:
        return self.step(BodySample.from_tracked(pose))

    def step(self, sample: BodySample) -> list[Event]:
        """The state machine on one body sample (what `update` does after measuring the pose)."""
        self._samples.append(sample)
        while sample.t_s - self._samples[0].t_s > th.FALL_HISTORY_S:
            self._samples.popleft()
        if self.state == FallState.WATCHING:
            self._descent = find_descent(list(self._samples))
            if self._descent is not None:
                self.state = FallState.LANDED
                self._up_since_s = None
            return []
        if self.state == FallState.LANDED:
            return self._landed(sample)
        return self._fallen(sample)

    def finish(self, t_s: float) -> list[Event]:
        # The person left the frame or the video ended after landing, before the confirmation
        # time: report what was seen.
        return self._report_on_what_was_seen(t_s, Confirmation.TRACK_ENDED)

    def unseen(self, t_s: float) -> list[Event]:
        """A frame at `t_s` without this track's person, the track not ended yet. A fallen person
        out of sight (gone out of view, lost by the pose model on the floor) is confirmed on what
        was seen once FALL_CONFIRM_S has passed since the landing, the time a person in sight
        must stay down: waiting for the track to end (TRACK_LOST_AFTER_S after the last pose)
        only delays the alert, since nobody seen down is seen getting up meanwhile."""
        d = self._descent
        if self.state != FallState.LANDED or d is None or t_s - d.landed_s < th.FALL_CONFIRM_S - _EPS_S:
            return []
        return self._report_on_what_was_seen(t_s, Confirmation.UNSEEN)

    def _report_on_what_was_seen(self, t_s: float, confirmed_by: Confirmation) -> list[Event]:
        """The fall, if LANDED and the person was on the ground since the landing and not up in
        the last pose seen (the last pose of a body sliding out of view or half lost can read
        anything, so one pose on the ground since the landing is enough)."""
        d = self._descent
        if self.state != FallState.LANDED or d is None:
            return []
        since = [s for s in self._samples if s.t_s >= d.landed_s - _EPS_S] or [self._samples[-1]]
        if any(self._on_ground(s, d) for s in since) and not d.is_up(self._samples[-1]):
            self.state = FallState.FALLEN
            return [self._fall_event(t_s, confirmed_by)]
        return []

    @property
    def fall_track_id(self) -> int:
        """The track the fall now followed was seen on: this one, or the one `resume` continued."""
        return self.track_id if self._fall_track_id is None else self._fall_track_id

    def lost_on_floor(self) -> LostFall | None:
        """After `finish`: the fall of a person whose track ended while they were down (the pose
        model lost them on the floor), for analytics.floor_watch to keep; None otherwise."""
        if self.state != FallState.FALLEN or self._descent is None or not self._samples:
            return None
        return LostFall(
            track_id=self.fall_track_id,
            descent=self._descent,
            last_seen=self._samples[-1],
            long_lie_reported=self._long_lie_reported,
        )

    def resume(self, lost: LostFall) -> None:
        """This new track is the person of `lost`, found again on the floor: continue their fall
        (a long lie counted from their landing, a recovery when they get up)."""
        self.state = FallState.FALLEN
        self._descent = lost.descent
        self._long_lie_reported = lost.long_lie_reported
        self._up_since_s = None
        self._fall_track_id = lost.track_id

    def _landed(self, sample: BodySample) -> list[Event]:
        d = self._descent
        assert d is not None
        if self._got_up(sample, d):
            log.debug("track=%s t=%.2f up again soon after a descent: not a fall", self.track_id, sample.t_s)
            self.state, self._descent = FallState.WATCHING, None
            return []
        # While the body is still going down the descent's measures grow: keep the fullest.
        again = find_descent(list(self._samples))
        if again is not None and again.onset_s <= d.landed_s and again.drop_torso >= d.drop_torso:
            self._descent = d = again
        if sample.t_s - d.landed_s >= th.FALL_CONFIRM_S - _EPS_S and self._on_ground(sample, d):
            self.state = FallState.FALLEN
            return [self._fall_event(sample.t_s, Confirmation.STAYED_DOWN)]
        return []

    def _fallen(self, sample: BodySample) -> list[Event]:
        d = self._descent
        assert d is not None
        if self._got_up(sample, d):
            recovered = self._recovered_event(sample.t_s, d)
            self.state, self._descent, self._long_lie_reported = FallState.WATCHING, None, False
            return [recovered]
        if (
            self._up_since_s is None
            and not self._long_lie_reported
            and sample.t_s - d.landed_s >= self.long_lie_after_s - _EPS_S
        ):
            self._long_lie_reported = True
            return [self._long_lie_event(sample.t_s, d)]
        return []

    def _on_ground(self, sample: BodySample, d: Descent) -> bool:
        """The pelvis low, and not getting up: someone bent over or kneeling keeps the hips up
        and is not on the ground (yet); sitting up on the floor is still on the ground."""
        return self._up_since_s is None and d.hip_height_fraction(sample) <= th.FALL_MAX_HIP_HEIGHT_FRACTION

    def _got_up(self, sample: BodySample, d: Descent) -> bool:
        """True once the person has been up for FALL_GETUP_S (a single upright frame is noise)."""
        if not d.is_up(sample):
            self._up_since_s = None
            return False
        if self._up_since_s is None:
            self._up_since_s = sample.t_s
        return sample.t_s - self._up_since_s >= th.FALL_GETUP_S - _EPS_S

    def _fall_event(self, t_detected_s: float, confirmed_by: Confirmation) -> Event:
        d = self._descent
        assert d is not None
        # Confidence grows with how far past the tests the descent is; a fall whose track
        # ended before the person was seen staying down has less evidence.
        confidence = 1.0 - 0.5 / d.strength
        if confirmed_by != Confirmation.STAYED_DOWN:
            confidence *= th.FALL_TRACK_ENDED_CONFIDENCE
        return Event(
            type=EventType.FALL,
            t_start_s=d.onset_s,
            t_end_s=d.landed_s,
            track_id=self.track_id,
            confidence=round(min(max(confidence, 0.0), 1.0), 3),
            data={
                "t_detected_s": round(t_detected_s, 3),
                "confirmed_by": confirmed_by.value,
                "trunk_before_deg": round(d.trunk_before_deg, 1),
                "trunk_after_deg": round(d.trunk_after_deg, 1),
                "peak_com_speed_torso_per_s": round(d.peak_com_speed, 2),
                "peak_hip_speed_torso_per_s": round(d.peak_hip_speed, 2),
                "peak_head_speed_torso_per_s": round(d.peak_head_speed, 2),
                "freefall_fraction": round(d.freefall_fraction, 3),
                "head_freefall_fraction": round(d.head_freefall_fraction, 3),
                "start_height_torso": round(d.start_height_torso, 2),
                "drop_torso": round(d.drop_torso, 2),
                "on_ground_s": round(max(0.0, t_detected_s - d.landed_s), 2),
                "got_up": False,
                "got_up_t_s": None,
            },
        )

    def _recovered_event(self, t_s: float, d: Descent) -> Event:
        """The person is back on their feet: up since `_up_since_s`, seen so until `t_s`."""
        up_s = self._up_since_s if self._up_since_s is not None else t_s
        return Event(
            type=EventType.FALL_RECOVERED,
            t_start_s=d.landed_s,
            t_end_s=max(up_s, d.landed_s),
            track_id=self.track_id,
            confidence=1.0,
            data={
                "t_detected_s": round(t_s, 3),
                "fall_onset_s": round(d.onset_s, 3),
                "down_s": round(max(0.0, up_s - d.landed_s), 2),
                "after_long_lie": self._long_lie_reported,
                "fall_track_id": self.fall_track_id,
            },
        )

    def _long_lie_event(self, t_s: float, d: Descent) -> Event:
        return long_lie_event(self.track_id, d, t_s, self.fall_track_id, seen=True)


def long_lie_event(track_id: int, d: Descent, t_s: float, fall_track_id: int, seen: bool) -> Event:
    """A fallen person still down at `t_s`. `seen`: on the floor in the poses now, or lost on
    the floor by the pose model since `track_id`'s last pose (analytics.floor_watch)."""
    return Event(
        type=EventType.LONG_LIE,
        t_start_s=d.landed_s,
        t_end_s=t_s,
        track_id=track_id,
        confidence=1.0,
        data={
            "t_detected_s": round(t_s, 3),
            "fall_onset_s": round(d.onset_s, 3),
            "down_s": round(t_s - d.landed_s, 2),
            "fall_track_id": fall_track_id,
            "seen": seen,
        },
    )


@dataclass(frozen=True)
class LostFall:
    """A fallen person the pose model lost while they were down: the track the fall was seen
    on, the fall, where they were last seen, and whether their long lie was reported."""

    track_id: int
    descent: Descent
    last_seen: BodySample
    long_lie_reported: bool

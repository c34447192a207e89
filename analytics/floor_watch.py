"""People who fell and were then lost by the pose model while down: not forgotten.

Owns a fall after its track ended with the person still on the floor. MediaPipe finds a
standing person far more reliably than a lying one (a body seen lengthwise, foreshortened,
against the floor), so a fallen person's track often ends while they lie there; someone who
gets up and walks away passes through upright poses, which the model does find. So a person
lost on the floor is taken to be still there:

- their long lie is reported on time even unseen (`seen: false` in its data, and the track
  the fall was seen on);
- a new track whose first pose lies on the floor where they were (the centre of mass within
  FALL_REDETECT_MAX_SHIFT_TORSO of their last pose, the reason a re-detection mid-fall is the
  same person; the trunk not upright and the pelvis low, so a helper kneeling beside them or
  a passer-by is not taken for them) continues their fall: its detector reports the long lie
  if not yet reported, and a `fall_recovered` with the time from the landing when they are up.

A lost fall waits until it is claimed so (a live camera may find the person again minutes
later); the engine that owns the watch is pickled with it between chunks.
"""

from __future__ import annotations

from analytics import thresholds as th
from analytics.events import Event
from analytics.falls import LostFall, long_lie_event
from analytics.falls_body import BodySample


class FloorWatch:
    """The fallen people lost on the floor of one video or stream. Picklable: plain data."""

    def __init__(self, long_lie_after_s: float) -> None:
        self.long_lie_after_s = long_lie_after_s
        self._lost: list[LostFall] = []

    @property
    def lost(self) -> tuple[LostFall, ...]:
        return tuple(self._lost)

    def add(self, fall: LostFall) -> None:
        self._lost.append(fall)

    def claim(self, first: BodySample) -> LostFall | None:
        """The lost fall a new track's first pose continues (removed from the watch), if any:
        the nearest whose person lay where this body lies."""
        found = [fall for fall in self._lost if _lies_where_they_lay(fall, first)]
        if not found:
            return None
        nearest = min(found, key=lambda fall: abs(fall.last_seen.com_x - first.com_x))
        self._lost.remove(nearest)
        return nearest

    def tick(self, t_s: float) -> list[Event]:
        """Long lies of the people still lost on the floor that are due by `t_s`, each once."""
        events: list[Event] = []
        for i, fall in enumerate(self._lost):
            d = fall.descent
            if not fall.long_lie_reported and t_s - d.landed_s >= self.long_lie_after_s - 1e-6:
                events.append(long_lie_event(fall.track_id, d, t_s, fall.track_id, seen=False))
                self._lost[i] = LostFall(fall.track_id, d, fall.last_seen, long_lie_reported=True)
        return events


def _lies_where_they_lay(fall: LostFall, body: BodySample) -> bool:
    last, d = fall.last_seen, fall.descent
    reach = th.FALL_REDETECT_MAX_SHIFT_TORSO * max(last.torso_ih, body.torso_ih)
    return (
        abs(body.com_x - last.com_x) <= reach
        and abs(body.com_y - last.com_y) <= reach
        and body.trunk_rise < th.FALL_UPRIGHT_RISE
        and d.hip_height_fraction(body) <= th.FALL_MAX_HIP_HEIGHT_FRACTION
    )

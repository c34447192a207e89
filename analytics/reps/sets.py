"""Sets of repetitions on one track: which exercise is going on, and the REP / EXERCISE_SET events.

Owns the grouping into sets and the event payloads; does not look at poses, and the
exercise of each repetition is decided before (reps.recognise). A set closes after
REP_SET_MAX_GAP_S without a repetition, when a repetition of another exercise comes, or when
the track ends. The set event's confidence is how well the body was seen times how sure the
recognition was (the exercise given counts as sure).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analytics import thresholds as th
from analytics.events import Event, EventType, Exercise


@dataclass(frozen=True)
class Rep:
    """One complete repetition, before it is reported. Angles in degrees, times in seconds."""

    exercise: Exercise
    side: str
    driving_angle: str
    t_start_s: float
    t_peak_s: float
    t_end_s: float
    peak_angle_deg: float
    top_angle_deg: float
    rom_deg: float
    form_flags: tuple[str, ...]
    form_checked: bool
    quality: float

    @property
    def duration_s(self) -> float:
        return self.t_end_s - self.t_start_s


@dataclass
class _OpenSet:
    exercise: Exercise
    index: int
    recognition: float
    cue: str
    reps: list[Rep] = field(default_factory=list)

    @property
    def last_end_s(self) -> float:
        return self.reps[-1].t_end_s


class SetTracker:
    """Per track. `given`: the exercise the user named, or None to recognise it."""

    def __init__(self, track_id: int, given: Exercise | None) -> None:
        self.track_id = track_id
        self.given = given
        self._open: _OpenSet | None = None
        self._sets_done = 0

    @property
    def open_exercise(self) -> Exercise | None:
        return None if self._open is None else self._open.exercise

    @property
    def open_reps(self) -> int:
        """Reps reported so far in the set under way (0 when none is)."""
        return 0 if self._open is None else len(self._open.reps)

    def add(self, rep: Rep, recognition: float = 1.0, cue: str = "given") -> list[Event]:
        """A counted repetition (its exercise already decided). `recognition`: how sure the
        exercise is (1 when given), carried into the set event's confidence; `cue`: what
        decided it (reported with the set)."""
        events: list[Event] = []
        open_set = self._open
        if (
            open_set is not None
            and open_set.exercise == rep.exercise
            and rep.t_start_s - open_set.last_end_s <= th.REP_SET_MAX_GAP_S
        ):
            open_set.reps.append(rep)
            return [self._rep_event(rep, open_set)]
        events.extend(self._close())
        events.extend(self._open_set([rep], recognition, cue))
        return events

    def tick(self, settled_s: float) -> list[Event]:
        """Close the open set if no repetition that could still continue it can come: every rep
        ending by `settled_s` has been added."""
        if self._open is None or settled_s - self._open.last_end_s <= th.REP_SET_MAX_GAP_S:
            return []
        return self._close()

    def finish(self) -> list[Event]:
        return self._close()

    def _open_set(self, reps: list[Rep], recognition: float, cue: str) -> list[Event]:
        self._sets_done += 1
        self._open = _OpenSet(reps[0].exercise, self._sets_done, recognition, cue, list(reps))
        return [self._rep_event(rep, self._open, i + 1) for i, rep in enumerate(reps)]

    def _close(self) -> list[Event]:
        open_set, self._open = self._open, None
        if open_set is None:
            return []
        return [self._set_event(open_set)]

    def _rep_event(self, rep: Rep, open_set: _OpenSet, index: int | None = None) -> Event:
        return Event(
            type=EventType.REP, t_start_s=rep.t_start_s, t_end_s=rep.t_end_s, track_id=self.track_id,
            confidence=_unit(rep.quality),
            data={
                "exercise": rep.exercise.value,
                "rep_index": index if index is not None else len(open_set.reps),
                "set_index": open_set.index,
                "side": rep.side,
                "t_peak_s": round(rep.t_peak_s, 3),
                "driving_angle": rep.driving_angle,
                "peak_angle_deg": round(rep.peak_angle_deg, 1),
                "top_angle_deg": round(rep.top_angle_deg, 1),
                "rom_deg": round(rep.rom_deg, 1),
                "duration_s": round(rep.duration_s, 3),
                "form_flags": list(rep.form_flags),
                "form_checked": rep.form_checked,
                "recognised": self.given is None,
            },
        )  # fmt: skip

    def _set_event(self, open_set: _OpenSet) -> Event:
        reps = open_set.reps
        t0, t1 = reps[0].t_start_s, reps[-1].t_end_s
        flags: dict[str, int] = {}
        for rep in reps:
            for flag in rep.form_flags:
                flags[flag] = flags.get(flag, 0) + 1
        return Event(
            type=EventType.EXERCISE_SET, t_start_s=t0, t_end_s=t1, track_id=self.track_id,
            # How well the body was seen, times how sure the exercise is.
            confidence=_unit(open_set.recognition * sum(r.quality for r in reps) / len(reps)),
            data={
                "exercise": open_set.exercise.value,
                "set_index": open_set.index,
                "reps": len(reps),
                "mean_rom_deg": round(sum(r.rom_deg for r in reps) / len(reps), 1),
                "mean_rep_duration_s": round(sum(r.duration_s for r in reps) / len(reps), 3),
                "reps_per_min": round(60.0 * len(reps) / (t1 - t0), 1) if t1 > t0 else 0.0,
                "form_flag_counts": flags,
                "recognised": self.given is None,
                "recognised_by": open_set.cue,
            },
        )  # fmt: skip


def _unit(x: float) -> float:
    return float(min(1.0, max(0.0, x)))

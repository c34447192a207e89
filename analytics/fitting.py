"""The analytics numbers fitted from labelled clips, and the leave-one-source-out check of each fit.

Owns which numbers of analytics.thresholds were chosen by their scores on clips (every other
number there is a physical bound set before looking at scores: docs/analytics.md), the values
each is tried at, what a fit maximises, and the check issues 25 and 26 ask for: every fit made
again on all sources but one and scored on the source left out. A source is the repository or
dataset a clip came from (`source` in ground_truth.json, up to the `@`): its clips share a
camera, a room and often a person, so a number that only suits them shows as a left-out score
below the score on everything.

A fit is made on poses already made: each clip is tracked once and its tracker output replayed
through fresh detectors for every combination on the grid, so a check costs the detectors'
time per combination, never the posing.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from analytics import thresholds as th
from analytics.config import AnalyticsConfig
from analytics.engine import AnalyticsEngine, DetectorFactory
from analytics.evaluation import ClipTruth, RepCount, given_rep_count, score_clip
from analytics.events import Event, Exercise
from analytics.falls import FallDetector
from analytics.reps import RepDetector
from analytics.track import Tracker, TrackUpdate
from pose.types import FramePoses

# A false fall costs this many found falls in a fit: an alarm that is often wrong gets ignored,
# and then the falls it finds are lost too.
FALSE_FALL_COST = 2.0


@dataclass(frozen=True)
class TrackedClip:
    """A labelled clip's poses as the tracker followed them, ready to replay through detectors."""

    truth: ClipTruth
    duration_s: float
    steps: tuple[tuple[TrackUpdate, float], ...]
    ended_at_end: tuple[int, ...]

    @classmethod
    def track(cls, truth: ClipTruth, frames: Sequence[FramePoses], duration_s: float) -> TrackedClip:
        tracker = Tracker(lost_after_s=AnalyticsConfig().track_lost_after_s)
        steps = tuple((tracker.update(frame), frame.pts_s) for frame in frames)
        return cls(truth, duration_s, steps, tracker.finish())

    @property
    def source(self) -> str:
        return self.truth.source or self.truth.path

    def events(self, config: AnalyticsConfig, detectors: Sequence[DetectorFactory]) -> list[Event]:
        """Every event `detectors` raise on the clip, its end included, with today's thresholds."""
        engine = AnalyticsEngine(config, list(detectors))
        events: list[Event] = []
        for update, t_s in self.steps:
            events.extend(engine.apply(update, t_s).events)
        events.extend(engine.end_tracks(self.ended_at_end))
        return events


@dataclass(frozen=True)
class FallTally:
    """Labelled falls found, of how many, and falls raised where there was none."""

    found: int = 0
    expected: int = 0
    false_falls: int = 0

    def __add__(self, other: FallTally) -> FallTally:
        return FallTally(
            self.found + other.found, self.expected + other.expected, self.false_falls + other.false_falls
        )

    @property
    def merit(self) -> tuple[float, ...]:
        return (self.found - FALSE_FALL_COST * self.false_falls,)

    def __str__(self) -> str:
        return f"falls found {self.found}/{self.expected}, false falls {self.false_falls}"


@dataclass(frozen=True)
class RepTally:
    """Exercise clips counted exactly with the exercise given and recognised, of how many."""

    given_exact: int = 0
    recognised_exact: int = 0
    clips: int = 0

    def __add__(self, other: RepTally) -> RepTally:
        return RepTally(
            self.given_exact + other.given_exact,
            self.recognised_exact + other.recognised_exact,
            self.clips + other.clips,
        )

    @property
    def merit(self) -> tuple[float, ...]:
        # Counting first (the exercise given), then counting and recognising together.
        return (self.given_exact, self.recognised_exact)

    def __str__(self) -> str:
        return f"exact {self.given_exact}/{self.clips} given, {self.recognised_exact}/{self.clips} recognised"


Tally = FallTally | RepTally


def fall_tally(clip: TrackedClip) -> FallTally:
    score = score_clip(clip.truth, clip.events(AnalyticsConfig(), [FallDetector]), clip.duration_s)
    return FallTally(int(score.fall_found), int(score.fall_expected), score.false_falls)


def rep_tally(clip: TrackedClip) -> RepTally:
    truth = clip.truth
    assert truth.exercise is not None and truth.reps is not None
    told = AnalyticsConfig(exercise=Exercise(truth.exercise))
    given = given_rep_count(truth, clip.events(told, [RepDetector]))
    recognised = score_clip(
        truth, clip.events(AnalyticsConfig(), [RepDetector]), clip.duration_s
    ).counted_reps

    def exact(counted: int | None) -> int:
        return int(counted is not None and RepCount(counted, truth.reps or 0, truth.ambiguous).exact)

    return RepTally(exact(given), exact(recognised), 1)


@dataclass(frozen=True)
class Fit:
    """Numbers of analytics.thresholds fitted together: each with the values tried, listed
    strictest first (ties in a fit go to the first combination in that order), the clips it is
    fitted on and how one clip is scored."""

    name: str
    grid: tuple[tuple[str, tuple[float, ...]], ...]
    applies: Callable[[ClipTruth], bool]
    tally: Callable[[TrackedClip], Tally]

    @property
    def numbers(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.grid)

    def combinations(self) -> list[tuple[float, ...]]:
        return list(itertools.product(*(values for _, values in self.grid)))


# The fall speeds: how fast, as a fraction of free fall from the body's own height, the centre
# of mass (or, while the body topples, the centre and the head) must fall. Every clip counts:
# exercise and everyday clips are where false falls come from.
FALL_FIT = Fit(
    name="fall speeds",
    grid=(
        ("FALL_MIN_FREEFALL_FRACTION", (0.26, 0.24, 0.22, 0.20)),
        ("FALL_MIN_TOPPLE_FREEFALL_FRACTION", (0.21, 0.18, 0.15)),
        ("FALL_MIN_HEAD_FREEFALL_FRACTION", (0.28, 0.25, 0.22, 0.19)),
    ),
    applies=lambda truth: True,
    tally=fall_tally,
)
# The repetition zones (a smaller fraction of the motion's own range is stricter) and the
# visibility a landmark needs to drive a count (higher is stricter), on the exercise clips.
REP_FIT = Fit(
    name="repetition zones",
    grid=(
        ("REP_ZONE_FRACTION", (0.25, 0.3, 0.35, 0.4, 0.45)),
        ("REP_MIN_VISIBILITY", (0.3, 0.25, 0.2, 0.15, 0.1)),
    ),
    applies=lambda truth: truth.exercise is not None and truth.reps is not None,
    tally=rep_tally,
)
FITS = (FALL_FIT, REP_FIT)


@contextmanager
def overridden(values: Mapping[str, float]) -> Iterator[None]:
    """analytics.thresholds with `values` in place of its own while the block runs. For fitting
    only: detectors read their thresholds as they run, and no other analysis may run meanwhile."""
    unknown = [name for name in values if not hasattr(th, name)]
    if unknown:
        raise KeyError(f"not in analytics.thresholds: {', '.join(unknown)}")
    saved = {name: getattr(th, name) for name in values}
    try:
        for name, value in values.items():
            setattr(th, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(th, name, value)


@dataclass(frozen=True)
class Fold:
    """One source left out: the values fitted on the others, and the left-out clips' score."""

    source: str
    clips: int
    values: tuple[float, ...]
    left_out: Tally


@dataclass(frozen=True)
class FitCheck:
    """A fit made on every source, and again leaving each source out in turn."""

    name: str
    numbers: tuple[str, ...]
    sources: int
    current: tuple[float, ...]  # the values in analytics.thresholds
    fitted: tuple[float, ...]  # the fit on every source
    in_sample: Tally  # every clip, scored with `fitted`
    at_current: Tally  # every clip, scored with `current`
    folds: tuple[Fold, ...] = field(default_factory=tuple)

    @property
    def left_out(self) -> Tally | None:
        """The folds' left-out scores added up: what the fit scores on sources it did not see
        (None with a single source: nothing to fit on when it is left out)."""
        return _total([fold.left_out for fold in self.folds]) if self.folds else None

    @property
    def folds_keeping_fit(self) -> int:
        """Folds whose fit is the fit on every source: a number that moves when one source is
        left out was chosen by that source's clips."""
        return sum(1 for fold in self.folds if fold.values == self.fitted)

    def lines(self) -> list[str]:
        names = ", ".join(self.numbers)
        lines = [
            f"{self.name} ({names}): values in thresholds.py {self.current}: {self.at_current}",
            f"  fitted on all {self.sources} sources {self.fitted}: {self.in_sample}",
        ]
        if not self.folds:
            return [*lines, "  leaving one source out: a single source, nothing to fit on without it"]
        lines.append(
            f"  leaving one source out: {self.left_out} on the sources left out; "
            f"{self.folds_keeping_fit} of {len(self.folds)} folds fit {self.fitted} as on all sources"
        )
        lines.extend(
            f"    left out {fold.source} ({fold.clips} clips): fitted {fold.values}, {fold.left_out}"
            for fold in self.folds
            if fold.values != self.fitted
        )
        return lines

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "numbers": list(self.numbers),
            "current": list(self.current),
            "fitted": list(self.fitted),
            "in_sample": self.in_sample.__dict__,
            "at_current": self.at_current.__dict__,
            "sources": self.sources,
            "left_out": self.left_out.__dict__ if self.left_out is not None else None,
            "folds": [
                {
                    "source": f.source,
                    "clips": f.clips,
                    "values": list(f.values),
                    "left_out": f.left_out.__dict__,
                }
                for f in self.folds
            ],
        }


def _total(tallies: Sequence[Tally]) -> Tally:
    total = tallies[0]
    for tally in tallies[1:]:
        total = total + tally  # type: ignore[operator]
    return total


def check_fit(fit: Fit, clips: Sequence[TrackedClip], workers: int = 1) -> FitCheck:
    """Score every combination of `fit`'s grid on the clips it applies to (in `workers`
    processes), then fit on all of them and on all sources but each one in turn (see the
    module docstring)."""
    mine = [clip for clip in clips if fit.applies(clip.truth)]
    if not mine:
        raise ValueError(f"no clip to fit {fit.name} on")
    current = tuple(float(getattr(th, name)) for name in fit.numbers)
    grid = fit.combinations()
    # The values in thresholds.py are scored too, also when they are not on the grid (they are
    # then never chosen).
    combos = grid if current in grid else [*grid, current]
    tallies = dict(zip(combos, _tally_all(fit, mine, combos, workers), strict=True))

    def best(keep: Sequence[int]) -> tuple[float, ...]:
        # max() keeps the first of equals: the strictest, by the grid's order.
        return max(grid, key=lambda combo: _total([tallies[combo][i] for i in keep]).merit)

    everything = range(len(mine))
    sources = sorted({clip.source for clip in mine})
    folds = []
    # With one source there is nothing to fit on when it is left out.
    for source in sources if len(sources) > 1 else []:
        out = [i for i, clip in enumerate(mine) if clip.source == source]
        values = best([i for i in everything if mine[i].source != source])
        folds.append(Fold(source, len(out), values, _total([tallies[values][i] for i in out])))
    fitted = best(everything)
    return FitCheck(
        name=fit.name,
        numbers=fit.numbers,
        sources=len(sources),
        current=current,
        fitted=fitted,
        in_sample=_total(tallies[fitted]),
        at_current=_total(tallies[current]),
        folds=tuple(folds),
    )


# The clips a worker process scores (set once per process by `_adopt`).
_worker_clips: list[TrackedClip] = []


def _adopt(clips: list[TrackedClip]) -> None:
    _worker_clips[:] = clips


def _tally_combo(fit_name: str, combo: tuple[float, ...]) -> list[Tally]:
    return _tally_combo_of(next(f for f in FITS if f.name == fit_name), combo)


def _tally_all(
    fit: Fit, clips: list[TrackedClip], combos: list[tuple[float, ...]], workers: int
) -> list[list[Tally]]:
    if workers <= 1 or fit not in FITS:
        _adopt(clips)
        return [_tally_combo_of(fit, combo) for combo in combos]
    # Spawned, not forked: the caller may hold threads (an embedded queue, database pools),
    # and a fork copies their locks in whatever state they are.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_adopt, initargs=(clips,)) as pool:
        return pool.starmap(_tally_combo, [(fit.name, combo) for combo in combos])


def _tally_combo_of(fit: Fit, combo: tuple[float, ...]) -> list[Tally]:
    with overridden(dict(zip(fit.numbers, combo, strict=True))):
        return [fit.tally(clip) for clip in _worker_clips]

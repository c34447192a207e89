"""Fitting numbers from labelled clips and the leave-one-source-out check (analytics.fitting).

On the shared clips the check runs in tests/test_eval.py, on the poses `posepipe eval` stored.
"""

from __future__ import annotations

import pytest

from analytics import thresholds as th
from analytics.config import AnalyticsConfig
from analytics.engine import default_detectors, replay
from analytics.evaluation import ClipTruth
from analytics.events import EventType
from analytics.fitting import FITS, FallTally, Fit, RepTally, TrackedClip, check_fit, overridden
from tests.analytics.test_falls import fall_then_lost, get_up, topple

NAME = "FALL_MIN_FREEFALL_FRACTION"


def test_a_tracked_clip_replays_to_the_engines_events() -> None:
    """Tracking once and replaying the tracker's output gives what the engine gives on the frames,
    a fall, a person lost on the floor and found again, and the end of the video included."""
    lost = fall_then_lost(7.0)
    frames = lost + get_up(len(lost))
    frames += topple(0.7, start_s=frames[-1].pts_s + 1.0, end_s=frames[-1].pts_s + 2.5)[-15:]
    config = AnalyticsConfig(long_lie_after_s=3.0)
    truth = ClipTruth("x.mp4", "fall", fall=True)
    replayed = TrackedClip.track(truth, frames, frames[-1].pts_s).events(config, default_detectors())
    expected = replay(frames, config)
    kinds = {e.type for e in expected}
    assert {EventType.FALL, EventType.LONG_LIE, EventType.FALL_RECOVERED} <= kinds, kinds
    assert [(e.type, e.t_start_s, e.t_end_s, e.track_id, e.data) for e in replayed] == [
        (e.type, e.t_start_s, e.t_end_s, e.track_id, e.data) for e in expected
    ]


def test_overridden_puts_the_values_back_and_refuses_unknown_names() -> None:
    before = getattr(th, NAME)
    with pytest.raises(RuntimeError), overridden({NAME: 0.5}):
        assert getattr(th, NAME) == 0.5
        raise RuntimeError
    assert getattr(th, NAME) == before
    with pytest.raises(KeyError, match="NOT_A_THRESHOLD"), overridden({"NOT_A_THRESHOLD": 1.0}):
        pass


def clip(path: str, source: str) -> TrackedClip:
    return TrackedClip(ClipTruth(path, "fall", fall=True, source=source), 1.0, (), ())


def toy_tally(c: TrackedClip) -> FallTally:
    """Clips of source `a` are found from 0.2 down, `b`'s only at 0.1, and `c`'s clip raises a
    false fall below 0.2 (a false fall costs FALSE_FALL_COST = 2 found ones). On everything
    0.2 is best; without `a` nothing is gained below 0.3, the strictest; without `c`, 0.1."""
    value = getattr(th, NAME)
    if c.truth.source == "a":
        return FallTally(found=int(value <= 0.2), expected=1)
    if c.truth.source == "b":
        return FallTally(found=int(value <= 0.1), expected=1)
    return FallTally(found=0, expected=0, false_falls=int(value < 0.2))


def test_each_source_left_out_is_scored_with_the_fit_on_the_others() -> None:
    fit = Fit("toy", ((NAME, (0.3, 0.2, 0.1)),), lambda truth: True, toy_tally)
    clips = [clip("a1", "a"), clip("a2", "a"), clip("b1", "b"), clip("c1", "c")]
    before = getattr(th, NAME)
    with overridden({NAME: 0.2}):
        check = check_fit(fit, clips)
        assert getattr(th, NAME) == 0.2  # every combination tried, and the value put back
    assert getattr(th, NAME) == before
    assert check.current == (0.2,) and check.fitted == (0.2,)
    assert check.in_sample == FallTally(found=2, expected=3, false_falls=0)
    by_source = {fold.source: fold for fold in check.folds}
    assert [f.source for f in check.folds] == ["a", "b", "c"]
    # Without `c`'s false fall, 0.1 finds one more: chosen, and `c`'s clip then raises one.
    assert by_source["c"].values == (0.1,) and by_source["c"].left_out == FallTally(0, 0, 1)
    # Without `a`, 0.3 and 0.2 tie (nothing found, nothing false): the strictest, 0.3, misses a's.
    assert by_source["a"].values == (0.3,) and by_source["a"].left_out == FallTally(0, 2, 0)
    # Without `b`, 0.2 finds a's two: b's clip is missed with it.
    assert by_source["b"].values == (0.2,) and by_source["b"].left_out == FallTally(0, 1, 0)
    assert check.left_out == FallTally(found=0, expected=3, false_falls=1)
    assert check.folds_keeping_fit == 1
    assert any("left out c (1 clips): fitted (0.1,)" in line for line in check.lines())


def test_ties_go_to_the_first_values_of_the_grid() -> None:
    fit = Fit("flat", ((NAME, (0.3, 0.2, 0.1)),), lambda truth: True, lambda c: FallTally(1, 1, 0))
    check = check_fit(fit, [clip("a1", "a"), clip("b1", "b")])
    assert check.fitted == (0.3,) and all(fold.values == (0.3,) for fold in check.folds)


def test_a_single_source_has_nothing_to_leave_out() -> None:
    fit = Fit("toy", ((NAME, (0.3, 0.2, 0.1)),), lambda truth: True, toy_tally)
    check = check_fit(fit, [clip("a1", "a"), clip("a2", "a")])
    assert check.sources == 1 and check.folds == () and check.left_out is None
    assert check.fitted == (0.2,) and check.in_sample == FallTally(2, 2, 0)
    assert "nothing to fit on" in check.lines()[-1] and check.to_dict()["left_out"] is None


def test_rep_tallies_add_and_rank_counting_before_recognition() -> None:
    assert RepTally(1, 0, 1) + RepTally(1, 1, 1) == RepTally(2, 1, 2)
    assert RepTally(3, 0, 3).merit > RepTally(2, 2, 3).merit


def test_every_fitted_number_is_a_threshold_and_its_value_is_on_the_grid() -> None:
    for fit in FITS:
        for name, values in fit.grid:
            assert float(getattr(th, name)) in values, (fit.name, name)

"""Scoring rules of `posepipe eval`: what counts as exact, which exercise a clip was named, fall kinds."""

from __future__ import annotations

import pytest

from analytics.evaluation import ClipKind, ClipTruth, EvalReport, RepCount, named_exercise, score_clip
from analytics.events import Event, EventType


def rep(exercise: str, t: float) -> Event:
    return Event(EventType.REP, t, t + 1.0, 1, 0.9, {"exercise": exercise})


def fall(t_start: float, t_detected: float) -> Event:
    return Event(EventType.FALL, t_start, t_start + 1.0, 1, 0.9, {"t_detected_s": t_detected})


@pytest.mark.parametrize(
    ("counted", "expected", "ambiguous", "exact"),
    [(5, 5, False, True), (4, 5, False, False), (4, 5, True, True), (3, 5, True, False), (6, 5, True, True)],
)
def test_an_ambiguous_clip_is_exact_within_one(
    counted: int, expected: int, ambiguous: bool, exact: bool
) -> None:
    assert RepCount(counted, expected, ambiguous).exact is exact


def test_the_exercise_named_is_the_one_with_most_reps_and_ties_are_stable() -> None:
    assert named_exercise({}) is None
    assert named_exercise({"squat": 2, "lunge": 5}) == "lunge"
    assert named_exercise({"squat": 3, "lunge": 3}) == "lunge"


def test_kinds_come_from_the_label_and_a_real_fall_is_one_the_notes_call_real() -> None:
    """Staged falls, in a research dataset or a home or stock recording like them, are the
    research-dataset kind; a fall the notes call REAL (not staged) is real-world."""
    entry = {"category": "fall", "fall": True, "fall_start_s": 1.0, "on_ground_s": 2.0, "source": "a/b@c:d"}
    assert ClipTruth.from_json("falls/urfall_ds03.mp4", entry).kind == ClipKind.RESEARCH_FALL
    staged = {**entry, "notes": "Staged fall at home; a real-looking stumble, not a REALITY show."}
    assert ClipTruth.from_json("falls/fall_home_phone.mp4", staged).kind == ClipKind.RESEARCH_FALL
    real = {**entry, "notes": "Apparently REAL fall, ceiling CCTV in a kitchen."}
    assert ClipTruth.from_json("falls/fall_cctv_kitchen.mp4", real).kind == ClipKind.REAL_FALL
    assert ClipTruth.from_json("falls/fall_cctv_kitchen.mp4", entry).source == "a/b"
    assert ClipTruth.from_json("adl/x.mp4", {"category": "adl"}).kind == ClipKind.NON_FALL
    squat = {"category": "exercise", "exercise": "squat", "reps_complete": 3}
    assert ClipTruth.from_json("exercise/x.mp4", squat).kind == ClipKind.EXERCISE


def test_a_fall_is_scored_by_onset_window_and_its_delay_after_landing() -> None:
    entry = {"category": "fall", "fall": True, "fall_start_s": 4.0, "on_ground_s": 5.0, "notes": "REAL fall"}
    truth = ClipTruth.from_json("falls/fall_x.mp4", entry)
    late = score_clip(truth, [fall(4.5, 7.5)], 10.0)
    assert (
        late.fall_found
        and late.delay_s == pytest.approx(3.5)
        and late.delay_after_landing_s == pytest.approx(2.5)
    )
    early = score_clip(truth, [fall(1.0, 2.0), fall(4.2, 6.0)], 10.0)
    assert early.fall_found and early.false_falls == 1
    report = EvalReport([late, early])
    assert report.falls_within_2s_of_landing == 1
    by_kind = {f.kind: f for f in report.falls_by_kind()}
    assert by_kind[ClipKind.REAL_FALL].found == 2 and by_kind[ClipKind.REAL_FALL].false_falls == 1


def test_reps_are_scored_recognised_and_named() -> None:
    entry = {"category": "exercise", "exercise": "squat", "reps_complete": 3, "ambiguous": False}
    truth = ClipTruth.from_json("exercise/x.mp4", entry)
    score = score_clip(truth, [rep("squat", 1.0), rep("squat", 3.0), rep("lunge", 5.0)], 8.0)
    score.given_reps = 3
    report = EvalReport([score])
    assert score.counted_reps == 2 and score.named_exercise == "squat"
    assert (report.reps.exact, report.reps.within_one, report.reps_given.exact) == (0, 1, 1)
    assert report.named_right == 1 and report.reps_baseline.clips == 0

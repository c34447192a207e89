"""`posepipe eval` on the shared clips: the analytics are judged on real footage through the real pipeline.

Every clip that ground_truth.json names is analysed (none may fail), scored, its fitted numbers
fitted again leaving one source out (on the poses stored), and then run again
under one robustness variant each (7.5 fps, 15 fps, mirrored, cropped around the person, in
turn), so every clip and every variant is exercised once per run of the suite; `posepipe eval
--sweep` runs every clip under every variant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.evaluation import ClipKind, format_report, load_truth
from analytics.fitting import FALL_FIT, FITS, REP_FIT, FallTally, RepTally
from posepipe.evaluate import evaluate, sweep

# Measured floors on the shared set as it is today (issues 25 and 26 give the targets, which are
# higher: these floors only keep what was reached from being lost; raise them when the scores
# rise, never lower them without saying why).
REPS_EXACT_FLOOR = 30
REPS_NAMED_FLOOR = 33
REPS_GIVEN_EXACT_FLOOR = 30
FALLS_FOUND_FLOOR = 27
# A fall reported within 2 s of the person being on the ground (issue 26 asks >= 90 %).
FALLS_WITHIN_2S_FLOOR = 27
FALSE_FALLS_CEILING = 0
NON_EXERCISE_CLIPS_WITH_REPS_CEILING = 0
# Issues 25 and 26 ask that a verdict change on at most 5 % of the sweep's runs. Measured on one
# variant per clip through the pipeline: 6 of 92 (6.5 %; target not met, docs/analytics.md).
SWEEP_CHANGED_CEILING = 0.07
# The numbers fitted from the clips, fitted again on all sources but one and scored on the one
# left out (analytics.fitting), as measured on these poses: the fall speeds find 26 of 32 falls
# left out with one false fall (27 and none fitted on everything); the repetition zones count 29
# of 35 clips exactly left out, given or recognised (31 fitted on everything).
LEFT_OUT_FALLS_FOUND_FLOOR = 26
LEFT_OUT_FALSE_FALLS_CEILING = 1
LEFT_OUT_REPS_EXACT_FLOOR = 29


# It analyses all 92 clips twice (the eval, then one robustness variant each): 6-8 minutes on a
# quiet 2-core machine, more when it is shared; the suite's 10-minute limit is for one clip's test.
@pytest.mark.timeout(1800)
def test_eval_on_the_shared_clips(make_settings, open_services, media_dir: Path) -> None:
    services = open_services(make_settings())
    truth_path = media_dir / "ground_truth.json"
    truth = load_truth(truth_path)
    report = evaluate(services, media_dir, truth_path, workers=2)
    print(format_report(report))
    # Every labelled clip was analysed and scored: the set grows, the test follows it.
    assert len(report.clips) == len(truth)
    assert len(report.rep_clips) == sum(1 for t in truth.values() if t.kind == ClipKind.EXERCISE)
    assert report.falls_expected == sum(1 for t in truth.values() if t.fall)
    assert report.reps.exact >= REPS_EXACT_FLOOR, format_report(report)
    assert report.named_right >= REPS_NAMED_FLOOR, format_report(report)
    assert report.reps_given.exact >= REPS_GIVEN_EXACT_FLOOR, format_report(report)
    # Issue 25: better than the tutorial counter on every measure, recognising or told the exercise.
    for ours in (report.reps, report.reps_given):
        assert ours.exact > report.reps_baseline.exact, format_report(report)
        assert ours.within_one > report.reps_baseline.within_one, format_report(report)
        assert ours.mae < report.reps_baseline.mae, format_report(report)
    assert report.falls_found >= FALLS_FOUND_FLOOR, format_report(report)
    assert report.falls_within_2s_of_landing >= FALLS_WITHIN_2S_FLOOR, format_report(report)
    assert report.false_falls <= FALSE_FALLS_CEILING, report.clips_with_false_falls
    # Repetitions where nobody exercises: none. (The UP-Fall walking clip read two "curls" in the
    # arm swing until curls were required to keep the feet planted.)
    with_reps = {c.path: c.reps_by_exercise for c in report.clips if c.kind != ClipKind.EXERCISE}
    with_reps = {path: reps for path, reps in with_reps.items() if reps}
    assert len(with_reps) <= NON_EXERCISE_CLIPS_WITH_REPS_CEILING, with_reps

    # Issues 25 and 26: every number fitted from the clips is fitted again leaving one source out.
    checks = {check.name: check for check in report.fit_checks}
    assert set(checks) == {fit.name for fit in FITS}
    falls_fit, reps_fit = checks[FALL_FIT.name], checks[REP_FIT.name]
    sources = {t.source or t.path for t in truth.values()}
    assert {fold.source for fold in falls_fit.folds} == sources
    assert {fold.source for fold in reps_fit.folds} == {
        t.source or t.path for t in truth.values() if t.kind == ClipKind.EXERCISE
    }
    # The refits replay the stored poses: at today's values they score what the pipeline stored.
    assert isinstance(falls_fit.at_current, FallTally) and isinstance(reps_fit.at_current, RepTally)
    assert falls_fit.at_current.found == report.falls_found
    assert falls_fit.at_current.false_falls == report.false_falls
    assert reps_fit.at_current.recognised_exact == report.reps.exact
    assert reps_fit.at_current.given_exact == report.reps_given.exact
    falls_left_out, reps_left_out = falls_fit.left_out, reps_fit.left_out
    assert falls_fit.sources == len(sources)
    assert isinstance(falls_left_out, FallTally) and isinstance(reps_left_out, RepTally)
    assert falls_left_out.found >= LEFT_OUT_FALLS_FOUND_FLOOR, falls_fit.lines()
    assert falls_left_out.false_falls <= LEFT_OUT_FALSE_FALLS_CEILING, falls_fit.lines()
    assert reps_left_out.given_exact >= LEFT_OUT_REPS_EXACT_FLOOR, reps_fit.lines()
    assert reps_left_out.recognised_exact >= LEFT_OUT_REPS_EXACT_FLOOR, reps_fit.lines()

    swept = sweep(services, media_dir, truth_path, report, workers=2, one_variant_each=True)
    print(swept.format())
    assert len(swept.runs) == len(truth)
    assert swept.changed_fraction <= SWEEP_CHANGED_CEILING, swept.format()

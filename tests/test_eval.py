"""`posepipe eval` on the shared clips: the analytics are judged on real footage through the real pipeline.

Every clip that ground_truth.json names is analysed (none may fail), scored, and then run again
under one robustness variant each (7.5 fps, 15 fps, mirrored, cropped around the person, in
turn), so every clip and every variant is exercised once per run of the suite; `posepipe eval
--sweep` runs every clip under every variant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.evaluation import ClipKind, format_report, load_truth
from posepipe.evaluate import evaluate, sweep

# Measured floors on the shared set as it is today (issues 25 and 26 give the targets, which are
# higher: these floors only keep what was reached from being lost; raise them when the scores
# rise, never lower them without saying why).
REPS_EXACT_FLOOR = 30
REPS_NAMED_FLOOR = 33
REPS_GIVEN_EXACT_FLOOR = 30
FALLS_FOUND_FLOOR = 27
FALSE_FALLS_CEILING = 0
NON_EXERCISE_CLIPS_WITH_REPS_CEILING = 0
# Issues 25 and 26 ask that a verdict change on at most 5 % of the sweep's runs. Measured on one
# variant per clip through the pipeline: 6 of 92 (6.5 %; target not met, docs/analytics.md).
SWEEP_CHANGED_CEILING = 0.07


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
    assert report.false_falls <= FALSE_FALLS_CEILING, report.clips_with_false_falls
    # Repetitions where nobody exercises: none. (The UP-Fall walking clip read two "curls" in the
    # arm swing until curls were required to keep the feet planted.)
    with_reps = {c.path: c.reps_by_exercise for c in report.clips if c.kind != ClipKind.EXERCISE}
    with_reps = {path: reps for path, reps in with_reps.items() if reps}
    assert len(with_reps) <= NON_EXERCISE_CLIPS_WITH_REPS_CEILING, with_reps

    swept = sweep(services, media_dir, truth_path, report, workers=2, one_variant_each=True)
    print(swept.format())
    assert len(swept.runs) == len(truth)
    assert swept.changed_fraction <= SWEEP_CHANGED_CEILING, swept.format()

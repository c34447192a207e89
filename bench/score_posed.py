"""Score the analytics on cached poses (bench.posed): the whole shared set in seconds, per variant.

python -m bench.score_posed                      # automatic recognition, base variant
python -m bench.score_posed --given              # the labelled exercise given
python -m bench.score_posed --variant mirror --only falls/
"""

from __future__ import annotations

import argparse
import sys

from analytics.config import AnalyticsConfig
from analytics.engine import AnalyticsEngine
from analytics.evaluation import ClipScore, ClipTruth, EvalReport, format_report, load_truth, score_clip
from analytics.events import Event, Exercise
from bench.posed import VARIANTS, PoseCache, Variant


def analyse(cache: PoseCache, truth: ClipTruth, variant: Variant, given: bool) -> ClipScore:
    frames = cache.poses(truth.path, variant)
    exercise = Exercise(truth.exercise) if given and truth.exercise else None
    engine = AnalyticsEngine(AnalyticsConfig(exercise=exercise))
    events: list[Event] = []
    for frame in frames:
        events.extend(engine.process(frame).events)
    events.extend(engine.finish())
    duration = frames[-1].pts_s if frames else 0.0
    return score_clip(truth, events, duration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="base", choices=sorted(VARIANTS))
    parser.add_argument("--only", help="clips whose path contains this")
    parser.add_argument("--given", action="store_true", help="give the labelled exercise")
    args = parser.parse_args(argv)
    cache = PoseCache()
    truth = load_truth(cache.media / "ground_truth.json")
    try:
        scores = [
            analyse(cache, t, VARIANTS[args.variant], args.given)
            for rel, t in sorted(truth.items())
            if not args.only or args.only in rel
        ]
    finally:
        cache.close()
    print(format_report(EvalReport(scores)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

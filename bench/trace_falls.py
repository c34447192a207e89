"""What the fall detector sees on one clip, frame by frame: the measure behind each fall rule.

Owns the per-frame diagnosis of a missed (or false) fall: for every track and pose, the
trunk's rise, the body's size, the centre of mass, the pelvis and centre heights above the
feet, the downward speeds the speed tests use, the detector's state, and why `find_descent`
turned a candidate down (analytics.falls logs it at DEBUG). It reads the pose cache as
bench.score_falls does; a clip not yet cached for the variant and backend is posed once
(10-60 s of CPU) and cached, so point BENCH_POSE_CACHE elsewhere for backends the cache
is not meant to hold.

    python -m bench.trace_falls falls/fall_home_bedroom_collapse_knees_then_forward_lowcam.mp4
    python -m bench.trace_falls CLIP --variant fps7.5 --backend multi:heavy --start 2 --end 4
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence

from analytics.config import AnalyticsConfig
from analytics.engine import AnalyticsEngine
from analytics.events import Event
from analytics.falls import FallDetector, downward_speed
from analytics.falls_body import BodySample
from bench.posed import VARIANTS, PoseCache
from pose.types import FramePoses

HEADER = (
    f"{'t_s':>6} {'poses':>5} {'track':>5} {'state':>8} {'rise':>5} {'torso':>6} {'com_y':>6} {'com_x':>6} "
    f"{'com_ft':>6} {'hip_ft':>6} {'v_com':>6} {'v_head':>6}"
)


def row(sample: BodySample, history: list[BodySample], poses: int, track_id: int, state: str) -> str:
    """One pose as the detector measures it. com_ft, hip_ft: heights above the lower ankle in
    torso lengths; v_com, v_head: downward speeds in torso lengths/s (analytics.falls)."""
    i = len(history) - 1
    return (
        f"{sample.t_s:6.2f} {poses:5d} {track_id:5d} {state:>8} {sample.trunk_rise:5.2f} "
        f"{sample.torso_ih:6.3f} {sample.com_y:6.3f} {sample.com_x:6.3f} "
        f"{(sample.feet_y - sample.com_y) / sample.torso_ih:6.2f} "
        f"{(sample.feet_y - sample.hip_y) / sample.torso_ih:6.2f} "
        f"{downward_speed(history, i, 'com_y'):6.2f} {downward_speed(history, i, 'head_y'):6.2f}"
    )


def event_line(event: Event) -> str:
    return (
        f"EVENT {event.type.value} track {event.track_id} {event.t_start_s:.2f}-{event.t_end_s:.2f} s "
        f"confidence {event.confidence}: {event.data}"
    )


class _Window(logging.Filter):
    """Lets the detector's reasons through only for the frames shown."""

    def __init__(self) -> None:
        super().__init__()
        self.open = False

    def filter(self, record: logging.LogRecord) -> bool:
        return self.open


def trace(
    frames: Sequence[FramePoses], start_s: float, end_s: float, window: _Window | None = None
) -> Iterator[str]:
    """The rows and events of `frames` run through a fresh engine, those within [start_s, end_s],
    as each frame is processed (so the detector's log lines fall between them)."""
    engine = AnalyticsEngine(AnalyticsConfig())
    histories: dict[int, list[BodySample]] = defaultdict(list)
    for frame in frames:
        # Frame times are floats (0.1 * 37 is 3.7000000000000002): the bounds take that slack.
        shown = start_s - 1e-6 <= frame.pts_s <= end_s + 1e-6
        if window is not None:
            window.open = shown
        update = engine.tracker.update(frame)
        outcome = engine.apply(update, frame.pts_s)
        for tracked in update.tracked:
            sample = BodySample.from_tracked(tracked)
            history = histories[tracked.track_id]
            history.append(sample)
            if shown:
                detectors = engine.detectors(tracked.track_id)
                state = next((d.state.value for d in detectors if isinstance(d, FallDetector)), "ended")
                yield row(sample, history, len(frame.poses), tracked.track_id, state)
        if shown:
            yield from (event_line(e) for e in outcome.events)
    if window is not None:
        window.open = True
    yield from (event_line(e) for e in engine.finish())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clip", help="path under the media folder, as in ground_truth.json")
    parser.add_argument("--variant", default="base", choices=sorted(VARIANTS))
    parser.add_argument("--backend", help="pose spec (default: the settings' default)")
    parser.add_argument("--start", type=float, default=0.0, help="first time shown, s")
    parser.add_argument("--end", type=float, default=float("inf"), help="last time shown, s")
    args = parser.parse_args(argv)
    # find_descent says at DEBUG why a candidate descent is not a fall: printed on stdout, in
    # order with the rows.
    window = _Window()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    handler.addFilter(window)
    falls_log = logging.getLogger("analytics.falls")
    falls_log.addHandler(handler)
    falls_log.setLevel(logging.DEBUG)
    falls_log.propagate = False
    cache = PoseCache(backend=args.backend)
    try:
        frames = cache.poses(args.clip, VARIANTS[args.variant])
    finally:
        cache.close()
    print(HEADER)
    for line in trace(frames, args.start, args.end, window):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What hands cost and find: ms a frame of a pose backend without and with hands (pose.hands),
on the first seconds of real clips at the analysis rate, and how many of the people's wrists got
a hand; for comparison, the regions without the palm-detection fallback, and two other ways to
search: palm detection on a crop at each wrist (the fallback alone), and on the whole frame.

    .venv/bin/python -m bench.hands [--seconds 6] [--fps 10] [--backend mediapipe --backend movenet]

Wall-clock and CPU ms a frame of this process (all its threads; the first frame, which loads the
models, left out). CPU time is what a worker pays on a busy machine; the wall clock moves with
the other core's load.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import media_dir
from pipeline.frames import Frame
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose.estimator import PoseEstimator, create_estimator, pose_spec
from pose.hand_landmarks import (
    CropBox,
    HandFinder,
    HandLandmarkModel,
    PalmSearch,
    px,
    region_around,
    wrist_crop,
)
from pose.hands import HandsEstimator, attach_hands
from pose.types import Hand, HandSide, Pose

CLIPS = (
    "exercise/ex_curl_front_dumbbells_white_studio_man.mp4",
    "exercise/ex_curl_dumbbell_alternating.mp4",
    "exercise/ex_bicep_curl_alternating_side_gym_man.mp4",
    "exercise/ex_pushup_side_full_then_knee.mp4",
    "exercise/ex_pushup_oblique_front_livingroom_mat_man.mp4",
)
MIN_CONFIDENCE = 0.3
MAX_SIDE = 1280  # the default POSEPIPE_FRAME_MAX_SIDE


def frames_of(path: Path, seconds: float, fps: float) -> list[Frame]:
    sampler = FrameSampler(fps)
    with VideoFile(path) as video:
        return [f for f in video.sampled_frames(sampler.take, max_side=MAX_SIDE) if f.pts_s < seconds]


def palm_search(
    poses: PoseEstimator, palms: PalmSearch, landmarks: HandLandmarkModel, whole_frame: bool
) -> Callable[[Frame], tuple[Pose, ...]]:
    """Hands by palm detection only, on a crop at each wrist or on the whole frame (up to two a
    person there), looked at again by the landmark model as the fallback does, attached by the
    same rule."""

    def estimate(frame: Frame) -> tuple[Pose, ...]:
        people = poses.estimate(frame)
        if not people:
            return people
        w, h = frame.resolution_wh
        if whole_frame:
            crops: list[CropBox | None] = [CropBox(0, 0, w, h)]
        else:
            crops = [wrist_crop(pose, side, frame.resolution_wh) for pose in people for side in HandSide]
        hands: list[Hand] = []
        for crop in crops:
            for palm_hand in palms.find(frame.rgb, crop) if crop is not None else ():
                points = px(palm_hand.landmarks_xyz[:, :2], frame.resolution_wh)
                hand = landmarks.hand_in(frame.rgb, region_around(points))
                hands += [hand] if hand is not None else []
        return attach_hands(people, hands, frame.resolution_wh)

    return estimate


def measure(estimate: Callable[[Frame], tuple[Pose, ...]], frames: Sequence[Frame]) -> dict[str, float]:
    estimate(frames[0])  # models load and XNNPACK warms up outside the clock
    people = hands = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for frame in frames[1:]:
        for pose in estimate(frame):
            people += 1
            hands += sum(pose.hand(side) is not None for side in HandSide)
    n = max(1, len(frames) - 1)
    ms, cpu_ms = (time.perf_counter() - started) / n * 1000, (time.process_time() - cpu_started) / n * 1000
    return {
        "cpu_ms_a_frame": round(cpu_ms, 1),
        "ms_a_frame": round(ms, 1),
        "people": people,
        "wrists_with_hand": round(hands / max(1, 2 * people), 2),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--backend", action="append", default=None, help="mediapipe, multi, movenet")
    parser.add_argument("--clip", action="append", default=None, help="relative to the media folder")
    args = parser.parse_args(argv)
    results = {}
    for clip in args.clip or CLIPS:
        frames = frames_of(media_dir() / clip, args.seconds, args.fps)
        for backend in args.backend or ["mediapipe", "movenet"]:
            row = {}
            for label, spec in (("pose", pose_spec(backend)), ("pose+hands", pose_spec(backend, hands=True))):
                estimator = create_estimator(spec, MIN_CONFIDENCE)
                row[label] = measure(estimator.estimate, frames)
                estimator.close()
            regions_only = HandsEstimator(
                create_estimator(pose_spec(backend), MIN_CONFIDENCE),
                HandFinder(MIN_CONFIDENCE, fallback=False),
            )
            row["regions_only"] = measure(regions_only.estimate, frames)
            regions_only.close()
            landmarks = HandLandmarkModel()
            for label, whole, per_crop in (("palm_at_wrists", False, 1), ("palm_whole_frame", True, 2)):
                poses = create_estimator(pose_spec(backend), MIN_CONFIDENCE)
                palms = PalmSearch(MIN_CONFIDENCE, per_crop)
                row[label] = measure(palm_search(poses, palms, landmarks, whole), frames)
                poses.close()
                palms.close()
            results[f"{clip} {backend}"] = row
            print(json.dumps({f"{clip} {backend}": row}), flush=True)
    print(json.dumps({"frames_per_clip": args.seconds * args.fps, "results": results}, indent=1))


if __name__ == "__main__":
    main()

"""Cost of the multi-person backend against the number of people, and its throughput against MediaPipe.

(a) Frames of the dance and park clips and the four photos, posed by `multi` as a pose job
    does (reset every 32 frames): per frame the people found, the detector's runs and ms, the
    landmark model's runs and ms per run, the total; grouped by the number of people found.
(b) The same sampled frames of single-person clips through `mediapipe` and `multi`, one after
    the other in this process: frames per second of each and their ratio.
(c) Identity on the dance clip: the poses through analytics.track.Tracker, and the identity
    switches counted against frame-to-frame continuity (see `identity_report`).

    .venv/bin/python -m bench.multi_pose [--json]

Numbers depend on the machine and on what else runs on it; docs/multi_pose.md keeps a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from analytics.track import Tracker
from pipeline.frames import Frame
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from pose.estimator import PoseEstimator
from pose.types import FramePoses

CHUNK_FRAMES = 32  # as a pose job: the backend is reset at every chunk's first frame
ANALYSIS_FPS = 10.0
MAX_SIDE = 1280
CROWD_CLIPS = ("activity/act_dance_group_5_gumboot.mp4", "activity/act_park_crowd_walking.mp4")
PHOTOS = (
    "images/img_bus_street_people.jpg",
    "images/img_zidane_two_men.jpg",
    "images/img_businessman_fullbody.jpeg",
    "images/img_yoga_tree_pose.jpeg",
)
SINGLE_PERSON_CLIPS = (
    "exercise/ex_squat_side_woman.mp4",
    "exercise/ex_jumping_jacks_gray.mp4",
    "exercise/ex_lunges_outdoor.mp4",
    "falls/fall_urfall_01_walk_fall_rgb.mp4",
)
# Identity continuity: a pose whose nearest pose in the previous frame (torso centres) is
# within this many torso lengths, and nearer than this fraction of the second nearest, and
# which is that pose's nearest too, is unambiguously the same person as that pose.
CONTINUITY_MAX_TORSO = 1.0
CONTINUITY_MAX_RATIO = 0.5


def sampled_frames(path: Path, fps: float = ANALYSIS_FPS) -> list[Frame]:
    with VideoFile(path) as video:
        return list(video.sampled_frames(FrameSampler(fps).take, max_side=MAX_SIDE))


def pose_frames(estimator: PoseEstimator, frames: Sequence[Frame]) -> list[FramePoses]:
    """Pose frames as a pose job does: reset at each chunk's first frame."""
    out = []
    for i, frame in enumerate(frames):
        if i % CHUNK_FRAMES == 0:
            estimator.reset()
        out.append(FramePoses.of(frame.seq, frame.pts_s, frame.resolution_wh, estimator.estimate(frame)))
    return out


def _torso_centre_and_length(frame: FramePoses) -> tuple[np.ndarray, np.ndarray]:
    w, h = frame.resolution_wh
    if not frame.poses:
        return np.zeros((0, 2)), np.zeros(0)
    lm = np.stack([p.landmarks_xyzv[:, :2] for p in frame.poses]).astype(np.float64) * (w, h)
    shoulders = lm[:, [11, 12]].mean(axis=1)
    hips = lm[:, [23, 24]].mean(axis=1)
    return (shoulders + hips) / 2, np.linalg.norm(shoulders - hips, axis=1)


@dataclass(frozen=True)
class IdentityReport:
    """Track ids against frame-to-frame continuity (no labelled identities needed).

    `continuous`: pose pairs in consecutive frames that are unambiguously one person (see
    CONTINUITY_*). Of those, `kept` carry the same track id, `switches` carry an id another
    person had before (an identity switch), `restarts` a brand-new id (a track broken in two).
    `tracks`: distinct track ids over the clip.
    """

    frames: int
    continuous: int
    kept: int
    switches: int
    restarts: int
    tracks: int


def identity_report(
    frames: Sequence[FramePoses], track_ids: Sequence[Sequence[int | None]]
) -> IdentityReport:
    continuous = kept = switches = restarts = 0
    seen: set[int] = set()
    for k in range(len(frames)):
        cur_ids = list(track_ids[k])
        if k > 0:
            prev_c, _ = _torso_centre_and_length(frames[k - 1])
            cur_c, cur_len = _torso_centre_and_length(frames[k])
            if len(prev_c) and len(cur_c):
                d = np.linalg.norm(cur_c[:, None, :] - prev_c[None, :, :], axis=2)
                for j in range(len(cur_c)):
                    order = np.argsort(d[j])
                    i = int(order[0])
                    second = d[j, order[1]] if len(order) > 1 else np.inf
                    mutual = int(np.argmin(d[:, i])) == j
                    if not (
                        mutual
                        and d[j, i] < CONTINUITY_MAX_TORSO * cur_len[j]
                        and d[j, i] < CONTINUITY_MAX_RATIO * second
                    ):
                        continue
                    before, now = track_ids[k - 1][i], cur_ids[j]
                    if before is None or now is None:
                        continue
                    continuous += 1
                    if before == now:
                        kept += 1
                    elif now in seen:
                        switches += 1
                    else:
                        restarts += 1
        seen.update(t for t in cur_ids if t is not None)
    return IdentityReport(len(frames), continuous, kept, switches, restarts, len(seen))


def track(frames: Sequence[FramePoses]) -> list[tuple[int | None, ...]]:
    tracker = Tracker()
    return [tracker.update(f).track_ids for f in frames]


def cost_by_people(frames_by_source: dict[str, list[Frame]]) -> dict[int, dict[str, float]]:
    """Per number of people found: frames, mean total ms, detector runs and ms, landmark ms per run."""
    from pose.multipose.estimator import MultiPoseEstimator

    estimator = MultiPoseEstimator(0.3, 0.3)
    rows: dict[int, list[tuple[float, int, float, int, float]]] = defaultdict(list)
    for frames in frames_by_source.values():
        for i, frame in enumerate(frames):
            if i % CHUNK_FRAMES == 0:
                estimator.reset()
            started = time.perf_counter()
            people = len(estimator.estimate(frame))
            total = time.perf_counter() - started
            c = estimator.last_cost
            rows[people].append((total, c.detector_runs, c.detector_s, c.landmark_runs, c.landmark_s))
    table = {}
    for people in sorted(rows):
        r = np.array(rows[people])
        detector_runs, landmark_runs = r[:, 1].sum(), r[:, 3].sum()
        table[people] = {
            "frames": len(r),
            "total_ms": round(1000 * r[:, 0].mean(), 1),
            "detector_runs_per_frame": round(r[:, 1].mean(), 2),
            "detector_ms_per_frame": round(1000 * r[:, 2].mean(), 1),
            "detector_ms_per_run": round(1000 * r[:, 2].sum() / detector_runs, 1) if detector_runs else 0.0,
            "landmark_runs_per_frame": round(r[:, 3].mean(), 2),
            "landmark_ms_per_run": round(1000 * r[:, 4].sum() / landmark_runs, 1) if landmark_runs else 0.0,
        }
    return table


def throughput_ratio(media: Path) -> dict[str, dict[str, float]]:
    from pose.estimator import MediaPipeEstimator
    from pose.multipose.estimator import MultiPoseEstimator

    backends: dict[str, PoseEstimator] = {
        "mediapipe": MediaPipeEstimator(0.3, 0.3),
        "multi": MultiPoseEstimator(0.3, 0.3),
    }
    out = {}
    for rel in SINGLE_PERSON_CLIPS:
        frames = sampled_frames(media / rel)
        fps = {}
        for name, estimator in backends.items():
            pose_frames(estimator, frames[:CHUNK_FRAMES])  # warm-up outside the clock
            started = time.perf_counter()
            pose_frames(estimator, frames)
            fps[name] = len(frames) / (time.perf_counter() - started)
        out[rel] = {"frames": len(frames), **{f"{k}_fps": round(v, 1) for k, v in fps.items()}}
        out[rel]["multi_over_mediapipe"] = round(fps["multi"] / fps["mediapipe"], 2)
    ratios = [v["multi_over_mediapipe"] for v in out.values()]
    out["all"] = {"multi_over_mediapipe_median": round(statistics.median(ratios), 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--media", type=Path, default=Path(os.environ.get("POSEPIPE_MEDIA", "../shared/media"))
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from pose.multipose.estimator import MultiPoseEstimator

    sources = {rel: sampled_frames(args.media / rel) for rel in CROWD_CLIPS + PHOTOS}
    costs = cost_by_people(sources)
    dance = pose_frames(MultiPoseEstimator(0.3, 0.3), sources[CROWD_CLIPS[0]])
    identity = identity_report(dance, track(dance))
    ratio = throughput_ratio(args.media)
    if args.json:
        print(
            json.dumps(
                {"cost_by_people": costs, "identity_dance": asdict(identity), "throughput": ratio}, indent=1
            )
        )
        return
    print("people  frames  total_ms  det_runs  det_ms  det_ms/run  lm_runs  lm_ms/run")
    for people, row in costs.items():
        print(
            f"{people:6d}  {row['frames']:6d}  {row['total_ms']:8.1f}  "
            f"{row['detector_runs_per_frame']:8.2f}  {row['detector_ms_per_frame']:6.1f}  "
            f"{row['detector_ms_per_run']:10.1f}  "
            f"{row['landmark_runs_per_frame']:7.2f}  {row['landmark_ms_per_run']:9.1f}"
        )
    print(f"identity on the dance clip: {asdict(identity)}")
    for rel, row in ratio.items():
        print(f"{rel}: {row}")


if __name__ == "__main__":
    main()

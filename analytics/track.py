"""Person tracks: give each pose a track id that stays stable while the same person stays in view.

Owns identity (which pose continues which track), the body's size in the image, and the
per-track smoothing; it does not interpret poses (the detectors do).

A track ends when its person has not been seen for `lost_after_s`. A pose that moved further
than one body can move in the elapsed time, or whose body size changed more than a body's
image can, starts a new track: MediaPipe follows one person and can switch to a bystander
between two frames, and that must not look like one person teleporting (or falling).
Movement is the median displacement of the body's visible landmarks, so a fall (head and
hips move fast, feet stay) keeps its track while a switch (every landmark jumps) does not.
Sizes are torso lengths measured with the world landmarks, so a torso pointing at the
camera (a fall toward it, lying along the line of sight) does not look like a small body.
Smoothed landmarks are attached here, per track, so a switch never blends two people.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from analytics import geometry as g
from analytics import thresholds as th
from analytics.smoothing import LandmarkSmoother
from pose.types import FramePoses, Pose

# Landmarks that move with the body (face details and finger tips add noise, not information).
BODY_LANDMARKS: tuple[int, ...] = (
    g.NOSE, g.L_SHOULDER, g.R_SHOULDER, g.L_ELBOW, g.R_ELBOW, g.L_WRIST, g.R_WRIST,
    g.L_HIP, g.R_HIP, g.L_KNEE, g.R_KNEE, g.L_ANKLE, g.R_ANKLE,
)  # fmt: skip
# Fewer visible body landmarks than this and a fit or a displacement uses all of them:
# MediaPipe still places hidden ones, roughly, which beats deciding from two points.
_MIN_VISIBLE_LANDMARKS = 4


@dataclass(frozen=True, eq=False)
class TrackedPose:
    """A pose assigned to a track, with smoothed coordinates for analysis.

    `image_xy`: (33, 2) smoothed, in image heights (see analytics.geometry). `world_xyz_m`:
    (33, 3) smoothed metres, or None. `visibility`: (33,) as estimated (not smoothed).
    `torso_length_ih`: the body's yardstick, the length the torso would have in the image
    (image heights) if it faced the camera, median of the track's last few frames; it does
    not shrink when the torso points at the camera. None only for poses built by hand.
    """

    track_id: int
    seq: int
    t_s: float
    image_xy: np.ndarray
    world_xyz_m: np.ndarray | None
    visibility: np.ndarray
    raw: Pose
    new_track: bool
    torso_length_ih: float | None = None


@dataclass(frozen=True)
class TrackUpdate:
    """The tracker's answer for one frame: a track id per pose (None if not tracked),
    the tracked poses, and the tracks that ended before this frame."""

    track_ids: tuple[int | None, ...]
    tracked: tuple[TrackedPose, ...]
    ended: tuple[int, ...]


def body_landmark_indices(visibility: np.ndarray) -> list[int]:
    """Body landmarks seen well enough, or all body landmarks when too few are."""
    seen = [i for i in BODY_LANDMARKS if visibility[i] >= th.VISIBLE]
    return seen if len(seen) >= _MIN_VISIBLE_LANDMARKS else list(BODY_LANDMARKS)


def torso_length_ih(image_xy: np.ndarray, world_xyz_m: np.ndarray | None, visibility: np.ndarray) -> float:
    """One frame's torso length in image heights, free of foreshortening when world landmarks exist.

    The world landmarks are metric and seen from the camera's direction, so their x, y
    shrink exactly as the image does when a limb points at the camera. The least-squares
    scale between the two point sets (image heights per metre) times the world skeleton's
    torso length is the torso's image length as if it faced the camera. Without world
    landmarks the image torso length is the best there is.
    """
    image_torso = g.torso_length(image_xy)
    if world_xyz_m is None:
        return max(image_torso, 1e-6)
    idx = body_landmark_indices(visibility)
    a = image_xy[idx] - image_xy[idx].mean(axis=0)
    b = world_xyz_m[idx, :2] - world_xyz_m[idx, :2].mean(axis=0)
    denom = float((b * b).sum())
    if denom < 1e-9:
        return max(image_torso, 1e-6)
    per_metre = float((a * b).sum()) / denom
    if not math.isfinite(per_metre) or per_metre <= 0.0:
        return max(image_torso, 1e-6)
    return per_metre * th.WORLD_TORSO_M


def median_displacement(xy_a: np.ndarray, vis_a: np.ndarray, xy_b: np.ndarray, vis_b: np.ndarray) -> float:
    """Median distance moved by the body landmarks seen in both poses (image heights)."""
    both = np.minimum(vis_a, vis_b)
    idx = body_landmark_indices(both)
    return float(np.median(np.linalg.norm(xy_a[idx] - xy_b[idx], axis=1)))


@dataclass
class _Track:
    track_id: int
    last_t: float
    last_xy: np.ndarray
    last_visibility: np.ndarray
    image_smoother: LandmarkSmoother
    world_smoother: LandmarkSmoother
    recent_torso: deque[float] = field(default_factory=partial(deque, maxlen=th.TRACK_TORSO_MEDIAN_FRAMES))

    @property
    def torso(self) -> float:
        return float(np.median(self.recent_torso))


@dataclass(frozen=True)
class _Candidate:
    index: int
    pose: Pose
    xy: np.ndarray
    torso: float


class Tracker:
    """Assigns each frame's poses to tracks (see the module docstring). Picklable: plain data
    and the smoothers' state, so a stream's tracks carry across chunks."""

    def __init__(self, lost_after_s: float = th.TRACK_LOST_AFTER_S) -> None:
        if lost_after_s <= 0:
            raise ValueError("lost_after_s must be > 0")
        self.lost_after_s = lost_after_s
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1

    @property
    def live_track_ids(self) -> tuple[int, ...]:
        return tuple(self._tracks)

    def update(self, frame: FramePoses) -> TrackUpdate:
        t = frame.pts_s
        ended = [tid for tid, tr in self._tracks.items() if t - tr.last_t > self.lost_after_s]
        for tid in ended:
            del self._tracks[tid]

        candidates = []
        for idx, pose in enumerate(frame.poses):
            xy = g.isotropic_xy(pose.landmarks_xyzv, frame.resolution_wh)
            world = None if pose.world_xyz_m is None else pose.world_xyz_m.astype(np.float64)
            candidates.append(_Candidate(idx, pose, xy, torso_length_ih(xy, world, pose.visibility)))
        assigned = self._match(candidates, t)

        track_ids: list[int | None] = [None] * len(frame.poses)
        tracked: list[TrackedPose] = []
        for cand in candidates:
            matched = assigned.get(cand.index)
            if matched is None and cand.pose.score < th.TRACK_NEW_MIN_SCORE:
                continue  # a doubtful pose may continue a track, never start one (ByteTrack's rule)
            new = matched is None
            tr = self._start(t, cand) if matched is None else self._tracks[matched]
            tr.last_t, tr.last_xy, tr.last_visibility = t, cand.xy, cand.pose.visibility
            tr.recent_torso.append(cand.torso)
            smoothed_xy = tr.image_smoother(cand.xy, t)
            world = None
            if cand.pose.world_xyz_m is not None:
                world = tr.world_smoother(cand.pose.world_xyz_m.astype(np.float64), t)
            track_ids[cand.index] = tr.track_id
            tracked.append(
                TrackedPose(
                    track_id=tr.track_id,
                    seq=frame.seq,
                    t_s=t,
                    image_xy=smoothed_xy,
                    world_xyz_m=world,
                    visibility=cand.pose.visibility.astype(np.float64),
                    raw=cand.pose,
                    new_track=new,
                    torso_length_ih=tr.torso,
                )
            )
        return TrackUpdate(tuple(track_ids), tuple(tracked), tuple(ended))

    def finish(self) -> tuple[int, ...]:
        ended = tuple(self._tracks)
        self._tracks.clear()
        return ended

    def _match(self, candidates: list[_Candidate], t: float) -> dict[int, int]:
        """Pose index -> track id, in two stages as ByteTrack associates detections: confident
        poses (score >= TRACK_NEW_MIN_SCORE) take tracks first; doubtful ones (half hidden, or
        a glimpse the backend is unsure of) may then continue only the tracks left over, so a
        doubtful pose never takes a person's track from that person's clear pose."""
        confident = [cand for cand in candidates if cand.pose.score >= th.TRACK_NEW_MIN_SCORE]
        doubtful = [cand for cand in candidates if cand.pose.score < th.TRACK_NEW_MIN_SCORE]
        assigned = self._greedy(confident, t, set())
        assigned.update(self._greedy(doubtful, t, set(assigned.values())))
        return assigned

    def _greedy(self, candidates: list[_Candidate], t: float, used: set[int]) -> dict[int, int]:
        """Pose index -> track id among tracks not in `used`. Greedy on sorted costs: a handful
        of people per frame, so greedy is exact enough and keeps the rule explainable."""
        pairs = []
        for cand in candidates:
            for tid, tr in self._tracks.items():
                cost = None if tid in used else self._cost(tr, t, cand)
                if cost is not None:
                    pairs.append((cost, cand.index, tid))
        pairs.sort()
        assigned: dict[int, int] = {}
        used = set(used)
        for _cost, idx, tid in pairs:
            if idx in assigned or tid in used:
                continue
            assigned[idx] = tid
            used.add(tid)
        return assigned

    def _cost(self, tr: _Track, t: float, cand: _Candidate) -> float | None:
        """Body movement since the track's last pose in torso lengths, or None if no one body
        could have made it (too far, or size changed too much, for the elapsed time)."""
        dt = max(t - tr.last_t, 0.0)
        torso = tr.torso
        # In units of the larger body: a person coming closer is measured at their new size.
        moved = median_displacement(tr.last_xy, tr.last_visibility, cand.xy, cand.pose.visibility) / max(
            torso, cand.torso
        )
        if moved > th.TRACK_MIN_JUMP_TORSO + th.TRACK_MAX_BODY_SPEED_TORSO_PER_S * dt:
            return None
        ratio = max(cand.torso, torso) / min(cand.torso, torso)
        if ratio > th.TRACK_MAX_SCALE_RATIO * th.TRACK_MAX_SCALE_RATE_PER_S**dt:
            return None
        return moved

    def _start(self, t: float, cand: _Candidate) -> _Track:
        tid = self._next_id
        self._next_id += 1
        tr = _Track(
            track_id=tid, last_t=t, last_xy=cand.xy, last_visibility=cand.pose.visibility,
            image_smoother=LandmarkSmoother((33, 2)), world_smoother=LandmarkSmoother((33, 3)),
        )  # fmt: skip
        self._tracks[tid] = tr
        return tr

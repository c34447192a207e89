"""The `mediapipe+movenet` and `litert+movenet` pose backends: BlazePose (MediaPipe's, or the same
graph under LiteRT), and MoveNet for the frames where BlazePose loses a person it had.

Owns when the second model runs and which of its people stands in for the one lost.

BlazePose's detector is led by the face and was trained on people upright; a person on the
floor, turned away or partly hidden is where it most often finds nobody, and that is exactly
where a fall is confirmed (issue 17: a pose on 88.8 % of the frames after landing with BlazePose
full, 93.2 % with MoveNet, which finds other frames than BlazePose). MoveNet runs only on a frame
where BlazePose found nobody although a person was seen less than RESCUE_WINDOW_S before (a
person does not vanish between two frames: someone lost that quickly was lost by the model), or
on the first frame after `reset()`, which has no past to ask. An empty scene therefore costs one
MoveNet inference a chunk, and a frame where BlazePose finds the person costs nothing more.

Where MoveNet finds nobody (or nobody a body could have got to), BlazePose runs again on a
zoomed window (pose.zoom): around where the person was last seen, or, on a chunk's first frame
with no past, on windows over the whole frame. BlazePose's detector sees the whole frame at
224x224 and misses a person small in the frame (a far camera, a pillarboxed phone video); the
same detector on a window a couple of body sizes wide sees them as large as it finds people.
It comes after MoveNet, not before: where MoveNet already has the lost person, its pose was the
better one mid-fall (docs/multi_pose.md, "Zoom on a lost person"). The zoom then follows the
person it found into the next frame in the region their landmarks give, as MediaPipe's graph
follows a person, while BlazePose's graph and MoveNet still find nobody.

Of MoveNet's people the one whose torso is nearest where the lost person's was stands in (the
person lost is where they were), if the lost person could have got there in the time since
they were seen (MAX_BODY_SPEED_TORSO_PER_S, as analytics.track gates a track); with nobody seen
before, the most confident one. A stand-in from farther away is someone else, or a phantom, and
would break the person's track in two where a frame with nobody lets it continue. One person
per frame, as the `mediapipe` backend: several people are the `multi` and `movenet` backends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from pipeline.frames import Frame
from pose.types import L_HIP, L_SHOULDER, R_HIP, R_SHOULDER, Pose

if TYPE_CHECKING:
    from pose.estimator import PoseEstimator
    from pose.zoom import ZoomFinder

# How long after the last pose a frame with nobody is still taken for a person lost by the model.
# Two seconds covers a fall (under a second from upright to the floor) and the first moments on
# the ground, where the evidence of a fall is; longer empty spells are left to the next chunk.
RESCUE_WINDOW_S = 2.0
# How far a body can move between two sightings, in torso lengths: a fall's upper body reaches
# ~4 m/s (8 torso lengths a second) before impact, plus landmark noise at any interval. The
# same physics as analytics.track's TRACK_MAX_BODY_SPEED_TORSO_PER_S and TRACK_MIN_JUMP_TORSO.
MAX_BODY_SPEED_TORSO_PER_S = 8.0
MIN_JUMP_TORSO = 0.8
_SHOULDERS = [L_SHOULDER, R_SHOULDER]
_HIPS = [L_HIP, R_HIP]


class RescuedEstimator:
    """`primary` (BlazePose) with a rescuer (MoveNet) on the frames where a person was lost,
    then a zoom (pose.zoom, made by `make_zoom`; None: no zoom) where the rescuer found nobody.

    The rescuer and the zoom are built on the first frame that needs them: a clip where
    BlazePose never loses anyone does not pay for loading more models.
    """

    rescues: ClassVar[int] = 0  # counted for the benchmarks and tests

    def __init__(
        self,
        primary: PoseEstimator,
        make_rescuer: Callable[[], PoseEstimator],
        name: str = "mediapipe+movenet",
        make_zoom: Callable[[], ZoomFinder] | None = None,
    ) -> None:
        # The backend's name: the primary's, then the rescuer's (`litert+movenet` runs pose.litert).
        self.name = name
        self._primary = primary
        self._make_rescuer = make_rescuer
        self._rescuer: PoseEstimator | None = None
        self._make_zoom = make_zoom
        self._zoom: ZoomFinder | None = None
        self._last_seen_s: float | None = None
        self._last_body: _Torso | None = None
        self._last_pose: Pose | None = None
        self._fresh = True

    @property
    def primary(self) -> PoseEstimator:
        """The model that poses every frame (BlazePose)."""
        return self._primary

    def forget_ahead(self, shape: tuple[int, ...]) -> None:
        self._primary.forget_ahead(shape)  # MoveNet keeps no state between frames

    def reset(self) -> None:
        self._primary.reset()
        if self._rescuer is not None:
            self._rescuer.reset()
        if self._zoom is not None:
            self._zoom.forget()
        self._last_seen_s = None
        self._last_body = None
        self._last_pose = None
        self._fresh = True

    def estimate(self, frame: Frame) -> tuple[Pose, ...]:
        poses = self._primary.estimate(frame)
        aspect = frame.rgb.shape[1] / frame.rgb.shape[0]
        zoomed = False
        if not poses and self._should_rescue(frame.pts_s):
            RescuedEstimator.rescues += 1
            if self._rescuer is None:
                self._rescuer = self._make_rescuer()
            poses = self._stand_in(self._rescuer.estimate(frame), frame.pts_s, aspect)
            if not poses and self._make_zoom is not None:
                # BlazePose on a window where the person was (pose.zoom), or, with no past to
                # ask (a chunk's first frame), on windows over the whole frame.
                poses = self._zoomed(frame, aspect)
                zoomed = bool(poses)
        if not zoomed and self._zoom is not None:
            self._zoom.forget()  # the region it carries is only good on the frame after its own
        self._fresh = False
        if poses:
            self._last_seen_s = frame.pts_s
            self._last_body = _Torso.of(poses[0], aspect)
            self._last_pose = poses[0]
        return poses

    def _zoomed(self, frame: Frame, aspect: float) -> tuple[Pose, ...]:
        if self._make_zoom is None:
            return ()
        if self._zoom is None:
            self._zoom = self._make_zoom()
        if self._last_pose is None:
            found = self._zoom.search(frame.rgb)
            return () if found is None else (found,)
        found = self._zoom.find(frame.rgb, self._last_pose)
        # As a stand-in: only if a body could have got there since it was last seen.
        return () if found is None else self._stand_in((found,), frame.pts_s, aspect)

    def _should_rescue(self, pts_s: float) -> bool:
        if self._fresh:
            return True
        return self._last_seen_s is not None and pts_s - self._last_seen_s < RESCUE_WINDOW_S

    def _stand_in(self, people: tuple[Pose, ...], t_s: float, aspect: float) -> tuple[Pose, ...]:
        if not people:
            return ()
        last, last_s = self._last_body, self._last_seen_s
        if last is None or last_s is None:
            return (max(people, key=lambda p: p.score),)
        bodies = [(last.moved_torso(_Torso.of(p, aspect)), p) for p in people]
        moved, nearest = min(bodies, key=lambda b: b[0])
        if moved > MIN_JUMP_TORSO + MAX_BODY_SPEED_TORSO_PER_S * (t_s - last_s):
            return ()
        return (nearest,)

    def close(self) -> None:
        self._primary.close()
        if self._rescuer is not None:
            self._rescuer.close()


@dataclass(frozen=True)
class _Torso:
    """Where a body is and how big, in image heights (x scaled by the aspect ratio)."""

    centre: np.ndarray
    length: float

    @classmethod
    def of(cls, pose: Pose, aspect: float) -> _Torso:
        xy = pose.landmarks_xyzv[:, :2].astype(np.float64) * (aspect, 1.0)
        shoulders, hips = xy[_SHOULDERS].mean(axis=0), xy[_HIPS].mean(axis=0)
        return cls((shoulders + hips) / 2, float(np.linalg.norm(shoulders - hips)))

    def moved_torso(self, other: _Torso) -> float:
        """The distance to `other` in the larger body's torso lengths (a person coming closer is
        measured at their new size)."""
        return float(np.linalg.norm(other.centre - self.centre)) / max(self.length, other.length, 1e-6)

"""A camera's live view in Redis: while someone watches, a live chunk leaves its last frame there.

The API marks a camera session as watched (`keys.live_watched`, a few seconds' TTL, refreshed
while a viewer's page asks for pictures). A live chunk looks for that mark once (one EXISTS,
~0.1 ms); only when it is there does it scale the chunk's last frame down, encode it as JPEG
and overwrite `keys.live_view` with it and the analytics' state at that frame (per track: the
exercise of the open set, its rep count, whether a fall is open). One value per camera,
overwritten and never queued: a slow viewer skips frames and never holds the analysis back.
The skeletons are not in it: the API draws the poses the chunk stored (posepipe.api.live),
with the same renderer as snapshots.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import cv2
import numpy as np
from redis import Redis

from analytics.engine import AnalyticsEngine
from analytics.falls import FallDetector, FallState
from analytics.reps import RepDetector
from pipeline import keys

# How long a viewer's mark lasts: the page asks again at least every long poll (posepipe.api.live),
# so the mark outlives a poll and a closed page stops the workers' extra work within seconds.
WATCH_TTL_S = 6
# A picture older than this is gone: a camera whose session stopped shows no stale frame.
VIEW_TTL_S = 10
# The live picture's longer side: a grid tile is smaller than this; a 720p frame costs about
# 3x the JPEG time of one scaled to 640 (docs/benchmarks.md, "Live view").
VIEW_MAX_SIDE = 640
VIEW_JPEG_QUALITY = 80


@dataclass(frozen=True)
class TrackState:
    """One tracked person at the live frame, as the analytics see them."""

    track_id: int
    # The exercise of the set in progress and its reps so far; None and 0 between sets.
    exercise: str | None
    reps: int
    # A fall was reported and the person has not got up since.
    fall_open: bool


@dataclass(frozen=True)
class LiveView:
    video_id: int
    seq: int
    t_s: float
    # Wall-clock (Unix seconds) of the frame's capture, and of the chunk's analysis.
    captured_at: float
    analysed_at: float
    width: int
    height: int
    tracks: tuple[TrackState, ...]
    jpeg: bytes

    @property
    def fall_open(self) -> bool:
        return any(t.fall_open for t in self.tracks)

    def state_json(self) -> str:
        return json.dumps(
            {
                "video_id": self.video_id,
                "seq": self.seq,
                "t_s": round(self.t_s, 3),
                "captured_at": round(self.captured_at, 3),
                "analysed_at": round(self.analysed_at, 3),
                "width": self.width,
                "height": self.height,
                "tracks": [t.__dict__ for t in self.tracks],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_hash(cls, values: dict[bytes, bytes]) -> LiveView:
        state = json.loads(values[b"state"])
        return cls(
            video_id=int(state["video_id"]),
            seq=int(state["seq"]),
            t_s=float(state["t_s"]),
            captured_at=float(state["captured_at"]),
            analysed_at=float(state["analysed_at"]),
            width=int(state["width"]),
            height=int(state["height"]),
            tracks=tuple(TrackState(**t) for t in state["tracks"]),
            jpeg=values[b"jpeg"],
        )


def engine_tracks(engine: AnalyticsEngine) -> tuple[TrackState, ...]:
    """The state of each live track, read from the engine's detectors.

    The engine has no public view of its detectors' state, and analytics/ is not this
    module's to change, so this reads their attributes; tests/test_live_view.py runs it
    on a real fall and a real exercise set so a renamed attribute fails there.
    """
    states = []
    detectors = engine._detectors  # noqa: SLF001 (see the docstring)
    for track_id in engine.tracker.live_track_ids:
        exercise, reps, fall_open = None, 0, False
        for detector in detectors.get(track_id, ()):
            if isinstance(detector, FallDetector):
                fall_open = detector.state is FallState.FALLEN
            elif isinstance(detector, RepDetector):
                open_set = detector._sets._open  # noqa: SLF001
                if open_set is not None:
                    exercise, reps = open_set.exercise.value, len(open_set.reps)
        states.append(TrackState(track_id, exercise, reps, fall_open))
    return tuple(states)


def encode_view(rgb: np.ndarray, max_side: int = VIEW_MAX_SIDE, quality: int = VIEW_JPEG_QUALITY) -> bytes:
    height, width = rgb.shape[:2]
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        size = (max(2, int(round(width * scale))), max(2, int(round(height * scale))))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return data.tobytes()


def is_watched(redis: Redis, video_id: int) -> bool:
    return bool(redis.exists(keys.live_watched(video_id)))


def mark_watched(redis: Redis, video_id: int) -> None:
    redis.set(keys.live_watched(video_id), b"1", ex=WATCH_TTL_S)


def publish(
    redis: Redis,
    video_id: int,
    seq: int,
    t_s: float,
    captured_at: float,
    rgb: np.ndarray,
    tracks: tuple[TrackState, ...],
) -> LiveView:
    """Overwrite the session's live view with this frame (call only when `is_watched`)."""
    height, width = rgb.shape[:2]
    view = LiveView(video_id, seq, t_s, captured_at, time.time(), width, height, tracks, encode_view(rgb))
    transaction = redis.pipeline(transaction=True)
    transaction.hset(keys.live_view(video_id), mapping={"state": view.state_json(), "jpeg": view.jpeg})
    transaction.expire(keys.live_view(video_id), VIEW_TTL_S)
    transaction.execute()
    return view


def latest(redis: Redis, video_id: int) -> LiveView | None:
    values = redis.hgetall(keys.live_view(video_id))
    if not values or b"state" not in values or b"jpeg" not in values:
        return None
    return LiveView.from_hash(values)


def latest_seq(redis: Redis, video_id: int) -> int | None:
    """The seq of the latest view without its picture (what a waiting viewer polls)."""
    state = redis.hget(keys.live_view(video_id), "state")
    return None if state is None else int(json.loads(state)["seq"])

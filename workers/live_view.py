"""A camera's live view in Redis: while someone watches, a live chunk leaves its last frame there.

The API marks a camera session as watched (`keys.live_watched`, a few seconds' TTL, refreshed
while a viewer's page asks for pictures). A live chunk looks for that mark once (one EXISTS,
~0.1 ms); only when it is there does it scale the chunk's frames down, encode them as JPEG and
replace `keys.live_view` with them and the analytics' state after the chunk (per track: the
exercise of the open set, its rep count, whether a fall is open). One value per camera,
replaced and never queued: a slow viewer skips frames and never holds the analysis back.
The skeletons are not in it: the API draws the poses the chunk stored (posepipe.api.live),
with the same renderer as snapshots.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from redis import Redis

from analytics.engine import AnalyticsEngine
from analytics.falls import FallDetector, FallState
from analytics.reps import RepDetector
from pipeline import keys
from pipeline.frames import Frame

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
class ViewFrame:
    seq: int
    t_s: float
    jpeg: bytes


@dataclass(frozen=True)
class LiveView:
    """A chunk's frames, as the worker left them, and the analytics' state after its last one.

    A chunk's frames are posed together and published at once; a viewer is shown them one after
    another at their own spacing (`due_at`), so the picture moves at the analysis rate, one
    chunk behind, instead of jumping a chunk at a time.
    """

    video_id: int
    # Wall-clock (Unix seconds) of the session's t = 0, and of the chunk's publication.
    origin: float
    analysed_at: float
    width: int
    height: int
    tracks: tuple[TrackState, ...]
    frames: tuple[ViewFrame, ...]

    @property
    def fall_open(self) -> bool:
        return any(t.fall_open for t in self.tracks)

    @property
    def last_seq(self) -> int:
        return self.frames[-1].seq

    def next_after(self, seq: int | None) -> ViewFrame | None:
        """The frame to show a viewer who shows `seq`: the next one of this chunk, or its first
        when the viewer is further behind (skipped, never queued); the newest for a new viewer."""
        if seq is None:
            return self.frames[-1]
        return next((f for f in self.frames if f.seq > seq), None)

    def due_at(self, frame: ViewFrame) -> float:
        """When to show `frame`: its distance from the chunk's first frame after publication."""
        return self.analysed_at + (frame.t_s - self.frames[0].t_s)

    def state_json(self) -> str:
        return json.dumps(
            {
                "video_id": self.video_id,
                "origin": round(self.origin, 3),
                "analysed_at": round(self.analysed_at, 3),
                "width": self.width,
                "height": self.height,
                "tracks": [t.__dict__ for t in self.tracks],
                "frames": [[f.seq, round(f.t_s, 3)] for f in self.frames],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_hash(cls, values: dict[bytes, bytes]) -> LiveView:
        state = json.loads(values[b"state"])
        return cls(
            video_id=int(state["video_id"]),
            origin=float(state["origin"]),
            analysed_at=float(state["analysed_at"]),
            width=int(state["width"]),
            height=int(state["height"]),
            tracks=tuple(TrackState(**t) for t in state["tracks"]),
            frames=tuple(
                ViewFrame(int(seq), float(t), values[f"jpeg:{seq}".encode()]) for seq, t in state["frames"]
            ),
        )


def engine_tracks(engine: AnalyticsEngine) -> tuple[TrackState, ...]:
    """The state of each live track, read from the engine's detectors."""
    states = []
    for track_id in engine.tracker.live_track_ids:
        exercise, reps, fall_open = None, 0, False
        for detector in engine.detectors(track_id):
            if isinstance(detector, FallDetector):
                fall_open = detector.state is FallState.FALLEN
            elif isinstance(detector, RepDetector) and detector.current_set is not None:
                current, reps = detector.current_set
                exercise = current.value
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
    redis: Redis, video_id: int, origin: float, frames: Sequence[Frame], tracks: tuple[TrackState, ...]
) -> LiveView:
    """Replace the session's live view with this chunk's frames (call only when `is_watched`)."""
    height, width = frames[0].rgb.shape[:2]
    view = LiveView(
        video_id,
        origin,
        time.time(),
        width,
        height,
        tracks,
        tuple(ViewFrame(f.seq, f.pts_s, encode_view(f.rgb)) for f in frames),
    )
    key = keys.live_view(video_id)
    transaction = redis.pipeline(transaction=True)
    transaction.delete(key)
    transaction.hset(
        key, mapping={"state": view.state_json(), **{f"jpeg:{f.seq}": f.jpeg for f in view.frames}}
    )
    transaction.expire(key, VIEW_TTL_S)
    transaction.execute()
    return view


def latest(redis: Redis, video_id: int) -> LiveView | None:
    values = cast("dict[bytes, bytes]", redis.hgetall(keys.live_view(video_id)))
    if not values or b"state" not in values:
        return None
    return LiveView.from_hash(values)


def latest_seq(redis: Redis, video_id: int) -> int | None:
    """The seq of the latest frame there, without the pictures (what a waiting viewer polls)."""
    state = redis.hget(keys.live_view(video_id), "state")
    return None if state is None else int(json.loads(state)["frames"][-1][0])

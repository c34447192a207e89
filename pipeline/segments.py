"""One file decoded by several ingest jobs: where the file is cut, and what each part must produce.

A file is cut at keyframes found by reading its packets (no decoding). The packets also give
every frame's presentation time, so one FrameSampler run over those times says, before anything
is decoded, which frames one ingester would sample and so each one's `seq`: a part starting at
a keyframe knows its first frame's seq and the sampler's state just before it, and samples
exactly what one ingester samples from there. Parts own whole chunks (`seq` runs of
`chunk_frames`), so every pose job is queued by exactly one part; a part decodes from its
keyframe up to its first chunk without storing (at most a chunk's worth of frames, decoded by
the part before it too).

A prediction is checked, never trusted: a part stores a frame only if its time is the
predicted time of its seq (pipeline.ingest.Span), and a file whose decoding does not match its
packets (a broken packet, frames the decoder drops) is then analysed by one ingester instead.
Owns the plan and its Redis form; does not decode, queue or write rows.
"""

from __future__ import annotations

import bisect
import json
import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.sampler import FrameSampler, SamplerState
from pipeline.source import PacketTimes


@dataclass(frozen=True)
class Keyframe:
    """Where a part can start decoding, and the one-ingester sampling state just before it."""

    pts: int  # stream time-base units (what VideoFile.frames(start_pts=...) seeks to)
    pts_s: float
    first_seq: int  # seq of the first frame sampled at or after it
    sampler: SamplerState


@dataclass(frozen=True)
class SegmentPlan:
    """What one ingester would sample from a file, predicted from its packets, and where parts may start."""

    chunk_frames: int
    sampled_pts_s: Sequence[float]  # by seq
    keyframes: tuple[Keyframe, ...]  # in time order; the first is the file's first keyframe

    @property
    def frames_total(self) -> int:
        return len(self.sampled_pts_s)

    @property
    def chunks_total(self) -> int:
        return -(-self.frames_total // self.chunk_frames)

    def start_for(self, seq_from: int) -> Keyframe:
        """The last keyframe at or before frame `seq_from`: where a part owning it starts decoding."""
        if not 0 <= seq_from < self.frames_total:
            raise ValueError(f"seq {seq_from} outside 0..{self.frames_total - 1}")
        at = self.sampled_pts_s[seq_from]
        times = [k.pts_s for k in self.keyframes]
        idx = bisect.bisect_right(times, at) - 1
        if idx < 0:
            raise ValueError(f"no keyframe at or before frame {seq_from} ({at:.3f} s)")
        return self.keyframes[idx]

    def spans(self, parts: int, min_part_s: float) -> list[range]:
        """Cut the sampled frames into at most `parts` runs of whole chunks, each starting at a
        keyframe's first chunk and at least `min_part_s` long: the seq range each part owns.
        One range (the whole file) when the file is too short or has too few keyframes."""
        total = self.frames_total
        if parts <= 1 or total == 0 or len(self.keyframes) < 2:
            return [range(0, total)]
        first_s, last_s = self.sampled_pts_s[0], self.sampled_pts_s[-1]
        parts = max(1, min(parts, math.floor((last_s - first_s) / min_part_s))) if min_part_s > 0 else parts
        starts = [0]
        for i in range(1, parts):
            target = first_s + (last_s - first_s) * i / parts
            # The keyframe nearest the even cut, then its first whole chunk.
            key = min(self.keyframes[1:], key=lambda k: abs(k.pts_s - target))
            chunk_start = -(-key.first_seq // self.chunk_frames) * self.chunk_frames
            if chunk_start >= total or chunk_start <= starts[-1]:
                continue
            if self.sampled_pts_s[chunk_start] - self.sampled_pts_s[starts[-1]] < min_part_s:
                continue
            starts.append(chunk_start)
        if len(starts) > 1 and self.sampled_pts_s[-1] - self.sampled_pts_s[starts[-1]] < min_part_s:
            starts.pop()  # the last part would be too short: the one before it goes to the end
        ends = [*starts[1:], total]
        return [range(a, b) for a, b in zip(starts, ends, strict=True)]

    def to_redis(self) -> dict[Any, bytes]:
        keyframes = [
            [k.pts, k.pts_s, k.first_seq, k.sampler.last_slot, k.sampler.last_pts_s] for k in self.keyframes
        ]
        return {
            "chunk_frames": str(self.chunk_frames).encode(),
            # Exact doubles: a part compares decoded times with these for equality.
            "sampled_pts_s": array("d", self.sampled_pts_s).tobytes(),
            "keyframes": json.dumps(keyframes).encode(),
        }

    @classmethod
    def from_redis(cls, fields: Mapping[Any, Any]) -> SegmentPlan:
        """From `to_redis`'s hash as redis-py returns it (bytes keys and values)."""
        times = array("d")
        times.frombytes(fields[b"sampled_pts_s"])
        keyframes = tuple(
            Keyframe(int(pts), float(pts_s), int(seq), SamplerState(int(slot), float(last)))
            for pts, pts_s, seq, slot, last in json.loads(fields[b"keyframes"])
        )
        return cls(int(fields[b"chunk_frames"]), times, keyframes)


def predict(times: PacketTimes, fps: float, chunk_frames: int) -> SegmentPlan:
    """Run one sampler over the packets' times, noting its state at every keyframe."""
    sampler = FrameSampler(fps)
    sampled: list[float] = []
    keyframes: list[Keyframe] = []
    pending = list(zip(times.keyframe_pts, times.keyframe_pts_s, strict=True))
    k = 0
    for pts_s in times.frame_pts_s:
        while k < len(pending) and pending[k][1] <= pts_s:
            pts, key_s = pending[k]
            if key_s == pts_s and (not keyframes or keyframes[-1].pts_s != key_s):
                keyframes.append(Keyframe(pts, key_s, len(sampled), sampler.state))
            k += 1
        if sampler.take(pts_s):
            sampled.append(pts_s)
    return SegmentPlan(chunk_frames, tuple(sampled), tuple(keyframes))

"""Frames in Redis by reference: write with a TTL, bound how many one run may have queued, read, release.

Jobs carry only (video, run, seq range); pixels live under keys from pipeline.keys. The
ingester waits for room rather than dropping (files never lose a sampled frame), so Redis
holds at most `limit` frames per run whatever the video's length. Release deletes the keys
and shrinks the window in one Lua call, so a worker killed half-way never leaves the
counter wrong; releasing twice is harmless. `stream` reads a chunk in batches, the next one
fetched and decoded by a thread while the caller poses this one, so a worker's transfer and
colour conversion of a chunk (~50 ms for 32 frames at 720p) overlaps its posing instead of
preceding it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

from redis import Redis

from pipeline import keys, payload
from pipeline.errors import FramesMissingError
from pipeline.frames import Frame, PlanarFrame
from pipeline.payload import FrameEncoding

log = logging.getLogger(__name__)

# How often a blocked ingester looks at the window again: short against a chunk's
# posing time (~0.7 s for 32 frames), long enough to cost Redis nothing.
WINDOW_POLL_S = 0.02

# Frames per batch in `stream`, read by a thread while the caller poses the batch before:
# small enough that the first batch (read before any posing can start) is short.
STREAM_BATCH_FRAMES = 8

# UNLINK, not DEL: Redis frees large values in a background thread instead of in the call
# (a 32-frame 720p chunk is 88 MB, ~5 ms of freeing that held every other client back).
_RELEASE = """
local n = 0
if #KEYS > 1 then n = redis.call('UNLINK', unpack(KEYS, 2)) end
if n > 0 then
  local left = redis.call('DECRBY', KEYS[1], n)
  if left <= 0 then redis.call('DEL', KEYS[1]) end
end
return n
"""


class FrameStore:
    def __init__(self, redis: Redis, *, ttl_s: int, encoding: FrameEncoding, jpeg_quality: int = 90) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.encoding = encoding
        self.jpeg_quality = jpeg_quality
        self._release = redis.register_script(_RELEASE)

    @property
    def planar(self) -> bool:
        """Whether `put` wants PlanarFrames (sent as they are) rather than RGB Frames."""
        return self.encoding is FrameEncoding.YUV420

    def put(self, video_id: int, run: str, frame: Frame | PlanarFrame) -> int:
        """Store one frame unless it is there already (an ingest resumed after an outage puts
        frames again); returns its payload size in bytes. The window counts a frame only once.

        The frame is set and counted in one MULTI rather than in a Lua script: a script copies
        its arguments twice inside Redis (~3 ms of Redis CPU for a 720p frame). A frame that
        was already there is uncounted right after; if the ingester dies in between, the
        window stays one frame smaller for that run, which only slows it. A MULTI retried
        after a lost reply finds the frame there and uncounts the second increment, so it
        never counts a frame twice.
        """
        data = payload.encode(frame, self.encoding, self.jpeg_quality)
        window = keys.queued_frames(video_id, run)
        transaction = self.redis.pipeline(transaction=True)
        transaction.set(keys.frame(video_id, run, frame.seq), data, ex=self.ttl_s, nx=True)
        transaction.incr(window)
        transaction.expire(window, self.ttl_s)
        stored, _, _ = transaction.execute()
        if not stored:
            self.redis.decr(window)
        return len(data)

    def queued(self, video_id: int, run: str) -> int:
        return int(self.redis.get(keys.queued_frames(video_id, run)) or 0)

    def wait_for_room(
        self, video_id: int, run: str, limit: int, should_stop: Callable[[], bool] = lambda: False
    ) -> float:
        """Block until fewer than `limit` frames of this run are queued; returns seconds waited."""
        started = time.monotonic()
        while self.queued(video_id, run) >= limit:
            if should_stop():
                break
            time.sleep(WINDOW_POLL_S)
        return time.monotonic() - started

    def get(self, video_id: int, run: str, seqs: range) -> list[Frame]:
        """The frames of `seqs`, in order; FramesMissingError if any has gone."""
        if not seqs:
            return []
        return self._read_frames(video_id, run, seqs)

    def payloads(self, video_id: int, run: str, seqs: range) -> list[bytes]:
        """The frames of `seqs` undecoded (payload.decode gives each Frame), in order;
        FramesMissingError if any has gone. For a caller that may not pose them: a frame's time
        is in its header (payload.pts_s), and a chunk dropped costs no colour conversion."""
        if not seqs:
            return []
        return self._read(video_id, run, seqs)

    def stream(
        self, video_id: int, run: str, seqs: range, batch: int = STREAM_BATCH_FRAMES
    ) -> Iterator[Frame]:
        """The frames of `seqs`, in order, read ahead one batch at a time.

        Raises FramesMissingError before yielding anything if a frame has gone, so a chunk
        that cannot be completed costs no posing; one expiring mid-way raises at its batch.
        """
        if not seqs:
            return
        checks = self.redis.pipeline(transaction=False)
        for s in seqs:
            checks.exists(keys.frame(video_id, run, s))
        missing = [s for s, there in zip(seqs, checks.execute(), strict=True) if not there]
        if missing:
            raise FramesMissingError(video_id, missing)  # named without reading any pixels
        batches = [seqs[i : i + batch] for i in range(0, len(seqs), batch)]
        # A thread per call, not per process: it lives as long as the chunk, so nothing outlives
        # a worker's context or survives into a forked child.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="posepipe-frame-reader") as reader:
            pending: Future[list[Frame]] = reader.submit(self._read_frames, video_id, run, batches[0])
            for following in batches[1:]:
                frames = pending.result()
                pending = reader.submit(self._read_frames, video_id, run, following)
                yield from frames
            yield from pending.result()

    def _read_frames(self, video_id: int, run: str, seqs: range) -> list[Frame]:
        # Decoded in the reading thread too: a YUV 4:2:0 frame's colour conversion (~1-2 ms
        # at 720p, swscale without the GIL) then overlaps the caller's posing.
        return [payload.decode(blob) for blob in self._read(video_id, run, seqs)]

    def _read(self, video_id: int, run: str, seqs: range) -> list[bytes]:
        # One GET a frame: a reply holding several large values costs redis-py's reader 3-4x
        # the CPU per frame (1.7 against 0.4 ms for 720p frames, 0.16 against 0.08 at 320x240),
        # and the extra round trips cost less wall time than that.
        blobs = [self.redis.get(keys.frame(video_id, run, s)) for s in seqs]
        missing = [s for s, blob in zip(seqs, blobs, strict=True) if blob is None]
        if missing:
            raise FramesMissingError(video_id, missing)
        return cast("list[bytes]", blobs)

    def release(self, video_id: int, run: str, seqs: range) -> int:
        """Delete the frames of `seqs` and shrink the window by as many as were there."""
        frame_keys = [keys.frame(video_id, run, s) for s in seqs]
        return int(self._release(keys=[keys.queued_frames(video_id, run), *frame_keys]))

    def purge(self, video_id: int, run: str) -> int:
        """Drop every frame of a run (a failed or superseded analysis)."""
        deleted = 0
        batch: list[str] = []
        for key in self.redis.scan_iter(match=keys.frame_pattern(video_id, run), count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(self.redis.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(self.redis.delete(*batch))
        self.redis.delete(keys.queued_frames(video_id, run))
        if deleted:
            log.info("video=%s purged %d queued frames of run %s", video_id, deleted, run)
        return deleted


class Lease:
    """Exclusive right to ingest one run, held in Redis with a TTL the holder refreshes.

    A lease that vanished (Redis restarted, or the holder stopped refreshing) means the run's
    queued work may be lost: whoever takes the lease next resumes it.
    """

    def __init__(self, redis: Redis, video_id: int, run: str, owner: str, ttl_s: int) -> None:
        self.redis = redis
        self.key = keys.ingest_lease(video_id, run)
        self.owner = owner
        self.ttl_s = ttl_s

    def acquire(self) -> bool:
        return bool(self.redis.set(self.key, self.owner, nx=True, ex=self.ttl_s))

    def holder(self) -> str | None:
        value = self.redis.get(self.key)
        return None if value is None else cast(bytes, value).decode()

    def refresh(self) -> bool:
        """Extend the lease; False if it is no longer ours (lost, or taken over)."""
        if self.holder() != self.owner:
            return False
        return bool(self.redis.expire(self.key, self.ttl_s))

    def release(self) -> None:
        if self.holder() == self.owner:
            self.redis.delete(self.key)

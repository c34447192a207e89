"""Video files and photos: open with PyAV, describe the video stream, and decode it frame by frame in
time order. A photo (any single picture FFmpeg reads: JPEG, PNG, WebP, BMP, TIFF, ...) is a
one-frame video here; `VideoInfo.photo` tells it apart by FFmpeg's image demuxer.

Owns every way a file can be unusable (not a container, no video stream, undecodable) and
turns each into a typed error naming the file and the reason. Does not sample or queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av

from pipeline.errors import CorruptVideoError, IngestError, NoVideoStreamError, SourceOpenError
from pipeline.frames import Frame, PlanarFrame, scaled_size

log = logging.getLogger(__name__)

_Sampled = TypeVar("_Sampled", Frame, PlanarFrame)

# A file whose decoder fails this many packets in a row is treated as corrupt rather than
# as a good file with a damaged spot (isolated broken packets are skipped and counted).
MAX_CONSECUTIVE_DECODE_ERRORS = 25
# Bounds the decoder's frame buffers for huge frames (an 8K file must not need GBs).
DECODE_THREADS = 2


def is_photo_container(name: str | None) -> bool:
    """Is this FFmpeg demuxer one that reads a single picture? `image2` picks the image codec by
    the file's name, the `<codec>_pipe` demuxers (jpeg_pipe, png_pipe, webp_pipe, ...) by its bytes.
    Animated formats (gif, apng) have demuxers of their own and stay videos."""
    return name is not None and (name == "image2" or name.endswith("_pipe"))


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream, with sizes as displayed (upright)."""

    container: str
    codec: str
    width: int
    height: int
    rotation_deg: int
    fps_native: float | None
    duration_s: float | None
    frame_count: int | None

    @property
    def photo(self) -> bool:
        return is_photo_container(self.container)


@dataclass(frozen=True)
class PacketTimes:
    """A file's video packets read without decoding: every frame's presentation time and where
    the keyframes are, in the same seconds `VideoFile.frames()` gives (~5 ms per 1,000 packets)."""

    frame_pts_s: tuple[float, ...]  # presentation order
    keyframe_pts: tuple[int, ...]  # in stream time-base units, what `frames(start_pts=...)` takes
    keyframe_pts_s: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """A decoded frame before sampling: cheap to make, converted to RGB only if it is kept."""

    av_frame: av.VideoFrame
    pts_s: float


class VideoFile:
    """An open video file. Use as a context manager; `frames()` decodes in presentation order."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.decode_errors = 0
        p = Path(path)
        if not p.exists():
            raise SourceOpenError(self.path, "file does not exist")
        if not p.is_file():
            raise SourceOpenError(self.path, "not a regular file")
        if p.stat().st_size == 0:
            raise SourceOpenError(self.path, "file is empty (0 bytes)")
        try:
            self._container = av.open(self.path, mode="r", metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise SourceOpenError(self.path, f"not a readable media file ({_ffmpeg_reason(exc)})") from exc
        if not self._container.streams.video:
            kinds: list[str] = sorted({s.type for s in self._container.streams}) or ["no streams"]
            self._container.close()
            raise NoVideoStreamError(self.path, f"no video stream (contains: {', '.join(kinds)})")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._stream.thread_count = DECODE_THREADS
        # Decode the first frame now: it proves the file is decodable before anything is
        # queued, and it carries the display rotation (PyAV exposes it per frame only).
        self._decoded: Generator[DecodedFrame, None, None] = self._decode()
        try:
            self._first: DecodedFrame | None = next(self._decoded)
        except StopIteration:
            self._container.close()
            raise CorruptVideoError(self.path, "no frame could be decoded") from None
        except CorruptVideoError:
            self._container.close()
            raise
        self.info = self._describe(self._first.av_frame.rotation)

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _describe(self, rotation_ccw: float) -> VideoInfo:
        stream = self._stream
        ctx = stream.codec_context
        rotation = int(round(rotation_ccw / 90.0)) * 90 % 360
        width, height = (ctx.height, ctx.width) if rotation % 180 else (ctx.width, ctx.height)
        rate = stream.average_rate or stream.guessed_rate
        duration_s = None
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration_s = self._container.duration / av.time_base
        return VideoInfo(
            container=self._container.format.name,
            codec=ctx.name,
            width=width,
            height=height,
            rotation_deg=rotation,
            fps_native=float(rate) if rate else None,
            duration_s=duration_s,
            frame_count=stream.frames or None,
        )

    def frames(self, start_pts: int | None = None) -> Iterator[DecodedFrame]:
        """Decoded frames in order, with pts in seconds from the stream's start. Once only.

        `start_pts` (a keyframe's pts, from `packet_times`) seeks there first and yields the
        frames from it on: the same frames, bit for bit, as decoding from the start gives
        from that keyframe on (leading frames of an open GOP, which precede the keyframe,
        are left out). An isolated undecodable packet is skipped and counted in
        `decode_errors`; a run of them raises CorruptVideoError.
        """
        if self._first is None:
            raise RuntimeError(f"{self.path}: frames() can be iterated once")
        first, self._first = self._first, None
        if start_pts is None:
            yield first
            yield from self._decoded
            return
        self._decoded.close()
        try:
            self._container.seek(start_pts, stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(
                self.path, f"cannot seek to pts {start_pts} ({_ffmpeg_reason(exc)})"
            ) from exc
        threshold = self._pts_s(start_pts)
        for decoded in self._decode():
            if decoded.pts_s >= threshold:
                yield decoded

    def packet_times(self) -> PacketTimes:
        """Every video packet's time and the keyframes, from a second reader of the file (no decoding).

        Packets the demuxer marks to be discarded (before an edit list's start) are left out,
        as the decoder leaves them out."""
        stream_index = self._stream.index
        pts: list[int] = []
        keyframes: list[int] = []
        with av.open(self.path, mode="r", metadata_errors="ignore") as container:
            stream = container.streams[stream_index]
            try:
                for packet in container.demux(stream):
                    if packet.pts is None or not packet.size or packet.is_discard:
                        continue
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keyframes.append(packet.pts)
            except av.error.FFmpegError as exc:
                log.warning("video=%s packet scan stopped early: %s", self.path, _ffmpeg_reason(exc))
        keyframes.sort()
        return PacketTimes(
            frame_pts_s=tuple(self._pts_s(p) for p in sorted(pts)),
            keyframe_pts=tuple(keyframes),
            keyframe_pts_s=tuple(self._pts_s(p) for p in keyframes),
        )

    def _pts_s(self, pts: int) -> float:
        stream = self._stream
        time_base = stream.time_base or Fraction(1, 90000)
        return float((pts - (stream.start_time or 0)) * time_base)

    def _decode(self) -> Generator[DecodedFrame, None, None]:
        consecutive_errors = 0
        for packet in self._demux():
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                self.decode_errors += 1
                consecutive_errors += 1
                log.warning("video=%s skipped undecodable packet: %s", self.path, _ffmpeg_reason(exc))
                if consecutive_errors >= MAX_CONSECUTIVE_DECODE_ERRORS:
                    raise CorruptVideoError(
                        self.path, f"{consecutive_errors} packets in a row failed to decode"
                    ) from exc
                continue
            consecutive_errors = 0
            for frame in decoded:
                if frame.pts is None:
                    continue
                yield DecodedFrame(frame, self._pts_s(frame.pts))

    def _demux(self) -> Iterator[av.Packet]:
        try:
            yield from self._container.demux(self._stream)
        except av.error.FFmpegError as exc:
            # A truncated or damaged container ends the read; what was decoded stays valid.
            self.decode_errors += 1
            log.warning("video=%s stopped reading early: %s", self.path, _ffmpeg_reason(exc))

    def sampled_frames(
        self,
        sampler_take: Callable[[float], bool],
        *,
        max_side: int,
        start_pts: int | None = None,
        first_seq: int = 0,
    ) -> Iterator[Frame]:
        """Frames kept by `sampler_take(pts_s)`, numbered from `first_seq` (from the start of the
        file, or from the keyframe at `start_pts`) and converted to upright RGB."""
        yield from self._sampled(sampler_take, max_side, Frame.from_av, start_pts, first_seq)

    def sampled_planar(
        self,
        sampler_take: Callable[[float], bool],
        *,
        max_side: int,
        start_pts: int | None = None,
        first_seq: int = 0,
    ) -> Iterator[PlanarFrame]:
        """The same frames as `sampled_frames`, left in YUV 4:2:0 for a worker to convert."""
        yield from self._sampled(sampler_take, max_side, PlanarFrame.from_av, start_pts, first_seq)

    def _sampled(
        self,
        sampler_take: Callable[[float], bool],
        max_side: int,
        convert: Callable[..., _Sampled],
        start_pts: int | None,
        first_seq: int,
    ) -> Iterator[_Sampled]:
        seq = first_seq
        for decoded in self.frames(start_pts):
            if sampler_take(decoded.pts_s):
                yield convert(
                    decoded.av_frame,
                    seq=seq,
                    pts_s=decoded.pts_s,
                    rotation_deg=self.info.rotation_deg,
                    max_side=max_side,
                )
                seq += 1


def first_frame_shape(path: str | Path, max_side: int) -> tuple[int, ...] | None:
    """The shape of `path`'s sampled frames as a worker poses them (upright RGB scaled to
    `max_side`), from the opened file's upright size: one frame decoded, none converted. None
    when the file does not open or decode: its ingest fails it, with the reason."""
    try:
        with VideoFile(path) as video:
            width, height = scaled_size(video.info.width, video.info.height, max_side)
    except IngestError:
        return None
    return (height, width, 3)


def _ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    return getattr(exc, "strerror", None) or str(exc)

"""Small synthetic videos and bad files for tests, made with PyAV or the ffmpeg command."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def pattern(width: int, height: int, index: int) -> np.ndarray:
    """An asymmetric test image (a bright corner block moves with the index)."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    rgb[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    rgb[: height // 4, : width // 4, 2] = 255
    rgb[height // 2 :, width // 2 :, 2] = (index * 37) % 256
    return rgb


def write_video(
    path: Path,
    *,
    width: int = 160,
    height: int = 120,
    fps: int = 30,
    frames: int = 30,
    pts_s: Sequence[float] | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode a video; `pts_s` gives each frame's time for variable-frame-rate files."""
    time_base = Fraction(1, 1000)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = time_base
        count = len(pts_s) if pts_s is not None else frames
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(pattern(width, height, i), format="rgb24")
            t = pts_s[i] if pts_s is not None else i / fps
            frame.pts = int(round(t / time_base))
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def with_rotation(src: Path, dst: Path, degrees: int) -> Path:
    """Copy with a display-rotation tag, as phones write it."""
    ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(dst))
    return dst


def ffmpeg_first_frame(src: Path, png: Path) -> np.ndarray:
    """The first frame as the ffmpeg command shows it (it applies rotation by default)."""
    ffmpeg("-i", str(src), "-frames:v", "1", str(png))
    with av.open(str(png)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def audio_only(dst: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(dst))
    return dst


def fast_video(
    path: Path, *, width: int, height: int, frames: int, pix_fmt: str = "yuv420p", fps: int = 10
) -> Path:
    """Like write_video, with x264's fastest preset (8K frames take long otherwise)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(width, height, i), format="rgb24").reformat(
                format=pix_fmt
            )
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def damage_middle(src: Path, dst: Path, fraction: float = 0.5, length: int = 2000) -> Path:
    """A copy with `length` bytes of garbage in the middle of the media data (a broken frame)."""
    data = bytearray(src.read_bytes())
    start = int(len(data) * fraction)
    data[start : start + length] = bytes((i * 97 + 13) % 256 for i in range(length))
    dst.write_bytes(bytes(data))
    return dst


def gop_video(
    path: Path,
    *,
    frames: int,
    fps: int = 30,
    gop: int = 30,
    b_frames: int = 2,
    width: int = 160,
    height: int = 120,
    pts_s: Sequence[float] | None = None,
) -> Path:
    """A video with a keyframe every `gop` frames (and none elsewhere) and `b_frames` B-frames
    between references: a long file the ingester can cut at keyframes. `pts_s` makes it VFR."""
    time_base = Fraction(1, 1000)
    with av.open(str(path), mode="w") as container:
        stream = _h264_fixed_gop(container, fps, width, height, gop, b_frames)
        stream.codec_context.time_base = time_base
        count = len(pts_s) if pts_s is not None else frames
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(pattern(width, height, i), format="rgb24")
            frame.pts = int(round((pts_s[i] if pts_s is not None else i / fps) / time_base))
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _h264_fixed_gop(
    container: av.container.OutputContainer,
    rate: Fraction | float,
    width: int,
    height: int,
    gop: int,
    b_frames: int,
) -> av.video.stream.VideoStream:
    """An H.264 stream with a keyframe exactly every `gop` frames (no scene-cut keyframes)."""
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {
        "preset": "veryfast",
        "g": str(gop),
        "keyint_min": str(gop),
        "sc_threshold": "0",
        "bf": str(b_frames),
    }
    return stream


def looped(src: Path, dst: Path, *, loops: int, gop: int, max_side: int = 320, b_frames: int = 2) -> Path:
    """A real clip played `loops` times in a row, scaled to `max_side` and re-encoded with a keyframe
    every `gop` frames: a long file with people in it, small enough to pose quickly."""
    with av.open(str(src)) as source:
        stream_in = source.streams.video[0]
        rate = stream_in.average_rate or Fraction(25)
        pictures = [f.to_ndarray(format="rgb24") for f in source.decode(stream_in)]
    height, width = pictures[0].shape[:2]
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = int(width * scale) // 2 * 2, int(height * scale) // 2 * 2
    with av.open(str(dst), mode="w") as container:
        stream = _h264_fixed_gop(container, rate, out_w, out_h, gop, b_frames)
        index = 0
        for _ in range(loops):
            for rgb in pictures:
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(out_w, out_h, "yuv420p")
                frame.pts = index
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    container.mux(packet)
                index += 1
        for packet in stream.encode():
            container.mux(packet)
    return dst

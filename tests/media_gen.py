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

"""Sampled frames: `Frame`, an upright RGB image and its time, which pose estimation takes; and
`PlanarFrame`, the same picture still in the decoder's YUV 4:2:0, which is how it travels
through Redis by default. PyAV frames enter here only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """A sampled frame ready for pose estimation.

    `seq` numbers the analysed frames of one video from 0 with no gaps; `pts_s` is the
    presentation time in seconds from the start of the video (or of the stream session).
    """

    seq: int
    pts_s: float
    rgb: np.ndarray

    def __post_init__(self) -> None:
        _check_time(self.seq, self.pts_s)
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"rgb must be HxWx3 uint8, got {self.rgb.dtype} {self.rgb.shape}")

    @property
    def resolution_wh(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    @classmethod
    def from_av(
        cls, frame: av.VideoFrame, *, seq: int, pts_s: float, rotation_deg: int, max_side: int
    ) -> Frame:
        """Convert a decoded PyAV frame: scale so the longer side is at most `max_side`
        (one swscale pass does scaling and colour conversion), then turn it upright."""
        out_w, out_h = _output_size(frame, max_side)
        rgb = frame.reformat(width=out_w, height=out_h, format="rgb24").to_ndarray()
        return cls(seq=seq, pts_s=pts_s, rgb=upright(rgb, rotation_deg))


# The 4:2:0 layouts a PlanarFrame carries without converting, and FFmpeg's colour ranges.
_PLANAR_FORMATS = ("yuv420p", "yuvj420p")
_UNSPECIFIED_RANGE, _FULL_RANGE = 0, 2


@dataclass(frozen=True, slots=True, eq=False)
class PlanarFrame:
    """A sampled frame before colour conversion: planar YUV 4:2:0 at the size pose will see.

    Half the bytes of RGB, and it costs the ingester a plane copy instead of a colour
    conversion; the worker converts it. `to_frame()` gives exactly the pixels `Frame.from_av`
    would have for a yuv420p or yuvj420p source (the same swscale conversion, from the source's
    colourspace and colour range), so where a frame is converted does not change a pose.
    `yuv` is the Y plane (height rows) followed by U and V (height/4 rows each, as
    `to_ndarray` lays them out); `rotation_deg` is applied after conversion.
    """

    seq: int
    pts_s: float
    yuv: np.ndarray
    colorspace: int
    rotation_deg: int
    color_range: int = _UNSPECIFIED_RANGE

    def __post_init__(self) -> None:
        _check_time(self.seq, self.pts_s)
        rows, width = self.yuv.shape if self.yuv.ndim == 2 else (0, 0)
        # H rows of Y then H/4 rows each of U and V at W wide: 3H/2 rows, so H = 2 * rows / 3 is
        # even whenever rows is a multiple of 3. The chroma planes need not end on a whole row of
        # W (H = 2 mod 4, e.g. 786 or 674 rows): their bytes are what counts, not their rows.
        if self.yuv.dtype != np.uint8 or rows % 3 or width % 2 or rows == 0 or width == 0:
            raise ValueError(
                f"yuv must be (3H/2)xW uint8 with H, W even, got {self.yuv.dtype} {self.yuv.shape}"
            )

    @property
    def height(self) -> int:
        return self.yuv.shape[0] * 2 // 3

    @property
    def width(self) -> int:
        return self.yuv.shape[1]

    @classmethod
    def from_av(
        cls, frame: av.VideoFrame, *, seq: int, pts_s: float, rotation_deg: int, max_side: int
    ) -> PlanarFrame:
        out_w, out_h = _output_size(frame, max_side)
        if frame.format.name not in _PLANAR_FORMATS or (frame.width, frame.height) != (out_w, out_h):
            # Other pixel formats (4:2:2, 4:4:4, 10-bit, ...) and other sizes: converted once here.
            frame = frame.reformat(width=out_w, height=out_h, format="yuv420p")
        # yuvj420p is yuv420p in full range: one layout and the range say the same.
        color_range = _FULL_RANGE if frame.format.name == "yuvj420p" else int(frame.color_range)
        return cls(seq, pts_s, frame.to_ndarray(), int(frame.colorspace), rotation_deg, color_range)

    def to_frame(self) -> Frame:
        picture = av.VideoFrame.from_ndarray(self.yuv, format="yuv420p")
        picture.colorspace = self.colorspace
        picture.color_range = self.color_range
        # One swscale thread: the worker's other cores are posing.
        rgb = _reformatter().reformat(picture, format="rgb24", threads=1).to_ndarray()
        return Frame(seq=self.seq, pts_s=self.pts_s, rgb=upright(rgb, self.rotation_deg))


def _check_time(seq: int, pts_s: float) -> None:
    if seq < 0:
        raise ValueError(f"seq must be >= 0, got {seq}")
    if not np.isfinite(pts_s):
        raise ValueError(f"pts_s must be finite, got {pts_s}")


_local = threading.local()


def _reformatter() -> VideoReformatter:
    """This thread's swscale context: a new one per frame costs more than the conversion."""
    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        reformatter = _local.reformatter = VideoReformatter()
    return reformatter


def _output_size(frame: av.VideoFrame, max_side: int) -> tuple[int, int]:
    return scaled_size(frame.width, frame.height, max_side)


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most `max_side` (0: native), both sides
    even (4:2:0). A quarter turn of the input turns the output the same way."""
    scale = min(1.0, max_side / max(width, height)) if max_side > 0 else 1.0
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def upright(rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Apply a container's display rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    quarter_turns = (round(rotation_deg / 90)) % 4
    if quarter_turns == 0:
        return rgb
    # np.rot90 turns counter-clockwise for positive k, which is the display matrix's sense.
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))

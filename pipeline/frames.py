"""The Frame: one sampled, decoded, upright RGB image and its time. PyAV frames enter here only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av


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
        if self.seq < 0:
            raise ValueError(f"seq must be >= 0, got {self.seq}")
        if not np.isfinite(self.pts_s):
            raise ValueError(f"pts_s must be finite, got {self.pts_s}")
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
        width, height = frame.width, frame.height
        scale = min(1.0, max_side / max(width, height)) if max_side > 0 else 1.0
        out_w = max(2, int(round(width * scale / 2)) * 2)
        out_h = max(2, int(round(height * scale / 2)) * 2)
        rgb = frame.reformat(width=out_w, height=out_h, format="rgb24").to_ndarray()
        return cls(seq=seq, pts_s=pts_s, rgb=upright(rgb, rotation_deg))


def upright(rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Apply a container's display rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    quarter_turns = (round(rotation_deg / 90)) % 4
    if quarter_turns == 0:
        return rgb
    # np.rot90 turns counter-clockwise for positive k, which is the display matrix's sense.
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))

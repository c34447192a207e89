"""Frame payloads: a sampled frame as bytes in Redis and back (YUV 4:2:0 or RGB pixels with a
shape header, or JPEG).

Layout: 4-byte magic, then a fixed header (encoding, seq, pts_s, height, width), for YUV 4:2:0
the colourspace, rotation and colour range, then the pixels. The header makes a payload
self-describing, so a job needs nothing but the key. Decoding always gives an RGB `Frame`.
"""

from __future__ import annotations

import struct
from enum import Enum

import cv2
import numpy as np

from pipeline.frames import Frame, PlanarFrame


class FrameEncoding(str, Enum):
    """How a frame's pixels are stored in Redis (see docs/architecture.md for the measurement)."""

    YUV420 = "yuv420"
    RAW = "raw"
    JPEG = "jpeg"


MAGIC = b"PPF1"
_HEADER = struct.Struct("<4sBqdII")  # magic, encoding, seq, pts_s, height, width
_PLANAR = struct.Struct("<IhB")  # YUV 4:2:0 only: colourspace, rotation (degrees), colour range
_CODES = {FrameEncoding.RAW: 0, FrameEncoding.JPEG: 1, FrameEncoding.YUV420: 2}
_ENCODINGS = {code: enc for enc, code in _CODES.items()}


class PayloadError(ValueError):
    """Bytes that are not a frame payload (wrong magic, truncated, undecodable JPEG)."""


def encode(frame: Frame | PlanarFrame, encoding: FrameEncoding, jpeg_quality: int = 90) -> bytes:
    """`encoding` YUV420 needs a PlanarFrame (its pixels are sent as they are); RAW and JPEG
    convert one to RGB first."""
    if encoding is FrameEncoding.YUV420:
        if not isinstance(frame, PlanarFrame):
            raise TypeError("the yuv420 encoding takes a PlanarFrame (PlanarFrame.from_av)")
        header = _HEADER.pack(MAGIC, _CODES[encoding], frame.seq, frame.pts_s, frame.height, frame.width)
        extra = _PLANAR.pack(frame.colorspace, frame.rotation_deg, frame.color_range)
        return b"".join((header, extra, np.ascontiguousarray(frame.yuv).data.cast("B")))
    if isinstance(frame, PlanarFrame):
        frame = frame.to_frame()
    height, width = frame.rgb.shape[:2]
    header = _HEADER.pack(MAGIC, _CODES[encoding], frame.seq, frame.pts_s, height, width)
    if encoding is FrameEncoding.RAW:
        # One copy of the pixels: `header + rgb.tobytes()` made two, ~1 ms a 720p frame.
        return b"".join((header, np.ascontiguousarray(frame.rgb).data.cast("B")))
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    )
    if not ok:
        raise PayloadError(f"JPEG encoding failed for frame {frame.seq}")
    return header + jpeg.tobytes()


def _header(payload: bytes) -> tuple[int, int, float, int, int]:
    """The header's encoding code, seq, time, height and width, checked."""
    if len(payload) < _HEADER.size:
        raise PayloadError(f"payload of {len(payload)} bytes is shorter than its header")
    magic, code, seq, t_s, height, width = _HEADER.unpack_from(payload)
    if magic != MAGIC or code not in _ENCODINGS:
        raise PayloadError("not a posepipe frame payload")
    return code, seq, t_s, height, width


def decode(payload: bytes) -> Frame:
    code, seq, pts_s, height, width = _header(payload)
    body = memoryview(payload)[_HEADER.size :]
    if _ENCODINGS[code] is FrameEncoding.YUV420:
        try:
            return _planar(body, seq, pts_s, height, width).to_frame()
        except ValueError as exc:  # an unknown colourspace, or a shape the checks above missed
            raise PayloadError(f"yuv420 frame {seq}: {exc}") from exc
    if _ENCODINGS[code] is FrameEncoding.RAW:
        expected = height * width * 3
        if len(body) != expected:
            raise PayloadError(f"raw frame {seq}: {len(body)} bytes, expected {expected}")
        rgb: np.ndarray = np.frombuffer(body, dtype=np.uint8).reshape(height, width, 3)
    else:
        bgr = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape[:2] != (height, width):
            raise PayloadError(f"JPEG frame {seq} could not be decoded to {width}x{height}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return Frame(seq=seq, pts_s=pts_s, rgb=rgb)


def pts_s(payload: bytes) -> float:
    """A payload's frame time, from its header alone (no pixels decoded)."""
    return float(_header(payload)[2])


def _planar(body: memoryview, seq: int, pts_s: float, height: int, width: int) -> PlanarFrame:
    expected = _PLANAR.size + height * width * 3 // 2
    if len(body) != expected or height % 2 or width % 2:
        raise PayloadError(f"yuv420 frame {seq}: {len(body)} bytes for {width}x{height}, expected {expected}")
    colorspace, rotation_deg, color_range = _PLANAR.unpack_from(body)
    yuv = np.frombuffer(body[_PLANAR.size :], dtype=np.uint8).reshape(height * 3 // 2, width)
    return PlanarFrame(seq, pts_s, yuv, colorspace, rotation_deg, color_range)

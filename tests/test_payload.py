"""Frame payloads round-trip through bytes; bad bytes fail loudly."""

import numpy as np
import pytest

from pipeline import payload
from pipeline.frames import Frame
from posepipe.settings import FrameEncoding


def gradient_frame(seq: int = 7) -> Frame:
    y, x = np.mgrid[0:120, 0:160]
    rgb = np.stack([x * 255 // 160, y * 255 // 120, (x + y) % 256], axis=-1).astype(np.uint8)
    return Frame(seq=seq, pts_s=1.25, rgb=rgb)


def test_raw_round_trip_is_exact() -> None:
    frame = gradient_frame()
    back = payload.decode(payload.encode(frame, FrameEncoding.RAW))
    assert (back.seq, back.pts_s) == (7, 1.25)
    assert np.array_equal(back.rgb, frame.rgb)


def test_jpeg_round_trip_is_close_and_smaller() -> None:
    frame = gradient_frame()
    data = payload.encode(frame, FrameEncoding.JPEG, jpeg_quality=90)
    back = payload.decode(data)
    assert back.rgb.shape == frame.rgb.shape
    assert np.abs(back.rgb.astype(int) - frame.rgb.astype(int)).mean() < 3
    assert len(data) < frame.rgb.nbytes / 3


@pytest.mark.parametrize("data", [b"", b"PPF1", b"nonsense" * 10])
def test_malformed_payloads_raise(data: bytes) -> None:
    with pytest.raises(payload.PayloadError):
        payload.decode(data)


def test_truncated_raw_payload_raises() -> None:
    data = payload.encode(gradient_frame(), FrameEncoding.RAW)
    with pytest.raises(payload.PayloadError, match="expected"):
        payload.decode(data[:-10])

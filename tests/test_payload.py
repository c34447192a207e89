"""Frame payloads round-trip through bytes; bad bytes fail loudly."""

from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import payload
from pipeline.frames import Frame, PlanarFrame
from pipeline.payload import FrameEncoding
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from tests import media_gen


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


def both_ways(path: Path, max_side: int) -> tuple[list[Frame], list[Frame], int]:
    """The file's frames converted by the ingester (RGB) and through a yuv420 payload, and the
    payload's size."""
    with VideoFile(path) as video:
        direct = list(video.sampled_frames(FrameSampler(0).take, max_side=max_side))
    with VideoFile(path) as video:
        blobs = [
            payload.encode(p, FrameEncoding.YUV420)
            for p in video.sampled_planar(FrameSampler(0).take, max_side=max_side)
        ]
    return direct, [payload.decode(b) for b in blobs], len(blobs[0])


@pytest.mark.parametrize(
    ("pix_fmt", "degrees"), [("yuv420p", 0), ("yuv420p", 90), ("yuv420p", 270), ("yuvj420p", 0)]
)
def test_yuv420_payload_gives_the_pixels_the_ingester_would_have_converted(
    tmp_path: Path, pix_fmt: str, degrees: int
) -> None:
    # Bit for bit, so moving the colour conversion to the worker changes no pose; full-range
    # yuvj420p (common from IP cameras) travels as it is too.
    path = media_gen.write_video(tmp_path / "plain.mp4", width=160, height=96, frames=5, pix_fmt=pix_fmt)
    if degrees:
        path = media_gen.with_rotation(path, tmp_path / f"rot{degrees}.mp4", degrees)
    direct, through_redis, size = both_ways(path, max_side=0)
    assert [(f.seq, f.pts_s) for f in through_redis] == [(f.seq, f.pts_s) for f in direct]
    for a, b in zip(direct, through_redis, strict=True):
        assert b.rgb.shape == a.rgb.shape == ((96, 160, 3) if degrees in (0, 180) else (160, 96, 3))
        assert np.array_equal(a.rgb, b.rgb)
    assert size < direct[0].rgb.nbytes * 0.51  # 1.5 bytes a pixel against 3


@pytest.mark.parametrize(("pix_fmt", "max_side"), [("yuv444p", 0), ("yuv420p", 80)], ids=["4:4:4", "scaled"])
def test_yuv420_payload_of_other_sources_is_converted_once_in_the_ingester(
    tmp_path: Path, pix_fmt: str, max_side: int
) -> None:
    # Not yuv420p at the output size: the ingester converts to it, so the worker sees 4:2:0 of
    # the same picture (chroma and range rounding only).
    path = media_gen.write_video(tmp_path / "v.mp4", width=160, height=96, frames=3, pix_fmt=pix_fmt)
    direct, through_redis, _ = both_ways(path, max_side=max_side)
    for a, b in zip(direct, through_redis, strict=True):
        assert b.rgb.shape == a.rgb.shape
        assert np.abs(a.rgb.astype(int) - b.rgb.astype(int)).mean() < 3


def test_yuv420_encoding_needs_a_planar_frame_and_raw_converts_one() -> None:
    planar = PlanarFrame(
        seq=3, pts_s=0.5, yuv=np.full((12, 8), 128, dtype=np.uint8), colorspace=1, rotation_deg=0
    )
    with pytest.raises(TypeError, match="PlanarFrame"):
        payload.encode(gradient_frame(), FrameEncoding.YUV420)
    back = payload.decode(payload.encode(planar, FrameEncoding.RAW))
    assert back.rgb.shape == (8, 8, 3)
    assert np.array_equal(back.rgb, planar.to_frame().rgb)


def test_truncated_yuv420_payload_raises() -> None:
    planar = PlanarFrame(
        seq=3, pts_s=0.5, yuv=np.zeros((12, 8), dtype=np.uint8), colorspace=1, rotation_deg=0
    )
    data = payload.encode(planar, FrameEncoding.YUV420)
    assert payload.decode(data).rgb.shape == (8, 8, 3)
    with pytest.raises(payload.PayloadError, match="expected"):
        payload.decode(data[:-1])


@pytest.mark.parametrize("shape", [(12, 7), (13, 8), (0, 8), (10, 8)])
def test_planar_frame_rejects_shapes_that_are_not_4_2_0(shape: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="even"):
        PlanarFrame(seq=0, pts_s=0.0, yuv=np.zeros(shape, dtype=np.uint8), colorspace=1, rotation_deg=0)


@settings(max_examples=60, deadline=None)
@given(width=st.integers(16, 2100), height=st.integers(16, 2100), max_side=st.sampled_from([0, 1280, 640]))
def test_every_frame_size_travels_as_yuv420_and_matches_a_direct_conversion(
    width: int, height: int, max_side: int
) -> None:
    """Odd sizes and heights of every residue mod 4 (786 and 674 rows once crashed: their chroma
    planes do not end on a whole row of the luma width), native or scaled down."""
    rng = np.random.default_rng(width * 4099 + height)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    decoded = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    planar = PlanarFrame.from_av(decoded, seq=0, pts_s=0.0, rotation_deg=0, max_side=max_side)
    frame = payload.decode(payload.encode(planar, FrameEncoding.YUV420))
    direct = Frame.from_av(decoded, seq=0, pts_s=0.0, rotation_deg=0, max_side=max_side)
    assert frame.rgb.shape == direct.rgb.shape
    if (planar.width, planar.height) == (decoded.width, decoded.height):
        assert np.array_equal(frame.rgb, direct.rgb)
    else:  # scaled: once to 4:2:0 in the ingester, against one swscale pass to RGB
        assert np.abs(frame.rgb.astype(int) - direct.rgb.astype(int)).mean() < 12


@pytest.mark.parametrize("height", [674, 786, 478, 926])
def test_heights_of_2_mod_4_are_ingested_from_a_real_encoded_file(tmp_path: Path, height: int) -> None:
    path = media_gen.write_video(tmp_path / f"h{height}.mp4", width=480, height=height, frames=8)
    direct, via_payload, _ = both_ways(path, max_side=0)
    assert direct and len(direct) == len(via_payload)
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(direct, via_payload, strict=True))


@pytest.mark.parametrize(
    "clip", ["exercise/ex_pushup_side_full_then_knee.mp4", "falls/fall_real_ltc_walker_weightshift_sfu.mp4"]
)
def test_yuv420_payload_of_real_clips_is_exact(media_dir: Path, clip: str) -> None:
    # BT.709 HD, and SD flagged full range: the worker must convert from the source's
    # colourspace and range.
    direct, through_redis, _ = both_ways(media_dir / clip, max_side=1280)
    assert len(direct) > 100
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(direct, through_redis, strict=True))


def test_a_payloads_time_is_read_from_its_header_alone() -> None:
    # workers.live decides whether to drop a chunk from its newest frame's time, undecoded.
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    for encoding in (FrameEncoding.RAW, FrameEncoding.JPEG):
        assert payload.pts_s(payload.encode(Frame(seq=3, pts_s=1.25, rgb=rgb), encoding)) == 1.25
    with pytest.raises(payload.PayloadError):
        payload.pts_s(b"PPF0" + bytes(40))

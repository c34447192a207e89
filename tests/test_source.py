"""Opening and decoding video files: orientation, timing, and every way a file can be unusable."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import CorruptVideoError, NoVideoStreamError, SourceOpenError
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile, first_frame_shape
from tests import media_gen


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_video_is_decoded_upright_like_ffmpeg_shows_it(tmp_path: Path, degrees: int) -> None:
    plain = media_gen.write_video(tmp_path / "plain.mp4", width=160, height=96)
    rotated = media_gen.with_rotation(plain, tmp_path / f"rot{degrees}.mp4", degrees)
    reference = media_gen.ffmpeg_first_frame(rotated, tmp_path / "ref.png")
    with VideoFile(rotated) as video:
        first = next(video.sampled_frames(FrameSampler(0).take, max_side=0))
        assert (video.info.width, video.info.height) == (reference.shape[1], reference.shape[0])
    assert first.rgb.shape == reference.shape
    # Compression differs between the two paths, the orientation must not.
    assert np.abs(first.rgb.astype(int) - reference.astype(int)).mean() < 6


@pytest.mark.parametrize(("degrees", "width", "height"), [(0, 640, 360), (90, 640, 360), (90, 630, 354)])
def test_first_frame_shape_is_the_shape_a_worker_poses(
    tmp_path: Path, degrees: int, width: int, height: int
) -> None:
    """Scaled and turned upright, as the frames that reach a worker through the frame store."""
    plain = media_gen.write_video(tmp_path / "plain.mp4", width=width, height=height)
    path = media_gen.with_rotation(plain, tmp_path / f"rot{degrees}.mp4", degrees) if degrees else plain
    with VideoFile(path) as video:
        stored = next(video.sampled_planar(FrameSampler(10).take, max_side=320)).to_frame()
    with VideoFile(path) as video:
        direct = next(video.sampled_frames(FrameSampler(10).take, max_side=320))
    assert stored.rgb.shape[:2] == ((320, 180) if degrees else (180, 320))
    assert first_frame_shape(path, 320) == stored.rgb.shape == direct.rgb.shape


def test_first_frame_shape_of_an_unreadable_file_is_none(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n" * 100)
    assert first_frame_shape(fake, 320) is None


def test_variable_frame_rate_keeps_presentation_times(tmp_path: Path) -> None:
    times = [0.0, 0.02, 0.04, 0.06, 0.5, 1.0, 1.05, 1.5, 2.0]
    path = media_gen.write_video(tmp_path / "vfr.mp4", pts_s=times)
    with VideoFile(path) as video:
        decoded = [round(f.pts_s, 3) for f in video.frames()]
    assert decoded == times
    with VideoFile(path) as video:
        sampled = [round(f.pts_s, 3) for f in video.sampled_frames(FrameSampler(2).take, max_side=0)]
    assert sampled == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_frames_are_numbered_without_gaps_and_scaled(tmp_path: Path) -> None:
    path = media_gen.write_video(tmp_path / "v.mp4", width=640, height=360, frames=12)
    with VideoFile(path) as video:
        frames = list(video.sampled_frames(FrameSampler(0).take, max_side=320))
    assert [f.seq for f in frames] == list(range(12))
    assert frames[0].resolution_wh == (320, 180)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceOpenError, match="does not exist"):
        VideoFile(tmp_path / "nope.mp4")


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceOpenError, match="empty"):
        VideoFile(empty)


def test_text_renamed_to_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are not the frames you are looking for\n" * 100)
    with pytest.raises(SourceOpenError, match="not a readable media file"):
        VideoFile(fake)


def test_audio_only_file(tmp_path: Path) -> None:
    with pytest.raises(NoVideoStreamError, match="no video stream.*audio"):
        VideoFile(media_gen.audio_only(tmp_path / "tone.m4a"))


def test_truncated_file_without_index_fails_to_open(tmp_path: Path) -> None:
    path = media_gen.write_video(tmp_path / "v.mp4", frames=60)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: gone
    with pytest.raises((SourceOpenError, CorruptVideoError)):
        VideoFile(cut)


def test_still_image_is_a_one_frame_video(media_dir: Path) -> None:
    with VideoFile(media_dir / "images" / "img_businessman_fullbody.jpeg") as video:
        frames = list(video.sampled_frames(FrameSampler(10).take, max_side=0))
    assert len(frames) == 1
    assert frames[0].pts_s == 0.0

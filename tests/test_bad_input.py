"""A batch mixing good files with every kind of bad or awkward one: each good file completes, each
bad one fails alone with a message saying why, and the queue keeps going."""

from __future__ import annotations

import resource
from pathlib import Path

from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile
from posepipe.report import video_report
from storage.models import Video
from tests import media_gen
from tests.test_pipeline import analyse

GOOD_CLIP = "falls/urfall_ds22_fall_toward_camera.mp4"


def make_inputs(tmp: Path, media: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Good inputs (must complete) and bad ones with the words their error must contain."""
    clip = media / GOOD_CLIP
    plain = media_gen.write_video(tmp / "plain.mp4", width=320, height=240, frames=30)
    truncated = tmp / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp / "readme.mp4"
    text.write_text("This is a text file with a video's name.\n" * 40)
    good = {
        "real clip": clip,
        "8K": media_gen.fast_video(tmp / "8k.mp4", width=7680, height=4320, frames=4),
        "10-bit": media_gen.fast_video(
            tmp / "10bit.mp4", width=320, height=240, frames=10, pix_fmt="yuv420p10le"
        ),
        "yuv444": media_gen.fast_video(tmp / "444.mp4", width=320, height=240, frames=10, pix_fmt="yuv444p"),
        "rotated phone video": media_gen.with_rotation(plain, tmp / "phone.mp4", 90),
        "variable frame rate": media_gen.write_video(
            tmp / "vfr.mp4", pts_s=[0, 0.02, 0.04, 0.5, 1.0, 1.05, 2.0]
        ),
        "still image": media / "images" / "img_zidane_two_men.jpg",
        "broken frame in the middle": media_gen.damage_middle(clip, tmp / "damaged.mp4"),
    }
    bad = {
        "truncated": (truncated, "truncated.mp4"),
        "zero bytes": (empty, "empty"),
        "text renamed to mp4": (text, "not a readable media file"),
        "audio only": (media_gen.audio_only(tmp / "tone.m4a"), "no video stream"),
        "missing": (tmp / "nowhere.mp4", "does not exist"),
    }
    return good, {name: f"{path}|{words}" for name, (path, words) in bad.items()}


def test_a_mixed_batch_completes_the_good_and_fails_the_bad_alone(
    make_settings, open_services, media_dir: Path, tmp_path: Path
) -> None:
    good, bad = make_inputs(tmp_path, media_dir)
    bad_paths = {name: Path(spec.split("|")[0]) for name, spec in bad.items()}
    # Bad files first and in between: the queue must keep going past each of them.
    order = [
        bad_paths["truncated"], good["real clip"], bad_paths["zero bytes"], good["8K"],
        bad_paths["text renamed to mp4"], good["10-bit"], good["yuv444"], bad_paths["audio only"],
        good["rotated phone video"], good["variable frame rate"], bad_paths["missing"], good["still image"],
        good["broken frame in the middle"],
    ]  # fmt: skip
    services = open_services(make_settings())
    targets = analyse(services, order)
    reports = {Path(t.path): video_report(services.db, t) for t in targets}

    for name, spec in bad.items():
        path, words = spec.split("|")
        report = reports[Path(path)]
        assert report.status == "failed", (name, report)
        assert words in report.error, (name, report.error)
    for name, path in good.items():
        report = reports[path]
        assert report.status == "done", (name, report.error)
        with VideoFile(path) as video:
            expected = sum(1 for _ in video.sampled_frames(FrameSampler(10).take, max_side=64))
        assert report.frames_analyzed == expected, name

    with services.db.session() as s:
        phone = s.get(Video, reports[good["rotated phone video"]].video_id)
        assert (phone.width, phone.height, phone.rotation_deg) == (240, 320, 90)
        big = s.get(Video, reports[good["8K"]].video_id)
        assert (big.width, big.height) == (7680, 4320)
    # 8K frames are scaled to POSEPIPE_FRAME_MAX_SIDE before queuing: memory stays bounded.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_mb < 3000, peak_mb

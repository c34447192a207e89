"""The input matrix: files as users have them, written by the local FFmpeg, each taken through the
ingest path (decode, sample, scale, the YUV 4:2:0 payload in the frame store, the worker's RGB)
and compared with FFmpeg's own rgb24 decode of the same frame.

The cells come from what this FFmpeg can encode (`ffmpeg -encoders`): a cell whose encoder is
missing is never built, and the test asserts a minimum number of cells, so a poorer FFmpeg
shows up as a failure instead of as silently thinner coverage. Every cell is analysed, or fails
alone with a message naming the cell and the reason (pytest's parametrization).
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import fakeredis
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image

from pipeline.errors import IngestError
from pipeline.framestore import FrameStore
from pipeline.ingest import IngestPlan, ingest_file
from pipeline.payload import FrameEncoding
from pipeline.source import VideoFile
from tests import media_gen

# The pipeline's default longer side for pose (posepipe.settings.frame_max_side).
MAX_SIDE = 1280
# Mean absolute differences (0-255 levels) allowed between the RGB the model gets and FFmpeg's
# rgb24 decode of the same frame. Both use swscale, but frames travel as YUV 4:2:0 (pipeline.frames),
# which keeps luma per pixel and one colour per 2x2 block: so luma is compared per pixel, colour
# per block. A wrong colour range moves luma by up to 16 levels, a wrong plane or stride by far
# more. Colour gets more room because a 4:4:4 or RGB source squeezed to a few pixels' width
# (17x4095 scaled to 6x1280) has colour edges finer than a block: measured up to 10.6 there,
# under 4 on ordinary sizes.
LUMA_TOLERANCE = 4.0
COLOUR_TOLERANCE = 12.0
# A tall, narrow picture scaled down 2x or more to under 64 pixels' width squeezes fine detail
# into a few pixels, where two FFmpeg versions' scalers disagree (the Debian ffmpeg that makes
# the reference against PyAV's own libswscale): measured here on nine such sizes (17 to 100
# wide, 4095 high, to 1280 high; H.264 4:4:4 and 4:2:0, VP9, MJPEG) luma 2.0-4.2 and colour
# 2.2-19.6, while ordinary sizes stay under 1. A wrong colour range or plane still shows.
SQUEEZED_MAX_WIDTH = 64
SQUEEZED_LUMA_TOLERANCE = 6.0
SQUEEZED_COLOUR_TOLERANCE = 24.0
# Every cell needs this few frames: enough for a variable rate to show, fast to encode.
FRAMES = 4
FPS = 10
# The FFmpeg builds posepipe supports (Debian 12's 5.1, the PyAV wheels' 6-7) all have at least
# this many cells; fewer means encoders went missing.
MIN_CELLS = 40


@functools.cache
def encoders() -> frozenset[str]:
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        # Lines are " V....D name  description"; the header ends at the "------" line.
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS" and parts[0] != "------":
            names.add(parts[1])
    return frozenset(names)


@dataclass(frozen=True)
class Cell:
    """One file to write: encoder, pixel format, container, and how it is shot."""

    name: str
    encoder: str
    pix_fmt: str
    ext: str
    width: int = 96
    height: int = 64
    rotation: int = 0
    vfr: bool = False
    frames: int = FRAMES
    extra: tuple[str, ...] = field(default=())
    # Only a still picture (one frame) for image formats.
    still: bool = False


def _cells() -> tuple[list[Cell], list[Cell]]:
    """The cells this FFmpeg can write, and those it cannot (their encoder is missing)."""
    have = encoders()
    cells: list[Cell] = []
    missing: list[Cell] = []

    def add(cell: Cell) -> None:
        (cells if cell.encoder in have else missing).append(cell)

    # Codecs x containers that users meet.
    for ext in ("mp4", "mov", "mkv", "ts", "m4v", "avi"):
        add(Cell(f"h264-{ext}", "libx264", "yuv420p", ext, extra=("-preset", "ultrafast")))
    for ext in ("mp4", "mkv", "mov"):
        add(
            Cell(
                f"hevc-{ext}",
                "libx265",
                "yuv420p",
                ext,
                extra=("-preset", "ultrafast", "-x265-params", "log-level=error"),
            )
        )
    for ext in ("webm", "mkv"):
        add(Cell(f"vp8-{ext}", "libvpx", "yuv420p", ext, extra=("-deadline", "realtime")))
        add(
            Cell(
                f"vp9-{ext}", "libvpx-vp9", "yuv420p", ext, extra=("-deadline", "realtime", "-cpu-used", "8")
            )
        )
    for ext in ("mp4", "mkv", "webm"):
        if "libsvtav1" in have:
            add(Cell(f"av1-{ext}", "libsvtav1", "yuv420p", ext, extra=("-preset", "12")))
        else:
            add(Cell(f"av1-{ext}", "libaom-av1", "yuv420p", ext, extra=("-cpu-used", "8")))
    for ext in ("avi", "mov", "mkv"):
        add(Cell(f"mjpeg-{ext}", "mjpeg", "yuvj420p", ext))
        add(Cell(f"mpeg4-{ext}", "mpeg4", "yuv420p", ext))
    add(Cell("gif-pal8", "gif", "pal8", "gif"))
    # Pixel formats.
    for pix_fmt in ("yuvj420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "gray", "nv12"):
        add(Cell(f"h264-{pix_fmt}", "libx264", pix_fmt, "mkv", extra=("-preset", "ultrafast")))
    add(
        Cell(
            "hevc-yuv420p10le",
            "libx265",
            "yuv420p10le",
            "mp4",
            extra=("-preset", "ultrafast", "-x265-params", "log-level=error"),
        )
    )
    add(
        Cell(
            "vp9-yuv444p", "libvpx-vp9", "yuv444p", "webm", extra=("-deadline", "realtime", "-cpu-used", "8")
        )
    )
    add(
        Cell(
            "vp9-yuva420p",
            "libvpx-vp9",
            "yuva420p",
            "webm",
            extra=("-deadline", "realtime", "-cpu-used", "8"),
        )
    )
    add(
        Cell(
            "vp8-yuva420p",
            "libvpx",
            "yuva420p",
            "webm",
            extra=("-deadline", "realtime", "-auto-alt-ref", "0"),
        )
    )
    add(Cell("h264rgb-rgb24", "libx264rgb", "rgb24", "mkv", extra=("-preset", "ultrafast")))
    for pix_fmt in ("rgb24", "nv12", "gray", "bgra", "yuyv422"):
        add(Cell(f"raw-{pix_fmt}", "rawvideo", pix_fmt, "avi" if pix_fmt != "nv12" else "mkv"))
    add(Cell("ffv1-yuv420p10le", "ffv1", "yuv420p10le", "mkv"))
    add(Cell("png-rgba-mov", "png", "rgba", "mov"))
    # Display rotations, as phones tag them.
    for rotation in (90, 180, 270):
        add(
            Cell(
                f"h264-rot{rotation}",
                "libx264",
                "yuv420p",
                "mp4",
                width=96,
                height=64,
                rotation=rotation,
                extra=("-preset", "ultrafast"),
            )
        )
        add(
            Cell(
                f"hevc-rot{rotation}",
                "libx265",
                "yuv420p",
                "mov",
                width=96,
                height=64,
                rotation=rotation,
                extra=("-preset", "ultrafast", "-x265-params", "log-level=error"),
            )
        )
    # Variable frame rate.
    for ext in ("mp4", "mkv", "webm"):
        enc = "libvpx-vp9" if ext == "webm" else "libx264"
        add(Cell(f"vfr-{ext}", enc, "yuv420p", ext, vfr=True, frames=8))
    # Still pictures (photos), one frame each.
    for encoder, pix_fmt, ext in (
        ("mjpeg", "yuvj420p", "jpg"),
        ("mjpeg", "yuvj444p", "jpeg"),
        ("png", "rgb24", "png"),
        ("png", "rgba", "png"),
        ("png", "gray", "png"),
        ("png", "rgb48be", "png"),
        ("libwebp", "yuv420p", "webp"),
        ("libwebp", "yuva420p", "webp"),
        ("bmp", "bgr24", "bmp"),
        ("tiff", "rgb24", "tiff"),
        ("tiff", "rgba", "tif"),
        ("gif", "pal8", "gif"),
    ):
        add(Cell(f"photo-{ext}-{pix_fmt}", encoder, pix_fmt, ext, width=97, height=63, still=True, frames=1))
    return cells, missing


CELLS, MISSING = _cells()


def test_the_matrix_has_the_cells_this_ffmpeg_can_make() -> None:
    # Cells left out are named, with the encoder this FFmpeg lacks, in the failure or with -s.
    print(f"{len(CELLS)} cells; left out: {[(c.name, c.encoder) for c in MISSING] or 'none'}")
    assert len(CELLS) >= MIN_CELLS, (
        f"only {len(CELLS)} cells: is FFmpeg missing encoders? have {sorted(encoders())}"
    )
    names = {c.name for c in CELLS}
    # The codecs every supported build has; missing ones fail here rather than vanish.
    for needed in (
        "h264-mp4",
        "vp9-webm",
        "mjpeg-avi",
        "mpeg4-avi",
        "gif-pal8",
        "photo-jpg-yuvj420p",
        "photo-png-rgba",
    ):
        assert needed in names


def source_picture(width: int, height: int) -> str:
    """An lavfi source: smooth gradients with some detail, moving frame to frame."""
    return f"testsrc2=size={width}x{height}:rate={FPS},gblur=sigma=2,format=rgb24"


def write(cell: Cell, directory: Path) -> Path:
    path = directory / f"{cell.name}.{cell.ext}"
    args = [
        "ffmpeg",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        source_picture(cell.width, cell.height),
    ]
    args += ["-frames:v", str(cell.frames), "-c:v", cell.encoder, "-pix_fmt", cell.pix_fmt, *cell.extra]
    if cell.vfr:
        # Frame times 0, .1, .15, .4, .45, ... (uneven steps), written as they are.
        args += [
            "-vf",
            "settb=1/1000,setpts='(N*0.1+0.05*mod(N\\,2)*gt(N\\,1))/TB'",
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "1/1000",
        ]
    if cell.still:
        args += ["-update", "1"]
    plain = path.with_name(f"plain-{path.name}") if cell.rotation else path
    args.append(str(plain))
    subprocess.run(args, check=True, capture_output=True)
    if cell.rotation:
        # A display rotation is a container tag: FFmpeg 5 writes it on a stream copy only.
        media_gen.with_rotation(plain, path, cell.rotation)
    return path


def ffmpeg_rgb(path: Path, size_wh: tuple[int, int]) -> list[np.ndarray]:
    """Every frame as the ffmpeg command decodes it to rgb24 at `size_wh` (display rotation
    applied), in decoding order: one ffmpeg run per file, not one per frame (each of which
    decoded the file up to its frame again)."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-vf",
            f"scale={size_wh[0]}:{size_wh[1]}:flags=bicubic",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    frame_bytes = size_wh[0] * size_wh[1] * 3
    assert len(out) % frame_bytes == 0, f"{path.name}: ffmpeg gave {len(out)} bytes for {size_wh} frames"
    return [np.frombuffer(out, dtype=np.uint8)[i : i + frame_bytes] for i in range(0, len(out), frame_bytes)]


def picture_difference(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """Mean absolute luma difference per pixel, and mean colour difference per 2x2 block."""
    a, b = got.astype(np.float64), want.astype(np.float64)
    weights = np.array([0.299, 0.587, 0.114])  # BT.601 luma
    return float(np.abs(a @ weights - b @ weights).mean()), float(np.abs(_blocks(a) - _blocks(b)).mean())


def _blocks(rgb: np.ndarray) -> np.ndarray:
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        return rgb
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    return rgb[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))


class _Queue:
    """Records the pose jobs ingest would queue."""

    def __init__(self) -> None:
        self.jobs: list[tuple[int, int]] = []

    def enqueue_pose(self, video_id: int, run: str, chunk_idx: int, start: int, end: int) -> None:
        self.jobs.append((start, end))


def ingest_to_model(path: Path, max_side: int, fps: float = 0.0) -> list:
    """The frames a pose worker gets for `path`: ingest into a frame store, then read them back."""
    store = FrameStore(fakeredis.FakeRedis(), ttl_s=600, encoding=FrameEncoding.YUV420)
    queue = _Queue()
    plan = IngestPlan(
        video_id=1, run="r", fps=fps, chunk_frames=2, max_queued_bytes=1 << 30, frame_max_side=max_side
    )
    with VideoFile(path) as video:
        result = ingest_file(video, plan, store, queue)  # type: ignore[arg-type]
    assert queue.jobs and queue.jobs[-1][1] == result.frames_total
    return store.get(1, "r", range(result.frames_total))


def check_cell(cell: Cell, path: Path, max_side: int) -> None:
    frames = ingest_to_model(path, max_side)
    assert len(frames) == cell.frames, f"{cell.name}: {len(frames)} frames analysed, {cell.frames} written"
    up_w, up_h = (cell.height, cell.width) if cell.rotation % 180 else (cell.width, cell.height)
    decoded: dict[tuple[int, int], list[np.ndarray]] = {}  # ffmpeg's frames, by the size asked
    for i, frame in enumerate(frames):
        h, w = frame.rgb.shape[:2]
        assert (w >= h) == (up_w >= up_h), (
            f"{cell.name}: frame {i} is {w}x{h}, the upright picture {up_w}x{up_h}"
        )
        assert max(w, h) <= max(max_side, 2) or max_side == 0
        if (w, h) not in decoded:
            decoded[(w, h)] = ffmpeg_rgb(path, (w, h))
        assert i < len(decoded[(w, h)]), f"{cell.name}: ffmpeg decoded {len(decoded[(w, h)])} frames"
        want = decoded[(w, h)][i]
        assert want.size == frame.rgb.size, f"{cell.name}: ffmpeg gave {want.size} bytes for {w}x{h}"
        luma, colour = picture_difference(frame.rgb, want.reshape(h, w, 3))
        squeezed = min(w, h) < SQUEEZED_MAX_WIDTH and max(up_w, up_h) >= 2 * max(w, h)
        luma_ok = luma <= (SQUEEZED_LUMA_TOLERANCE if squeezed else LUMA_TOLERANCE)
        colour_ok = colour <= (SQUEEZED_COLOUR_TOLERANCE if squeezed else COLOUR_TOLERANCE)
        assert luma_ok and colour_ok, (
            f"{cell.name}: frame {i} ({w}x{h}) differs from ffmpeg's rgb24 by {luma:.2f} levels of luma "
            f"per pixel, {colour:.2f} of colour per 2x2 block"
        )
    pts = [f.pts_s for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts), f"{cell.name}: times {pts}"


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_cell_reaches_the_model_as_ffmpeg_decodes_it(cell: Cell, tmp_path: Path) -> None:
    path = write(cell, tmp_path)
    check_cell(cell, path, MAX_SIDE)
    if cell.vfr:
        with VideoFile(path) as video:
            times = [f.pts_s for f in video.frames()]
        steps = np.diff(times)
        assert steps.max() - steps.min() > 0.03, f"{cell.name}: the file is not variable-rate: {times}"


# Sizes: every residue mod 4 of width and height, odd and even, small and large, encoded by
# codecs that take any size (4:4:4 H.264, MJPEG 4:2:0 with odd sizes, VP9, PNG in MOV).
SIZE_CODECS = {
    "h264-444": ("libx264", "yuv444p", "mkv", ("-preset", "ultrafast")),
    "vp9-420": ("libvpx-vp9", "yuv420p", "webm", ("-deadline", "realtime", "-cpu-used", "8")),
    "mjpeg-420": ("mjpeg", "yuvj420p", "avi", ()),
    "h264-420": ("libx264", "yuv420p", "mp4", ("-preset", "ultrafast")),
}


def _size_cell(codec: str, width: int, height: int) -> Cell:
    encoder, pix_fmt, ext, extra = SIZE_CODECS[codec]
    if pix_fmt == "yuv420p" and encoder == "libx264":
        width, height = width + width % 2, height + height % 2  # H.264 4:2:0 needs even sides
    return Cell(
        f"{codec}-{width}x{height}", encoder, pix_fmt, ext, width=width, height=height, frames=2, extra=extra
    )


sizes = st.integers(min_value=16, max_value=4096)


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    codec=st.sampled_from(sorted(SIZE_CODECS)),
    width=sizes,
    height=sizes,
    max_side=st.sampled_from([0, MAX_SIDE]),
)
@example(codec="h264-444", width=17, height=4095, max_side=MAX_SIDE)
@example(codec="vp9-420", width=482, height=788, max_side=0)
@example(codec="mjpeg-420", width=1367, height=721, max_side=MAX_SIDE)
@example(codec="h264-420", width=1366, height=674, max_side=0)
@example(codec="h264-420", width=4096, height=2302, max_side=MAX_SIDE)
@example(codec="mjpeg-420", width=16, height=19, max_side=MAX_SIDE)
@example(codec="h264-420", width=480, height=786, max_side=MAX_SIDE)  # the two lost clips
@example(codec="h264-420", width=1366, height=720, max_side=MAX_SIDE)
def test_any_size_reaches_the_model(
    codec: str, width: int, height: int, max_side: int, tmp_path: Path
) -> None:
    cell = _size_cell(codec, width, height)
    path = write(cell, tmp_path)
    check_cell(cell, path, max_side)


def test_every_residue_mod_4_is_covered() -> None:
    """The explicit examples above cover each residue of width and height mod 4."""
    examples = [(17, 4095), (482, 788), (1367, 721), (1366, 674), (4096, 2302), (16, 19)]
    assert {w % 4 for w, _ in examples} == {0, 1, 2, 3}
    assert {h % 4 for _, h in examples} == {0, 1, 2, 3}


def test_a_cell_that_cannot_be_read_fails_alone_with_its_reason(tmp_path: Path) -> None:
    good = write(CELLS[0], tmp_path)
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(IngestError, match="truncated.mp4"):
        ingest_to_model(bad, MAX_SIDE)
    assert len(ingest_to_model(good, MAX_SIDE)) == CELLS[0].frames


# A phone's photo is stored as the sensor saw it, with an EXIF orientation saying how to turn it.
# Orientation: where the stored picture's top-left corner ends up once displayed.
EXIF_ORIENTATIONS = {1: "top-left", 3: "bottom-right", 6: "top-right", 8: "bottom-left"}


@pytest.mark.parametrize("orientation", sorted(EXIF_ORIENTATIONS))
def test_a_photo_is_turned_as_its_exif_orientation_says(orientation: int, tmp_path: Path) -> None:
    rgb = np.full((60, 100, 3), 40, np.uint8)
    rgb[:12, :20] = 255  # a bright block in the stored picture's top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"exif{orientation}.jpg"
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=95)
    (frame,) = ingest_to_model(path, MAX_SIDE)
    h, w = frame.rgb.shape[:2]
    assert (w, h) == ((60, 100) if orientation in (6, 8) else (100, 60))
    corners = {
        "top-left": frame.rgb[:8, :8],
        "top-right": frame.rgb[:8, -8:],
        "bottom-left": frame.rgb[-8:, :8],
        "bottom-right": frame.rgb[-8:, -8:],
    }
    bright = {name for name, patch in corners.items() if patch.mean() > 200}
    assert bright == {EXIF_ORIENTATIONS[orientation]}, (orientation, bright)

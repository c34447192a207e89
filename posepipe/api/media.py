"""Pictures and clips the API serves: a snapshot of any analysed moment, and an MP4 around an event.

Both read the source file again (posepipe.render) and draw the stored poses on it. A live
camera session keeps no video, so its snapshot is the skeleton alone on a dark background,
and it has no clips (MediaUnavailable with 409 says so). Clips are H.264 in MP4 when the
PyAV build has an H.264 encoder (libx264, else libopenh264), else MPEG-4 Part 2 in MP4,
which players read but browsers may not.
"""

from __future__ import annotations

import bisect
import functools
import logging
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.frames import upright
from pose.types import FramePoses, Pose
from posepipe.api.common import Refusal
from posepipe.render import SkeletonStyle, draw_skeleton, read_frame_at
from storage.db import Database
from storage.models import AnalysedFrame, EventRow, Source, SourceKind, Video
from storage.poses import nearest_frame, read_frames

log = logging.getLogger(__name__)

SNAPSHOT_JPEG_QUALITY = 90
# The backdrop of a skeleton-only snapshot (a live session keeps no frames): dark grey, so
# the default white bones and red joints stand out.
BLANK_RGB = (32, 32, 32)
# A live session whose size was never recorded is drawn at this size.
FALLBACK_WH = (640, 480)
# Padding around an event in its clip, and the longest clip made on request (a clip costs
# a decode and an encode of every frame in it: this bounds what one request can take).
CLIP_PAD_S = 2.0
CLIP_MAX_S = 30.0
# Clips are scaled down to this longer side (enough to see the skeleton, small to send).
CLIP_MAX_SIDE = 720
# A decoded frame gets the skeleton of the analysed frame nearest it if that is this close;
# the analysis samples frames (10 fps by default), so frames in between borrow a neighbour's.
CLIP_POSE_MATCH_S = 0.12
CLIP_FALLBACK_FPS = 25
H264_ENCODERS = ("libx264", "libopenh264")
FALLBACK_ENCODER = "mpeg4"
# Quality: x264's constant rate factor 23 is its default trade-off; the bitrate encoders
# get a rate that looks clean at 720p.
ENCODER_OPTIONS = {
    "libx264": {"preset": "veryfast", "crf": "23"},
    "libopenh264": {},
    "mpeg4": {},
}
BITRATE_BPS = 2_500_000


class MediaUnavailable(Refusal, LookupError):
    """There is no such picture or clip (404 or 409)."""


@dataclass(frozen=True)
class Snapshot:
    jpeg: bytes
    frame_t_s: float
    # "frame": drawn on the video's frame; "blank": the skeleton alone (live sessions).
    background: str


@dataclass(frozen=True)
class Clip:
    mp4: bytes
    codec: str
    t_from_s: float
    t_to_s: float
    frames: int


@dataclass(frozen=True)
class _Subject:
    video_id: int
    path: str
    live: bool
    resolution_wh: tuple[int, int]
    duration_s: float | None
    fps_native: float | None


def _subject(session: Session, video_id: int) -> _Subject:
    row = session.execute(
        select(Video, Source.kind).join(Source, Source.id == Video.source_id).where(Video.id == video_id)
    ).first()
    if row is None:
        raise MediaUnavailable(404, f"no video {video_id}")
    video, kind = row
    return _Subject(
        video_id=video.id,
        path=video.path,
        live=kind is SourceKind.CAMERA,
        resolution_wh=(video.width or FALLBACK_WH[0], video.height or FALLBACK_WH[1]),
        duration_s=video.duration_s,
        fps_native=video.fps_native,
    )


def _check_file(subject: _Subject) -> None:
    if not Path(subject.path).is_file():
        raise MediaUnavailable(404, f"video {subject.video_id}: its source file is no longer on the server")


def _scaled(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    height, width = rgb.shape[:2]
    if not max_side or max(width, height) <= max_side:
        return rgb
    scale = max_side / max(width, height)
    size = (max(2, int(round(width * scale))), max(2, int(round(height * scale))))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(rgb: np.ndarray, quality: int = SNAPSHOT_JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return data.tobytes()


def snapshot(db: Database, video_id: int, t_s: float, style: SkeletonStyle, max_side: int | None) -> Snapshot:
    """The analysed frame nearest `t_s` with its skeleton, as a JPEG."""
    with db.session() as session:
        subject = _subject(session, video_id)
        nearest = nearest_frame(session, video_id, t_s)
        if nearest is None:
            raise MediaUnavailable(404, f"video {video_id} has no analysed frames yet")
        seq, frame_t = nearest
        frames = read_frames(session, video_id, seq, seq + 1, subject.resolution_wh)
    poses = frames[0].poses if frames else ()
    if subject.live:
        width, height = subject.resolution_wh
        canvas = np.empty((height, width, 3), dtype=np.uint8)
        canvas[:] = BLANK_RGB
        picture, background = draw_skeleton(canvas, poses, style), "blank"
    else:
        _check_file(subject)
        picture, background = draw_skeleton(read_frame_at(subject.path, frame_t), poses, style), "frame"
    return Snapshot(encode_jpeg(_scaled(picture, max_side)), frame_t, background)


def event_key_time(row: EventRow) -> float:
    """The moment that shows an event best: its peak when the detector reports one, else its middle."""
    data = row.data or {}
    peak = data.get("t_peak_s")
    if isinstance(peak, (int, float)) and row.t_start_s <= peak <= row.t_end_s:
        return float(peak)
    return (row.t_start_s + row.t_end_s) / 2


def clip_unavailable(db: Database, event_id: int) -> str | None:
    """Why the event has no clip, or None if it has one."""
    try:
        with db.session() as session:
            _clip_subject(session, event_id)
    except MediaUnavailable as exc:
        return exc.detail
    return None


def _clip_subject(session: Session, event_id: int) -> tuple[EventRow, _Subject]:
    event = session.get(EventRow, event_id)
    if event is None:
        raise MediaUnavailable(404, f"no event {event_id}")
    if event.video_id is None:
        raise MediaUnavailable(409, f"event {event_id} belongs to no video, so there is nothing to cut")
    subject = _subject(session, event.video_id)
    if subject.live:
        raise MediaUnavailable(
            409,
            f"event {event_id} comes from a live camera session, which keeps no video: clips exist only for "
            "analysed files (its snapshot shows the skeleton alone)",
        )
    _check_file(subject)
    return event, subject


@functools.lru_cache(maxsize=1)
def clip_encoder() -> str:
    """The H.264 encoder this PyAV build has, or the MPEG-4 Part 2 fallback."""
    for name in (*H264_ENCODERS, FALLBACK_ENCODER):
        try:
            av.codec.Codec(name, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
        if name == FALLBACK_ENCODER:
            log.warning(
                "this PyAV build has no H.264 encoder; clips are MPEG-4 Part 2 (browsers may not play them)"
            )
        return name
    raise RuntimeError("this PyAV build has no H.264 or MPEG-4 encoder: clips cannot be made")


def event_clip(
    db: Database, event_id: int, style: SkeletonStyle, work_dir: Path, pad_s: float = CLIP_PAD_S
) -> Clip:
    """An MP4 of the event with `pad_s` before and after, the skeleton drawn on every frame."""
    with db.session() as session:
        event, subject = _clip_subject(session, event_id)
        t_from = max(0.0, event.t_start_s - pad_s)
        t_to = event.t_end_s + pad_s
        if subject.duration_s:
            t_to = min(t_to, subject.duration_s)
        t_to = min(t_to, t_from + CLIP_MAX_S)
        bounds = session.execute(
            select(func.min(AnalysedFrame.seq), func.max(AnalysedFrame.seq)).where(
                AnalysedFrame.video_id == subject.video_id,
                AnalysedFrame.t_s.between(t_from - CLIP_POSE_MATCH_S, t_to + CLIP_POSE_MATCH_S),
            )
        ).one()
        posed: list[FramePoses] = []
        if bounds[0] is not None:
            posed = read_frames(session, subject.video_id, bounds[0], bounds[1] + 1, subject.resolution_wh)
    work_dir.mkdir(parents=True, exist_ok=True)
    out_path = work_dir / f"clip-{event_id}-{uuid.uuid4().hex}.mp4"
    try:
        codec, count = _encode(subject, posed, t_from, t_to, style, out_path)
        return Clip(out_path.read_bytes(), codec, t_from, t_to, count)
    finally:
        out_path.unlink(missing_ok=True)


def _poses_near(posed: list[FramePoses], times: list[float], t_s: float) -> tuple[Pose, ...]:
    i = bisect.bisect_left(times, t_s)
    best = min(
        (j for j in (i - 1, i) if 0 <= j < len(times)), key=lambda j: abs(times[j] - t_s), default=None
    )
    if best is None or abs(times[best] - t_s) > CLIP_POSE_MATCH_S:
        return ()
    return posed[best].poses


def _encode(
    subject: _Subject,
    posed: list[FramePoses],
    t_from: float,
    t_to: float,
    style: SkeletonStyle,
    out_path: Path,
) -> tuple[str, int]:
    codec = clip_encoder()
    times = [f.pts_s for f in posed]
    rate = Fraction(subject.fps_native or CLIP_FALLBACK_FPS).limit_denominator(1001)
    count = 0
    with (
        av.open(subject.path) as source,
        av.open(str(out_path), "w", format="mp4", container_options={"movflags": "+faststart"}) as sink,
    ):
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        time_base, start = stream.time_base, stream.start_time or 0
        source.seek(start + int(t_from / time_base), stream=stream, backward=True, any_frame=False)
        out = None
        for frame in source.decode(stream):
            if frame.pts is None:
                continue
            pts_s = float((frame.pts - start) * time_base)
            if pts_s < t_from - 1e-3:
                continue
            if pts_s > t_to:
                break
            rgb = upright(frame.to_ndarray(format="rgb24"), int(round(frame.rotation / 90.0)) * 90)
            picture = _scaled(draw_skeleton(rgb, _poses_near(posed, times, pts_s), style), CLIP_MAX_SIDE)
            height, width = picture.shape[:2]
            if out is None:
                out = sink.add_stream(codec, rate=rate, options=ENCODER_OPTIONS[codec])
                out.width, out.height = width - width % 2, height - height % 2
                out.pix_fmt = "yuv420p"
                if codec != "libx264":
                    out.bit_rate = BITRATE_BPS
            picture = np.ascontiguousarray(picture[: out.height, : out.width])
            video_frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            video_frame.pts = count
            sink.mux(out.encode(video_frame))
            count += 1
        if out is None:
            raise MediaUnavailable(
                404, f"video {subject.video_id}: no frame between {t_from:.2f} and {t_to:.2f} s"
            )
        sink.mux(out.encode(None))
    return codec, count

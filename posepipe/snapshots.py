"""Snapshots: the analysed frame nearest a time, read again from the source file, with its skeleton."""

from __future__ import annotations

from pathlib import Path

from pipeline.source import is_photo_container
from posepipe.render import SkeletonStyle, draw_skeleton, read_frame_at, write_jpeg
from storage.db import Database
from storage.models import Video
from storage.poses import nearest_frame, read_frames


def render_snapshot(
    db: Database, video_id: int, t_s: float | None, output: Path, style: SkeletonStyle
) -> float:
    """Write the JPEG; returns the time of the frame drawn. A photo needs no time (`t_s` None)."""
    with db.session() as session:
        video = session.get(Video, video_id)
        if video is None:
            raise LookupError(f"no video {video_id}")
        if t_s is None:
            if not is_photo_container(video.container):
                raise LookupError(f"video {video_id} is a video, not a photo: say which moment with --t")
            t_s = 0.0
        nearest = nearest_frame(session, video_id, t_s)
        if nearest is None:
            raise LookupError(f"video {video_id} has no analysed frames")
        seq, frame_t = nearest
        frames = read_frames(session, video_id, seq, seq + 1, (video.width or 1, video.height or 1))
        path = video.path
    if not Path(path).is_file():
        raise LookupError(f"video {video_id}: its file {path} is no longer there")
    rgb = read_frame_at(path, frame_t)
    write_jpeg(output, draw_skeleton(rgb, frames[0].poses if frames else (), style))
    return frame_t

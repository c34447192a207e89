"""`posepipe status` and `posepipe camera list`: the views of videos and cameras (posepipe.views,
the API's too) and their text tables."""

from __future__ import annotations

from sqlalchemy import select

from posepipe.views import CameraView, VideoView, load_video_view, video_views
from storage.db import Database
from storage.models import Source, Video


def video_status(db: Database, video_id: int | None, limit: int) -> list[VideoView]:
    """One video, or the newest `limit`."""
    with db.session() as session:
        if video_id is not None:
            view = load_video_view(session, video_id)
            return [] if view is None else [view]
        rows = session.execute(
            select(Video, Source)
            .join(Source, Source.id == Video.source_id)
            .order_by(Video.id.desc())
            .limit(limit)
        )
        return video_views(session, [(video, source) for video, source in rows])


def status_lines(items: list[VideoView], detailed: bool) -> list[str]:
    if detailed:
        return [f"{key}: {'' if value is None else value}" for key, value in items[0].document().items()]
    lines = [f"{'id':>5} {'status':<8} {'progress':>8} {'frames':>12}  name"]
    for i in items:
        frames = f"{i.frames_done}/{i.frames_total if i.frames_total is not None else '?'}"
        lines.append(f"{i.id:>5} {i.status.value:<8} {i.progress * 100:>7.1f}% {frames:>12}  {i.name}")
        if i.error:
            lines.append(f"{'':>5} error: {i.error}")
    return lines


def camera_status(db: Database) -> list[CameraView]:
    from storage.cameras import list_cameras

    with db.session() as session:
        return [CameraView.from_rows(cam, st) for cam, st in list_cameras(session)]


def camera_lines(items: list[CameraView]) -> list[str]:
    lines = [
        f"{'name':<16} {'state':<13} {'in fps':>6} {'an. fps':>7} {'dropped':>8} {'reconn':>6}"
        "  url / last error"
    ]
    for i in items:
        fps_in = f"{i.fps_in:.1f}" if i.fps_in is not None else "-"
        fps_an = f"{i.fps_analyzed:.1f}" if i.fps_analyzed is not None else "-"
        dropped = sum(i.dropped.values())
        lines.append(
            f"{i.name:<16} {i.state.value:<13} {fps_in:>6} {fps_an:>7} {dropped:>8} {i.reconnects:>6}"
            f"  {i.url_masked}"
        )
        if i.last_error:
            lines.append(f"{'':<16} last error: {i.last_error}")
    return lines

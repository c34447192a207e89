"""`posepipe status`: videos with their state, progress and timings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import Video


def _as_dict(v: Video) -> dict[str, Any]:
    total = v.frames_total if v.frames_total is not None else v.frames_expected
    progress = min(1.0, v.frames_done / total) if total else (1.0 if v.status.value == "done" else 0.0)
    return {
        "video_id": v.id,
        "path": v.path,
        "sha256": v.sha256,
        "status": v.status.value,
        "error": v.error,
        "progress": round(progress, 4),
        "frames_done": v.frames_done,
        "frames_total": v.frames_total,
        "frames_expected": v.frames_expected,
        "frames_with_person": v.frames_with_person,
        "fps_target": v.fps_target,
        "duration_s": v.duration_s,
        "fps_native": v.fps_native,
        "resolution": f"{v.width}x{v.height}" if v.width else None,
        "codec": v.codec,
        "decode_errors": v.decode_errors,
        "created_at": v.created_at.isoformat() if v.created_at else None,
        "finished_at": v.finished_at.isoformat() if v.finished_at else None,
        "ingest_s": v.ingest_s,
        "ingest_wait_s": v.ingest_wait_s,
        "pose_s": round(v.pose_s, 3),
        "elapsed_s": round((v.finished_at - v.created_at).total_seconds(), 3) if v.finished_at else None,
    }


def video_status(db: Database, video_id: int | None, limit: int) -> list[dict[str, Any]]:
    with db.session() as session:
        if video_id is not None:
            video = session.get(Video, video_id)
            return [] if video is None else [_as_dict(video)]
        return [_as_dict(v) for v in session.scalars(select(Video).order_by(Video.id.desc()).limit(limit))]


def status_lines(items: list[dict[str, Any]], detailed: bool) -> list[str]:
    if detailed:
        return [f"{key}: {'' if value is None else value}" for key, value in items[0].items()]
    lines = [f"{'id':>5} {'status':<8} {'progress':>8} {'frames':>12}  path"]
    for i in items:
        frames = f"{i['frames_done']}/{i['frames_total'] if i['frames_total'] is not None else '?'}"
        lines.append(
            f"{i['video_id']:>5} {i['status']:<8} {i['progress'] * 100:>7.1f}% {frames:>12}  {i['path']}"
        )
        if i["error"]:
            lines.append(f"{'':>5} error: {i['error']}")
    return lines


def camera_status(db: Database) -> list[dict[str, Any]]:
    from storage.cameras import list_cameras

    items = []
    with db.session() as session:
        for cam, st in list_cameras(session):
            items.append(
                {
                    "name": cam.name,
                    "url": cam.url_masked,
                    "fps": cam.fps,
                    "exercise": cam.exercise,
                    "long_lie_s": cam.long_lie_s,
                    "hands": cam.hands,
                    "enabled": cam.enabled,
                    "state": st.state.value if st else "never_started",
                    "session_video_id": st.session_video_id if st else None,
                    "last_frame_at": st.last_frame_at.isoformat() if st and st.last_frame_at else None,
                    "fps_in": st.fps_in if st else None,
                    "fps_analyzed": st.fps_analyzed if st else None,
                    "frames_in": st.frames_in if st else 0,
                    "frames_queued": st.frames_queued if st else 0,
                    "dropped": st.dropped if st else {},
                    "reconnects": st.reconnects if st else 0,
                    "last_error": st.last_error if st else None,
                    "status_updated_at": st.updated_at.isoformat() if st else None,
                }
            )
    return items


def camera_lines(items: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'name':<16} {'state':<13} {'in fps':>6} {'an. fps':>7} {'dropped':>8} {'reconn':>6}"
        "  url / last error"
    ]
    for i in items:
        fps_in = f"{i['fps_in']:.1f}" if i["fps_in"] is not None else "-"
        fps_an = f"{i['fps_analyzed']:.1f}" if i["fps_analyzed"] is not None else "-"
        dropped = sum(i["dropped"].values())
        lines.append(
            f"{i['name']:<16} {i['state']:<13} {fps_in:>6} {fps_an:>7} {dropped:>8} {i['reconnects']:>6}"
            f"  {i['url']}"
        )
        if i["last_error"]:
            lines.append(f"{'':<16} last error: {i['last_error']}")
    return lines

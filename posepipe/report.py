"""What `analyze` reports: the --json document (schema in README.md) and the readable summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from analytics.events import rep_counts
from pipeline.source import is_photo_container
from posepipe.analyze import Target
from storage import events as stored_events
from storage.db import Database
from storage.models import Video, VideoStatus
from storage.poses import read_frames


def video_report(db: Database, target: Target) -> dict[str, Any]:
    """One entry of the `videos` list. Times are seconds from the start of the video."""
    if target.video_id is None:
        return {
            "video_id": None,
            "path": target.path,
            "sha256": target.sha256,
            "status": "failed",
            "error": target.error,
            "kind": None,
            "people": None,
            "duration_s": None,
            "fps_analyzed": None,
            "frames_analyzed": 0,
            "frames_with_person": 0,
            "events": [],
            "reps": {},
        }
    with db.session() as session:
        video = session.get(Video, target.video_id)
        rows = stored_events.list_events(session, video_id=target.video_id)
        if video is None:
            raise LookupError(f"video {target.video_id} vanished")
        found = [stored_events.to_event(r) for r in rows]
        done = video.status is VideoStatus.DONE
        photo = is_photo_container(video.container)
        people = None
        if photo and done:
            frames = read_frames(session, video.id, 0, 1, (video.width or 1, video.height or 1))
            people = len(frames[0].poses) if frames else 0
        return {
            "video_id": video.id,
            "path": target.path,
            "sha256": video.sha256,
            "status": "done" if done else "failed",
            "error": None if done else (video.error or f"analysis ended in state {video.status.value}"),
            "kind": "photo" if photo else "video",
            "people": people,
            "duration_s": _round(video.duration_s),
            "fps_analyzed": _fps_analyzed(video),
            "frames_analyzed": video.frames_done,
            "frames_with_person": video.frames_with_person,
            "events": [
                {
                    "type": e.type.value,
                    "t_start": round(e.t_start_s, 3),
                    "t_end": round(e.t_end_s, 3),
                    "track_id": e.track_id,
                    "confidence": round(e.confidence, 3),
                    "data": dict(e.data),
                }
                for e in found
            ],
            "reps": rep_counts(found),
        }


def _fps_analyzed(video: Video) -> float | None:
    """The analysis rate achieved: analysed frames per second of video."""
    if not video.duration_s or not video.frames_done:
        return None
    return round(video.frames_done / video.duration_s, 3)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summary_lines(reports: Sequence[dict[str, Any]], cached: Sequence[bool]) -> list[str]:
    lines = []
    for report, was_cached in zip(reports, cached, strict=True):
        head = f"{report['path']}: {report['status']}"
        if report["video_id"] is not None:
            head += f" (video {report['video_id']}{', from cache' if was_cached else ''})"
        lines.append(head)
        if report["status"] != "done":
            lines.append(f"  error: {report['error']}")
            continue
        if report["kind"] == "photo":
            lines.append(f"  photo: {_people(report['people'])} found")
            continue
        lines.append(
            f"  {report['duration_s']:.1f} s of video, {report['frames_analyzed']} frames analysed at "
            f"{report['fps_analyzed']} fps, a person in {report['frames_with_person']}"
        )
        if report["reps"]:
            reps = ", ".join(f"{name} {count}" for name, count in sorted(report["reps"].items()))
            lines.append(f"  complete repetitions: {reps}")
        kinds = Counter(e["type"] for e in report["events"])
        if kinds:
            lines.append("  events: " + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())))
        for e in report["events"]:
            if e["type"] in ("fall", "long_lie", "fall_recovered"):
                lines.append(
                    f"  {e['type']} at {e['t_start']:.2f}-{e['t_end']:.2f} s "
                    f"(track {e['track_id']}, confidence {e['confidence']:.2f})"
                )
    return lines


def _people(count: int | None) -> str:
    if not count:
        return "no person"
    return "1 person" if count == 1 else f"{count} people"

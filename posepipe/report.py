"""What `analyze` reports: the --json document (schema in README.md; its events are
posepipe.views.EventView) and the readable summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from analytics.events import EventType, rep_counts
from pipeline.source import is_photo_container
from posepipe.analyze import Target
from posepipe.views import EventView
from storage import events as stored_events
from storage.db import Database
from storage.models import Video, VideoStatus
from storage.poses import read_frames


class MediaKind(str, Enum):
    VIDEO = "video"
    PHOTO = "photo"


class VideoReport(BaseModel):
    """One entry of the `videos` list of `analyze --json`. Times are seconds from the start of the video."""

    model_config = ConfigDict(frozen=True)

    video_id: int | None = Field(description="null only for a path that could not even be read.")
    path: str
    sha256: str | None
    status: VideoStatus = Field(description="done or failed.")
    error: str | None
    kind: MediaKind | None
    people: int | None = Field(description="People found in a photo; null for a video.")
    duration_s: float | None
    fps_analyzed: float | None
    frames_analyzed: int
    frames_with_person: int
    events: list[EventView] = Field(description="In time order, as `posepipe events` and the API give them.")
    reps: dict[str, int] = Field(description="Complete repetitions per exercise over all people.")

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def video_report(db: Database, target: Target) -> VideoReport:
    if target.video_id is None:
        return VideoReport(
            video_id=None,
            path=target.path,
            sha256=target.sha256,
            status=VideoStatus.FAILED,
            error=target.error,
            kind=None,
            people=None,
            duration_s=None,
            fps_analyzed=None,
            frames_analyzed=0,
            frames_with_person=0,
            events=[],
            reps={},
        )
    with db.session() as session:
        video = session.get(Video, target.video_id)
        rows = stored_events.list_events_with_sources(session, video_id=target.video_id)
        if video is None:
            raise LookupError(f"video {target.video_id} vanished")
        found = [stored_events.to_event(row) for row, _ in rows]
        done = video.status is VideoStatus.DONE
        photo = is_photo_container(video.container)
        people = None
        if photo and done:
            frames = read_frames(session, video.id, 0, 1, (video.width or 1, video.height or 1))
            people = len(frames[0].poses) if frames else 0
        return VideoReport(
            video_id=video.id,
            path=target.path,
            sha256=video.sha256,
            status=VideoStatus.DONE if done else VideoStatus.FAILED,
            error=None if done else (video.error or f"analysis ended in state {video.status.value}"),
            kind=MediaKind.PHOTO if photo else MediaKind.VIDEO,
            people=people,
            duration_s=_round(video.duration_s),
            fps_analyzed=_fps_analyzed(video),
            frames_analyzed=video.frames_done,
            frames_with_person=video.frames_with_person,
            events=[EventView.from_rows(row, source) for row, source in rows],
            reps=rep_counts(found),
        )


def _fps_analyzed(video: Video) -> float | None:
    """The analysis rate achieved: analysed frames per second of video."""
    if not video.duration_s or not video.frames_done:
        return None
    return round(video.frames_done / video.duration_s, 3)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summary_lines(reports: Sequence[VideoReport], cached: Sequence[bool]) -> list[str]:
    lines = []
    for report, was_cached in zip(reports, cached, strict=True):
        head = f"{report.path}: {report.status.value}"
        if report.video_id is not None:
            head += f" (video {report.video_id}{', from cache' if was_cached else ''})"
        lines.append(head)
        if report.status is not VideoStatus.DONE:
            lines.append(f"  error: {report.error}")
            continue
        if report.kind is MediaKind.PHOTO:
            lines.append(f"  photo: {_people(report.people)} found")
            continue
        lines.append(
            f"  {report.duration_s or 0.0:.1f} s of video, {report.frames_analyzed} frames analysed at "
            f"{report.fps_analyzed} fps, a person in {report.frames_with_person}"
        )
        if report.reps:
            reps = ", ".join(f"{name} {count}" for name, count in sorted(report.reps.items()))
            lines.append(f"  complete repetitions: {reps}")
        kinds = Counter(e.type.value for e in report.events)
        if kinds:
            lines.append("  events: " + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())))
        for e in report.events:
            if e.type in (EventType.FALL, EventType.LONG_LIE, EventType.FALL_RECOVERED):
                lines.append(
                    f"  {e.type.value} at {e.t_start_s:.2f}-{e.t_end_s:.2f} s "
                    f"(track {e.track_id}, confidence {e.confidence:.2f})"
                )
    return lines


def _people(count: int | None) -> str:
    if not count:
        return "no person"
    return "1 person" if count == 1 else f"{count} people"

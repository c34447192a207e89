"""Cameras in the database: add, list, update, remove, and the status the ingester reports.

The camera's URL is encrypted with the SecretBox; only its masked form is ever stored in
clear, shown or logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.models import Camera, CameraState, CameraStatusRow, Source, SourceKind, utcnow
from storage.secret_box import SecretBox, mask_url

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A long-lie time past a day would never fire in a session anyone watches.
MAX_LONG_LIE_S = 86_400.0


class CameraError(ValueError):
    """A camera request that cannot be carried out (bad name, duplicate, unknown camera)."""


@dataclass(frozen=True)
class CameraConfig:
    """What the ingester needs to run a camera (the URL decrypted, in memory only)."""

    id: int
    name: str
    source_id: int
    url: str
    url_masked: str
    fps: float
    exercise: str | None
    updated_at: datetime
    pose_backend: str
    hands: bool = False  # find each person's hands (pose.hands)


def _check_backend(pose_backend: str) -> None:
    from pose.estimator import BACKENDS

    if pose_backend not in BACKENDS:
        raise CameraError(f"unknown pose backend {pose_backend!r}; choose from {', '.join(BACKENDS)}")


def _check_long_lie(long_lie_s: float | None) -> None:
    if long_lie_s is not None and not 0 < long_lie_s <= MAX_LONG_LIE_S:
        raise CameraError(f"a camera's long-lie time must be in (0, {MAX_LONG_LIE_S:.0f}] s: {long_lie_s}")


def long_lie_s(session: Session, source_id: int) -> float | None:
    """The long-lie time of the camera whose sessions are `source_id`'s, if it sets one."""
    return session.scalar(select(Camera.long_lie_s).where(Camera.source_id == source_id))


def add_camera(
    session: Session,
    box: SecretBox,
    name: str,
    url: str,
    fps: float,
    exercise: str | None,
    pose_backend: str,
    long_lie_s: float | None = None,
    hands: bool = False,
) -> Camera:
    """`pose_backend`: the backend its sessions use (the deployment's
    POSEPIPE_CAMERA_POSE_BACKEND unless the camera asks for another)."""
    _check_backend(pose_backend)
    _check_long_lie(long_lie_s)
    if not NAME_PATTERN.match(name):
        raise CameraError(f"camera name {name!r}: use letters, digits, '.', '_' or '-' (up to 64)")
    if "://" not in url:
        raise CameraError(f"camera URL {mask_url(url)!r} has no scheme (rtsp://, http://, file://, ...)")
    if fps <= 0:
        raise CameraError("a camera's analysis fps must be > 0")
    if session.scalar(select(Camera.id).where(Camera.name == name)) is not None:
        raise CameraError(f"a camera named {name!r} exists already")
    masked = mask_url(url)
    uri = f"camera:{name}"
    # A camera added again under the same name continues its history (same source).
    source = session.scalar(select(Source).where(Source.kind == SourceKind.CAMERA, Source.uri == uri))
    if source is None:
        source = Source(kind=SourceKind.CAMERA, name=name, uri=uri)
        session.add(source)
        session.flush()
    camera = Camera(
        source=source,
        name=name,
        url_masked=masked,
        url_secret=box.encrypt(url),
        fps=fps,
        exercise=exercise,
        pose_backend=pose_backend,
        long_lie_s=long_lie_s,
        hands=hands,
    )
    session.add(camera)
    session.flush()
    return camera


def remove_camera(session: Session, name: str, *, purge: bool = False) -> None:
    """Stop using the camera. Its sessions and events stay (they are history) unless `purge`."""
    camera = session.scalar(select(Camera).where(Camera.name == name))
    if camera is None:
        raise CameraError(f"no camera named {name!r}")
    if purge:
        session.execute(delete(Source).where(Source.id == camera.source_id))  # cascades to everything
    else:
        session.delete(camera)


def list_cameras(session: Session) -> list[tuple[Camera, CameraStatusRow | None]]:
    rows = session.execute(
        select(Camera, CameraStatusRow)
        .outerjoin(CameraStatusRow, CameraStatusRow.camera_id == Camera.id)
        .order_by(Camera.name)
    )
    return [(camera, status) for camera, status in rows]


def enabled_configs(session: Session, box: SecretBox) -> list[CameraConfig]:
    cameras = session.scalars(select(Camera).where(Camera.enabled.is_(True)).order_by(Camera.id))
    return [
        CameraConfig(
            id=c.id,
            name=c.name,
            source_id=c.source_id,
            url=box.decrypt(c.url_secret),
            url_masked=c.url_masked,
            fps=c.fps,
            exercise=c.exercise,
            updated_at=c.updated_at,
            pose_backend=c.pose_backend,
            hands=c.hands,
        )
        for c in cameras
    ]


@dataclass(frozen=True)
class StatusReport:
    state: CameraState
    session_video_id: int | None
    last_frame_at: datetime | None
    fps_in: float | None
    fps_analyzed: float | None
    frames_in: int
    frames_queued: int
    dropped: dict[str, int]
    reconnects: int
    last_error: str | None


def report_status(session: Session, camera_id: int, report: StatusReport) -> None:
    """Upsert the camera's status row (the camera may have been removed meanwhile: then nothing)."""
    if session.get(Camera, camera_id) is None:
        return
    row = session.get(CameraStatusRow, camera_id)
    values: dict[str, Any] = {
        "state": report.state,
        "session_video_id": report.session_video_id,
        "last_frame_at": report.last_frame_at,
        "fps_in": report.fps_in,
        "fps_analyzed": report.fps_analyzed,
        "frames_in": report.frames_in,
        "frames_queued": report.frames_queued,
        "dropped": dict(report.dropped),
        "reconnects": report.reconnects,
        "last_error": report.last_error,
        "updated_at": utcnow(),
    }
    if row is None:
        session.add(CameraStatusRow(camera_id=camera_id, **values))
    else:
        for key, value in values.items():
            setattr(row, key, value)


@dataclass(frozen=True)
class CameraUpdate:
    """Changes to a camera; None leaves a field as it is (`clear_exercise` unsets the exercise)."""

    url: str | None = None
    fps: float | None = None
    exercise: str | None = None
    clear_exercise: bool = False
    enabled: bool | None = None
    pose_backend: str | None = None
    long_lie_s: float | None = None
    clear_long_lie: bool = False
    hands: bool | None = None


def update_camera(session: Session, box: SecretBox, name: str, change: CameraUpdate) -> Camera:
    """Apply `change`; the ingester restarts the camera with it within seconds (updated_at moves)."""
    camera = session.scalar(select(Camera).where(Camera.name == name))
    if camera is None:
        raise CameraError(f"no camera named {name!r}")
    if change.url is not None:
        if "://" not in change.url:
            raise CameraError(
                f"camera URL {mask_url(change.url)!r} has no scheme (rtsp://, http://, file://, ...)"
            )
        camera.url_masked, camera.url_secret = mask_url(change.url), box.encrypt(change.url)
    if change.fps is not None:
        if change.fps <= 0:
            raise CameraError("a camera's analysis fps must be > 0")
        camera.fps = change.fps
    if change.exercise is not None or change.clear_exercise:
        camera.exercise = change.exercise
    if change.enabled is not None:
        camera.enabled = change.enabled
    if change.pose_backend is not None:
        _check_backend(change.pose_backend)
        camera.pose_backend = change.pose_backend
    if change.long_lie_s is not None or change.clear_long_lie:
        _check_long_lie(change.long_lie_s)
        camera.long_lie_s = change.long_lie_s
    if change.hands is not None:
        camera.hands = change.hands
    camera.updated_at = utcnow()
    session.flush()
    return camera

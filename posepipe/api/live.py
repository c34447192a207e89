"""A camera's live view: its latest analysed frame with skeletons and track ids drawn, and the
analytics' state at that frame (exercise and reps per person, an open fall).

Asking marks the camera's session as watched (workers.live_view), so its workers keep their
last frame in Redis for a few seconds; nobody asking costs them one EXISTS a chunk. The
picture is a refreshing image, not MJPEG: the web UI keeps its token in localStorage and an
`<img>` cannot send it, so the page fetches each picture with `Authorization: Bearer` and shows
it from a blob: URL. A long poll (`after=<seq>`) answers with the next analysed frame after the
one the page shows, when it is due: a chunk's frames arrive together and are handed out at their
own spacing, so the picture moves at the analysis rate (one chunk behind) with one request per
frame and no busy polling; a slow page skips frames (docs/benchmarks.md, "Live view").
The skeletons are the poses the worker stored for that frame, drawn by posepipe.render, as
snapshots are.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel
from redis import Redis
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from pose.types import Pose
from posepipe.api.auth import require_read
from posepipe.api.common import NOT_FOUND, MaxSide, Responses, skeleton_style
from posepipe.api.media import encode_jpeg
from posepipe.api.state import ApiState, get_api
from posepipe.render import SkeletonStyle, draw_skeleton
from posepipe.views import CameraViewState
from storage.db import Database
from storage.models import Camera, CameraStatusRow, PoseRow
from storage.poses import POSE_COLUMNS, pose_from_row
from workers import live_view
from workers.live_view import LiveView, ViewFrame

router = APIRouter(prefix="/api", tags=["cameras"], dependencies=[Depends(require_read)])

# How often a waiting request looks for a newer frame: small against the ~0.3-0.8 s between
# a camera's chunks, and one small HGET each.
POLL_S = 0.05
# The longest a request waits for a newer frame before answering 204: short enough that the
# watched mark (workers.live_view.WATCH_TTL_S) never lapses while a page keeps asking.
MAX_WAIT_S = 5.0
LIVE_JPEG_QUALITY = 80
# Track id labels: white on a dark box, sized to the picture like the skeleton.
LABEL_SCALE_FRAC = 0.0012
LABEL_RGB = (255, 255, 255)
LABEL_BOX_RGB = (24, 24, 24)

NOT_STREAMING: Responses = {409: {"description": "The camera has no running session (offline, disabled)."}}
NO_NEW_FRAME: Responses = {204: {"description": "No newer analysed frame within `wait` seconds: ask again."}}

Wait = Annotated[
    float,
    Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for a frame newer than `after` (long poll)."),
]
After = Annotated[
    int | None, Query(ge=-1, description="The seq of the frame the client shows: answer with a newer one.")
]


class TrackStateOut(BaseModel):
    track_id: int
    exercise: str | None
    reps: int
    fall_open: bool


class LiveStateOut(BaseModel):
    camera: str
    video_id: int
    seq: int
    t_s: float
    captured_at: float
    analysed_at: float
    age_s: float
    width: int
    height: int
    fall_open: bool
    tracks: list[TrackStateOut]


def _session_of(db: Database, name: str) -> int:
    with db.session() as session:
        row = session.execute(
            select(Camera.id, CameraStatusRow.session_video_id, CameraStatusRow.state)
            .outerjoin(CameraStatusRow, CameraStatusRow.camera_id == Camera.id)
            .where(Camera.name == name)
        ).first()
    if row is None:
        raise HTTPException(404, f"no camera named {name!r}")
    if row[1] is None:
        state = row[2].value if row[2] is not None else CameraViewState.NEVER_STARTED.value
        raise HTTPException(409, f"camera {name!r} has no running session ({state})")
    return int(row[1])


async def _wait_for_frame(
    redis: Redis, video_id: int, after: int | None, wait_s: float
) -> tuple[LiveView, ViewFrame] | None:
    """The frame to show after `after` once it is there and due (a chunk's frames are paced
    at their own spacing), or None when `wait_s` ran out first."""
    await run_in_threadpool(live_view.mark_watched, redis, video_id)
    deadline = time.monotonic() + wait_s
    while True:
        seq = await run_in_threadpool(live_view.latest_seq, redis, video_id)
        if seq is not None and (after is None or seq > after):
            view = await run_in_threadpool(live_view.latest, redis, video_id)
            frame = view.next_after(after) if view is not None else None
            if view is not None and frame is not None:
                early_s = view.due_at(frame) - time.time()
                if early_s > deadline - time.monotonic():
                    return None
                if early_s > 0:
                    await asyncio.sleep(early_s)
                return view, frame
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(POLL_S)


def state_out(name: str, view: LiveView, frame: ViewFrame) -> LiveStateOut:
    captured_at = view.origin + frame.t_s
    return LiveStateOut(
        camera=name,
        video_id=view.video_id,
        seq=frame.seq,
        t_s=frame.t_s,
        captured_at=round(captured_at, 3),
        analysed_at=view.analysed_at,
        age_s=round(max(0.0, time.time() - captured_at), 3),
        width=view.width,
        height=view.height,
        fall_open=view.fall_open,
        tracks=[TrackStateOut(**t.__dict__) for t in view.tracks],
    )


def frame_poses(db: Database, video_id: int, seq: int) -> list[tuple[int | None, Pose]]:
    """(track id, pose) of each person the worker stored for this frame."""
    with db.session() as session:
        rows = session.execute(
            select(PoseRow.track_id, *POSE_COLUMNS)
            .where(PoseRow.video_id == video_id, PoseRow.seq == seq)
            .order_by(PoseRow.person)
        ).all()
    return [(row.track_id, pose_from_row(row)) for row in rows]


def render_view(
    jpeg: bytes, people: list[tuple[int | None, Pose]], style: SkeletonStyle, max_side: int | None
) -> bytes:
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if max_side and max(rgb.shape[:2]) > max_side:
        scale = max_side / max(rgb.shape[:2])
        size = (max(2, round(rgb.shape[1] * scale)), max(2, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    picture = draw_skeleton(rgb, [pose for _, pose in people], style)
    for track_id, pose in people:
        if track_id is not None:
            _label(picture, pose, f"#{track_id}", style)
    return encode_jpeg(picture, LIVE_JPEG_QUALITY)


def _label(picture: np.ndarray, pose: Pose, text: str, style: SkeletonStyle) -> None:
    """The track id above the person's highest visible joint."""
    height, width = picture.shape[:2]
    seen = pose.landmarks_xyzv[:, 3] >= style.min_visibility
    if not seen.any():
        return
    xy = pose.landmarks_xyzv[seen, :2]
    top = int(np.argmin(xy[:, 1]))
    scale = max(0.4, LABEL_SCALE_FRAC * min(width, height))
    thickness = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = int(np.clip(xy[top, 0] * width - tw / 2, 0, max(0, width - tw)))
    y = int(np.clip(xy[top, 1] * height - 2 * th, th + base, height - base))
    cv2.rectangle(picture, (x - 2, y - th - 2), (x + tw + 2, y + base), LABEL_BOX_RGB, -1)
    cv2.putText(picture, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, LABEL_RGB, thickness, cv2.LINE_AA)


@router.get(
    "/cameras/{name}/live.jpg",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The picture; its state in `X-Live-State`."},
        **NO_NEW_FRAME,
        **NOT_FOUND,
        **NOT_STREAMING,
    },
    summary="The camera's latest analysed frame with skeletons and track ids",
)
async def live_picture(
    name: str,
    api: Annotated[ApiState, Depends(get_api)],
    style: Annotated[SkeletonStyle, Depends(skeleton_style)],
    after: After = None,
    wait: Wait = MAX_WAIT_S,
    max_side: MaxSide = None,
) -> Response:
    """Marks the camera as watched: while someone asks, its workers keep their latest chunk's
    frames (scaled to 640 px) for the live view; the first picture comes with the session's next
    chunk. Without `after`, the newest frame there; with it, the next analysed frame, when it is
    due (a chunk's frames are handed out at their own spacing, so asking again at once with
    `after` = `X-Frame-Seq` shows every analysed frame, one chunk behind the camera).
    `X-Live-State` holds the same JSON as `GET /api/cameras/{name}/live`."""
    video_id = await run_in_threadpool(_session_of, api.db, name)
    found = await _wait_for_frame(api.services.redis, video_id, after, wait)
    if found is None:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    view, frame = found
    people = await run_in_threadpool(frame_poses, api.db, video_id, frame.seq)
    jpeg = await run_in_threadpool(render_view, frame.jpeg, people, style, max_side)
    return Response(
        jpeg,
        media_type="image/jpeg",
        headers={
            "X-Frame-Seq": str(frame.seq),
            "X-Frame-Time-S": f"{frame.t_s:.3f}",
            "X-Live-State": state_out(name, view, frame).model_dump_json(),
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/cameras/{name}/live",
    response_model=LiveStateOut,
    responses={**NO_NEW_FRAME, **NOT_FOUND, **NOT_STREAMING},
    summary="The analytics' state at the camera's latest analysed frame",
)
async def live_state(
    name: str, api: Annotated[ApiState, Depends(get_api)], after: After = None, wait: Wait = MAX_WAIT_S
) -> Response | LiveStateOut:
    """Per tracked person: the exercise of the set in progress and its reps, and whether a
    fall is open (reported, not got up since). Marks the camera as watched, as the picture does."""
    video_id = await run_in_threadpool(_session_of, api.db, name)
    found = await _wait_for_frame(api.services.redis, video_id, after, wait)
    if found is None:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    return state_out(name, *found)

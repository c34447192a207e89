"""Video routes: upload, list, status, delete, and a video's (or camera session's) poses and snapshots."""

from __future__ import annotations

import os
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, TextIO

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import delete, func, select
from starlette.concurrency import run_in_threadpool

from analytics.events import Exercise
from pipeline.errors import IngestError
from pipeline.source import VideoFile
from pose.estimator import PoseSpec
from pose.types import parse_landmark_selection
from posepipe import analyze as analysis
from posepipe.api import media
from posepipe.api.auth import require_admin, require_read
from posepipe.api.common import (
    NOT_FOUND,
    MaxSide,
    Offset,
    RowId,
    load_video,
    skeleton_style,
)
from posepipe.api.schemas import UploadOut, VideoPage
from posepipe.api.state import ApiState, get_api
from posepipe.api.streaming import stream_text
from posepipe.api.uploads import FILE_FIELD, UploadError, receive_video
from posepipe.export import write_poses_csv, write_poses_json
from posepipe.render import SkeletonStyle
from posepipe.views import VideoView, utc, video_views
from storage.models import Source, SourceKind, Video, VideoStatus
from storage.poses import iter_poses

router = APIRouter(prefix="/api", tags=["videos"], dependencies=[Depends(require_read)])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


class ExportFormat(str, Enum):
    CSV = "csv"
    JSON = "json"


@router.get("/videos", response_model=VideoPage, summary="List videos and camera sessions, newest first")
def list_videos(
    *,
    status: VideoStatus | None = None,
    kind: Annotated[
        SourceKind | None, Query(description="`file` (uploads and analysed files) or `camera`.")
    ] = None,
    camera: Annotated[str | None, Query(description="Only this camera's sessions.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    api: Annotated[ApiState, Depends(get_api)],
) -> VideoPage:
    query = select(Video, Source).join(Source, Source.id == Video.source_id)
    if status is not None:
        query = query.where(Video.status == status)
    if kind is not None:
        query = query.where(Source.kind == kind)
    if camera is not None:
        query = query.where(Source.kind == SourceKind.CAMERA, Source.name == camera)
    with api.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.execute(query.order_by(Video.id.desc()).limit(limit).offset(offset)).all()
        items = video_views(session, [(r[0], r[1]) for r in rows])
    return VideoPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/videos/{video_id}", response_model=VideoView, responses=NOT_FOUND, summary="A video's status")
def get_video(video_id: RowId, api: Annotated[ApiState, Depends(get_api)]) -> VideoView:
    with api.db.session() as session:
        return load_video(session, video_id)


@router.post(
    "/videos",
    status_code=202,
    response_model=UploadOut,
    dependencies=[Depends(require_admin)],
    openapi_extra=UPLOAD_BODY,
    summary="Upload a video or photo and analyse it",
    responses={
        400: {"description": "Malformed or interrupted upload."},
        413: {"description": "Larger than POSEPIPE_API_MAX_UPLOAD_MB."},
        415: {"description": "Not multipart/form-data."},
        422: {"description": "Not a readable video or photo (the detail says why), or no file."},
    },
)
async def upload_video(
    request: Request,
    *,
    fps: Annotated[
        float | None, Query(ge=0, le=240, description="Analysis rate (default the setting; 0 = all).")
    ] = None,
    exercise: Annotated[
        Exercise | None, Query(description="The exercise being done (default: recognise it).")
    ] = None,
    force: Annotated[
        bool, Query(description="Analyse again even if this content was analysed before.")
    ] = False,
    api: Annotated[ApiState, Depends(get_api)],
) -> UploadOut:
    """Send the file as multipart/form-data in the `file` field: a video, or a photo (JPEG, PNG,
    WebP, BMP, TIFF, or any single picture FFmpeg reads; `photo` is true in the answer). It is
    streamed to the data dir, checked to be decodable, stored under its content hash, and
    analysed: by this process without REDIS_URL, else by the ingester service and workers. Poll
    `GET /api/videos/{id}` for progress; a photo's skeleton is then at `/snapshot?t=0` and its
    landmarks at `/poses`. Several files are several uploads, which may run at once."""
    max_bytes = int(api.settings.api_max_upload_mb * 1e6)
    try:
        received = await receive_video(request, api.incoming_dir, max_bytes)
    except UploadError as exc:
        raise HTTPException(exc.status_code, exc.detail) from exc
    try:
        await run_in_threadpool(_check_container, received.path)
    except IngestError as exc:
        received.path.unlink(missing_ok=True)
        raise HTTPException(422, f"{received.display_name}: {exc.reason}") from exc
    stored = api.uploads_dir / received.sha256
    if stored.exists():
        received.path.unlink(missing_ok=True)  # the same content was uploaded before
    else:
        os.replace(received.path, stored)
    options = analysis.AnalyzeOptions(
        fps=api.settings.analysis_fps if fps is None else fps,
        exercise=exercise.value if exercise else None,
        force=force,
    )
    target = await run_in_threadpool(api.analyses.submit, stored, received.sha256, options)
    if target.video_id is None:
        raise HTTPException(422, f"{received.display_name}: could not be registered")
    return await run_in_threadpool(_upload_result, api, target, received.display_name)


def _check_container(path: Path) -> None:
    with VideoFile(path):
        pass


def _upload_result(api: ApiState, target: analysis.Target, name: str) -> UploadOut:
    with api.db.session() as session:
        video = session.get(Video, target.video_id)
        if video is None:
            raise HTTPException(404, f"video {target.video_id} was deleted meanwhile")
        source = session.get(Source, video.source_id)
        if source is not None and source.kind is SourceKind.FILE and _is_upload(api, source.uri):
            source.name = name
    with api.db.session() as session:
        return UploadOut(action=target.action, video=load_video(session, target.video_id))  # type: ignore[arg-type]


def _is_upload(api: ApiState, path: str) -> bool:
    return Path(path).resolve().parent == api.uploads_dir.resolve()


@router.delete(
    "/videos/{video_id}",
    status_code=204,
    dependencies=[Depends(require_admin)],
    responses={**NOT_FOUND, 409: {"description": "A camera's running session."}},
    summary="Delete a video with all its data",
)
def delete_video(video_id: RowId, api: Annotated[ApiState, Depends(get_api)]) -> Response:
    """Deletes the video's frames, poses, events (and their webhook deliveries), and the
    uploaded file if no other analysis uses it. Files analysed from the server's own disk
    are never deleted. A video still being analysed stops being posed at once."""
    with api.db.session() as session:
        video = session.get(Video, video_id)
        if video is None:
            raise HTTPException(404, f"no video {video_id}")
        source = session.get(Source, video.source_id)
        assert source is not None
        if source.kind is SourceKind.CAMERA and video.status is VideoStatus.RUNNING:
            raise HTTPException(
                409, f"video {video_id} is camera {source.name!r}'s running session: stop the camera first"
            )
        path = video.path
        session.execute(delete(Video).where(Video.id == video_id))
        uploaded = source.kind is SourceKind.FILE and _is_upload(api, path)
        others = session.scalar(select(func.count()).select_from(Video).where(Video.source_id == source.id))
        if uploaded and not others:
            session.execute(delete(Source).where(Source.id == source.id))
        still_used = session.scalar(select(func.count()).select_from(Video).where(Video.path == path))
    if uploaded and not still_used:
        Path(path).unlink(missing_ok=True)
    return Response(status_code=204)


@router.get(
    "/videos/{video_id}/poses",
    responses={
        **NOT_FOUND,
        200: {
            "description": "Poses and joint angles, one row per person per analysed frame.",
            "content": {"text/csv": {}, "application/json": {}},
        },
    },
    response_class=Response,
    summary="Poses and joint angles over a time range, as CSV or JSON",
)
def video_poses(
    video_id: RowId,
    *,
    format: Annotated[ExportFormat, Query()] = ExportFormat.CSV,  # noqa: A002  the API's parameter name
    landmarks: Annotated[
        str,
        Query(
            description="all, upper_body, lower_body, hands, or names separated by commas (`left_hand` "
            "and `right_hand` among them); all includes the hands when the video was analysed with them."
        ),
    ] = "all",
    t_from: Annotated[
        float | None, Query(alias="from", description="Start, seconds from the video's start.")
    ] = None,
    t_to: Annotated[
        float | None, Query(alias="to", description="End, seconds from the video's start.")
    ] = None,
    after: Annotated[
        datetime | None, Query(description="Start as a wall-clock time (camera sessions).")
    ] = None,
    before: Annotated[
        datetime | None, Query(description="End as a wall-clock time (camera sessions).")
    ] = None,
    api: Annotated[ApiState, Depends(get_api)],
) -> StreamingResponse:
    """Columns as `posepipe poses` writes them (README). For a camera session, `after` and
    `before` pick wall-clock times (its t = 0 is the session's `started_at`)."""
    try:
        parse_landmark_selection(landmarks)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    with api.db.session() as session:
        video = session.get(Video, video_id)
        if video is None:
            raise HTTPException(404, f"no video {video_id}")
        resolution_wh = (video.width or 1, video.height or 1)
        selection = parse_landmark_selection(landmarks, PoseSpec.parse(video.pose_backend).hands)
        live = session.get(Source, video.source_id).kind is SourceKind.CAMERA  # type: ignore[union-attr]
        origin = utc(video.started_at) if live else None
    if after is not None or before is not None:
        if origin is None:
            raise HTTPException(422, f"video {video_id} is not a live session: use from/to in seconds")
        if after is not None:
            t_from = max(t_from or 0.0, (utc(after) - origin).total_seconds())
        if before is not None:
            end = (utc(before) - origin).total_seconds()
            t_to = end if t_to is None else min(t_to, end)
    writer = write_poses_csv if format is ExportFormat.CSV else write_poses_json

    def produce(out: TextIO) -> None:
        with api.db.session() as session:
            writer(out, video_id, iter_poses(session, video_id, t_from, t_to), selection, resolution_wh)

    media_type = "text/csv" if format is ExportFormat.CSV else "application/json"
    filename = f"video-{video_id}-poses.{format.value}"
    return StreamingResponse(
        stream_text(produce, "poses-export"),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/videos/{video_id}/snapshot",
    response_class=Response,
    responses={
        **NOT_FOUND,
        200: {
            "description": "JPEG; headers X-Frame-Time-S (the frame drawn) and X-Background (frame|blank).",
            "content": {"image/jpeg": {}},
        },
    },
    summary="The analysed frame nearest a time, with its skeleton",
)
def video_snapshot(
    video_id: RowId,
    t: Annotated[float, Query(ge=0, description="Seconds from the start of the video or session.")],
    *,
    max_side: MaxSide = None,
    style: Annotated[SkeletonStyle, Depends(skeleton_style)],
    api: Annotated[ApiState, Depends(get_api)],
) -> Response:
    """Default style: red joints, white bones. A camera session keeps no frames: its snapshot
    is the skeleton alone on a dark background (X-Background: blank)."""
    try:
        shot = media.snapshot(api.db, video_id, t, style, max_side)
    except media.MediaUnavailable as exc:
        raise HTTPException(exc.status_code, exc.detail) from exc
    return jpeg_response(shot)


def jpeg_response(shot: media.Snapshot) -> Response:
    return Response(
        shot.jpeg,
        media_type="image/jpeg",
        headers={
            "X-Frame-Time-S": f"{shot.frame_t_s:.3f}",
            "X-Background": shot.background,
            "Cache-Control": "private, max-age=300",
        },
    )

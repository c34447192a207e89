"""Camera routes: create, list with live status, update, delete (storage.cameras; passwords never leave)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from sqlalchemy import select

from posepipe.api.auth import require_admin, require_read
from posepipe.api.common import NOT_FOUND, Responses
from posepipe.api.schemas import CameraIn, CameraPatch
from posepipe.api.state import ApiState, get_api
from posepipe.views import CameraView
from storage import cameras
from storage.models import Camera, CameraStatusRow

router = APIRouter(prefix="/api", tags=["cameras"], dependencies=[Depends(require_read)])

CONFLICT: Responses = {409: {"description": "A camera with that name exists."}}
INVALID: Responses = {422: {"description": "Invalid name, URL or value (the detail says which)."}}


def _one(api: ApiState, name: str) -> CameraView:
    with api.db.session() as session:
        row = session.execute(
            select(Camera, CameraStatusRow)
            .outerjoin(CameraStatusRow, CameraStatusRow.camera_id == Camera.id)
            .where(Camera.name == name)
        ).first()
        if row is None:
            raise HTTPException(404, f"no camera named {name!r}")
        return CameraView.from_rows(row[0], row[1])


@router.get("/cameras", response_model=list[CameraView], summary="Cameras with their live status")
def list_cameras(api: Annotated[ApiState, Depends(get_api)]) -> list[CameraView]:
    """Status as the ingester (`posepipe ingest`, needs REDIS_URL) last reported it, every ~2 s."""
    with api.db.session() as session:
        return [CameraView.from_rows(cam, st) for cam, st in cameras.list_cameras(session)]


@router.get("/cameras/{name}", response_model=CameraView, responses=NOT_FOUND, summary="One camera")
def get_camera(name: str, api: Annotated[ApiState, Depends(get_api)]) -> CameraView:
    return _one(api, name)


@router.post(
    "/cameras",
    status_code=201,
    response_model=CameraView,
    dependencies=[Depends(require_admin)],
    responses={**CONFLICT, **INVALID},
    summary="Add a camera",
)
def create_camera(body: CameraIn, api: Annotated[ApiState, Depends(get_api)]) -> CameraView:
    """The URL is stored encrypted and returned only masked. The ingester starts it within seconds."""
    with api.db.session() as session:
        if session.scalar(select(Camera.id).where(Camera.name == body.name)) is not None:
            raise HTTPException(409, f"a camera named {body.name!r} exists already")
        try:
            camera = cameras.add_camera(
                session,
                api.secret_box(),
                body.name,
                body.url,
                body.fps,
                body.exercise.value if body.exercise else None,
                api.settings.camera_pose_backend,
                long_lie_s=body.long_lie_s,
                hands=body.hands,
            )
        except cameras.CameraError as exc:
            raise HTTPException(422, str(exc)) from exc
        camera.enabled = body.enabled
    return _one(api, body.name)


@router.patch(
    "/cameras/{name}",
    response_model=CameraView,
    dependencies=[Depends(require_admin)],
    responses={**NOT_FOUND, **INVALID},
    summary="Change a camera's URL, rate, exercise, long-lie time, hands or enabled flag",
)
def update_camera(name: str, body: CameraPatch, api: Annotated[ApiState, Depends(get_api)]) -> CameraView:
    """Fields left out stay as they are. The ingester restarts the camera with the change."""
    change = cameras.CameraUpdate(
        url=body.url,
        fps=body.fps,
        exercise=body.exercise.value if body.exercise else None,
        clear_exercise="exercise" in body.model_fields_set and body.exercise is None,
        enabled=body.enabled,
        long_lie_s=body.long_lie_s,
        clear_long_lie="long_lie_s" in body.model_fields_set and body.long_lie_s is None,
        hands=body.hands,
    )
    with api.db.session() as session:
        if session.scalar(select(Camera.id).where(Camera.name == name)) is None:
            raise HTTPException(404, f"no camera named {name!r}")
        try:
            cameras.update_camera(session, api.secret_box(), name, change)
        except cameras.CameraError as exc:
            raise HTTPException(422, str(exc)) from exc
    return _one(api, name)


@router.delete(
    "/cameras/{name}",
    status_code=204,
    dependencies=[Depends(require_admin)],
    responses=NOT_FOUND,
    summary="Remove a camera",
)
def delete_camera(
    name: str,
    *,
    purge: Annotated[bool, Query(description="Also delete its recorded sessions, poses and events.")] = False,
    api: Annotated[ApiState, Depends(get_api)],
) -> Response:
    """Its sessions and events stay (they are history) unless `purge`."""
    with api.db.session() as session:
        try:
            cameras.remove_camera(session, name, purge=purge)
        except cameras.CameraError as exc:
            raise HTTPException(404, str(exc)) from exc
    return Response(status_code=204)

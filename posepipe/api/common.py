"""Pieces several route modules share: loading a video's view, id and paging parameters, skeleton style."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Path, Query
from sqlalchemy.orm import Session

from posepipe.render import SkeletonStyle, parse_color
from posepipe.views import VideoView, load_video_view

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No such item (the detail says what)."}}

# Both databases store 64-bit integers: a larger id or offset in a URL is refused with 422
# here instead of overflowing the driver (a 500).
MAX_DB_INT = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
RowIdFilter = Annotated[int | None, Query(ge=0, le=MAX_DB_INT)]
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
MaxSide = Annotated[int | None, Query(ge=32, le=4096, description="Scale down to this longer side.")]


class Refusal(Exception):
    """A request the API must refuse: the HTTP status to answer with, and why."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def load_video(session: Session, video_id: int) -> VideoView:
    view = load_video_view(session, video_id)
    if view is None:
        raise HTTPException(404, f"no video {video_id}")
    return view


def skeleton_style(
    joint_color: Annotated[
        str, Query(description="A name (red, white, green, ...), #rrggbb or r,g,b.")
    ] = "red",
    bone_color: Annotated[str, Query(description="As joint_color.")] = "white",
    joint_radius: Annotated[
        float, Query(ge=0.001, le=0.1, description="Fraction of the image's shorter side.")
    ] = 0.008,
    bone_thickness: Annotated[
        float, Query(ge=0.001, le=0.1, description="Fraction of the shorter side.")
    ] = 0.004,
) -> SkeletonStyle:
    try:
        return SkeletonStyle(parse_color(joint_color), parse_color(bone_color), joint_radius, bone_thickness)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc

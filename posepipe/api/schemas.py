"""The API's request and response bodies (pydantic models; they are the OpenAPI schemas).

Times named `*_s` are seconds from the start of the video or camera session; `*_at` are
wall-clock ISO 8601 times in UTC. Camera URLs and webhook URLs appear only masked.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from analytics.events import EventType, Exercise
from posepipe.analyze import Action
from storage.models import DeliveryState, SourceKind, TokenScope, VideoStatus


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthOut(BaseModel):
    status: str = Field(description="`ok`, or `degraded` when the database or Redis does not answer.")
    version: str
    database: str = Field(description="`ok` or the error.")
    queue: str = Field(
        description="`embedded` (no REDIS_URL: uploads are analysed by this process) or `redis`."
    )
    redis: str = Field(description="`ok` or the error.")


class MeOut(BaseModel):
    name: str
    scope: TokenScope


class VideoOut(BaseModel):
    """A video file's analysis, or a camera's live session."""

    id: int
    name: str = Field(description="The uploaded or analysed file's name; a session's camera name.")
    kind: SourceKind
    photo: bool = Field(description="A single picture (JPEG, PNG, WebP, ...): one analysed frame at t = 0.")
    camera: str | None = Field(description="The camera of a live session.")
    status: VideoStatus
    error: str | None
    progress: float = Field(description="Analysed frames over expected frames, 0-1.")
    frames_done: int
    frames_total: int | None = Field(description="Known once the whole file is decoded.")
    frames_expected: int | None
    frames_with_person: int
    fps_target: float
    exercise: Exercise | None
    duration_s: float | None
    fps_native: float | None
    width: int | None
    height: int | None
    codec: str | None
    size_bytes: int | None
    sha256: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    event_counts: dict[str, int] = Field(description="Stored events of this video by type.")


class VideoPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[VideoOut]


class UploadOut(BaseModel):
    action: Action = Field(
        description="`ingest`: analysing it; `cached`: this content was analysed before with the same "
        "parameters; `analytics`: its poses are reused and its events recomputed; `attach`: it is being "
        "analysed already."
    )
    video: VideoOut


class CameraIn(_In):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["hall"])
    url: str = Field(
        min_length=4, max_length=2048, description="rtsp://user:password@host/path (stored encrypted)."
    )
    fps: float = Field(default=10.0, ge=0.1, le=60, description="Analysis rate.")
    exercise: Exercise | None = Field(default=None, description="The exercise done in front of it.")
    long_lie_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="Seconds a fallen person stays down before `long_lie`, for this camera; "
        "null: the deployment's POSEPIPE_LONG_LIE_S.",
    )
    hands: bool = Field(
        default=False,
        description="Find each person's hands (21 landmarks each) in its sessions; 1.5-4x the cost of "
        "posing alone (docs/multi_pose.md).",
    )
    enabled: bool = True


class CameraPatch(_In):
    url: str | None = Field(default=None, min_length=4, max_length=2048)
    fps: float | None = Field(default=None, ge=0.1, le=60)
    exercise: Exercise | None = Field(default=None, description="Send null to clear it.")
    long_lie_s: float | None = Field(
        default=None, gt=0, le=86_400, description="Send null to use the deployment's time again."
    )
    hands: bool | None = None
    enabled: bool | None = None


class CameraOut(BaseModel):
    id: int
    name: str
    url_masked: str = Field(description="The URL with its password replaced by ***.")
    fps: float
    exercise: Exercise | None
    long_lie_s: float | None = Field(description="This camera's long-lie time; null: the deployment's.")
    hands: bool = Field(description="Whether its sessions find each person's hands.")
    enabled: bool
    state: str = Field(description="online, connecting, reconnecting, offline, or never_started.")
    session_video_id: int | None = Field(description="The live session's video id (its poses and events).")
    last_frame_at: datetime | None
    fps_in: float | None
    fps_analyzed: float | None
    frames_in: int
    frames_queued: int
    dropped: dict[str, int] = Field(description="Frames not analysed, by cause.")
    reconnects: int
    last_error: str | None
    status_updated_at: datetime | None
    created_at: datetime


class EventOut(BaseModel):
    id: int
    type: EventType
    video_id: int | None
    source_id: int
    source_kind: SourceKind
    source_name: str
    camera: str | None
    track_id: int | None
    t_start_s: float
    t_end_s: float
    confidence: float
    started_at: datetime | None = Field(description="Wall-clock start (live sessions only).")
    ended_at: datetime | None
    created_at: datetime
    data: dict[str, Any] = Field(description="The detector's evidence (see docs/analytics_*.md).")
    snapshot_url: str | None = Field(description="A JPEG of the event's key moment with the skeleton.")
    clip_url: str | None = Field(description="An MP4 around the event (files only; null for live sessions).")


class EventPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[EventOut]


class EventDetail(EventOut):
    key_time_s: float = Field(description="The moment the snapshot shows.")
    video: VideoOut | None
    clip_unavailable: str | None = Field(description="Why there is no clip, when there is none.")


class EventSort(str, Enum):
    NEWEST = "-id"
    OLDEST = "id"
    START = "t_start"
    START_DESC = "-t_start"
    CONFIDENCE = "confidence"
    CONFIDENCE_DESC = "-confidence"


class WebhookIn(_In):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", examples=["pager"])
    url: str = Field(min_length=8, max_length=2048, description="http(s) URL receiving the POSTs.")
    event_types: list[EventType] = Field(
        default_factory=list, description="Event types to send; empty = every type."
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="HMAC-SHA256 signing secret; generated (and returned once) when not given.",
    )
    enabled: bool = True


class WebhookPatch(_In):
    url: str | None = Field(default=None, min_length=8, max_length=2048)
    event_types: list[EventType] | None = None
    secret: str | None = Field(default=None, min_length=16, max_length=256)
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: int
    name: str
    url_masked: str = Field(description="Password masked and query string hidden.")
    event_types: list[EventType]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    deliveries: dict[DeliveryState, int] = Field(description="Its deliveries by state.")


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret. Shown only here: store it now.")


class DeliveryOut(BaseModel):
    id: int
    webhook_id: int
    event_id: int
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DeliveryOut]


class ErrorOut(BaseModel):
    detail: str

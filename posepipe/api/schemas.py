"""The API's request and response bodies (pydantic models; they are the OpenAPI schemas).

An event, a video and a camera are posepipe.views' models, the CLI's too; this module has the
pages, requests and the API's own answers around them.

Times named `*_s` are seconds from the start of the video or camera session; `*_at` are
wall-clock ISO 8601 times in UTC. Camera URLs and webhook URLs appear only masked.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from analytics.events import EventType, Exercise
from posepipe.analyze import Action
from posepipe.views import SCHEMA_VERSION, EventView, VideoView
from storage.models import DeliveryState, TokenScope


class _Versioned(BaseModel):
    """An answer that says the version of the JSON shapes (posepipe.views.SCHEMA_VERSION)."""

    # Always sent: listed as required in the OpenAPI document although it has a default.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    schema_version: int = Field(
        default=SCHEMA_VERSION, description='The version of these JSON shapes (README.md, "JSON schema").'
    )


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthOut(_Versioned):
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


class VideoPage(_Versioned):
    total: int
    limit: int
    offset: int
    items: list[VideoView]


class UploadOut(BaseModel):
    action: Action = Field(
        description="`ingest`: analysing it; `cached`: this content was analysed before with the same "
        "parameters; `analytics`: its poses are reused and its events recomputed; `attach`: it is being "
        "analysed already."
    )
    video: VideoView


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


class EventPage(_Versioned):
    total: int
    limit: int
    offset: int
    items: list[EventView]


class EventDetail(EventView):
    key_time_s: float = Field(description="The moment the snapshot shows.")
    video: VideoView | None
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

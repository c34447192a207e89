"""The database schema as SQLAlchemy 2 typed models. Alembic migrations (storage/migrations) create it.

Poses are stored one row per person per analysed frame, landmarks as packed float32
(33 x 4 image landmarks, 33 x 3 world landmarks): about 1 KB a row. Every analysed frame
has a `frames` row, also when nobody was found, so a gap in the poses is explicit.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SourceKind(str, Enum):
    FILE = "file"
    CAMERA = "camera"


class VideoStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class CameraState(str, Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


def _enum(cls: type[Enum]) -> SAEnum:
    # Store the lowercase values as plain strings: readable in SQL, no native enum type to migrate.
    return SAEnum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Source(Base):
    """Where videos come from: a file path, or (later) a camera."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("kind", "uri", name="uq_sources_kind_uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[SourceKind] = mapped_column(_enum(SourceKind))
    name: Mapped[str] = mapped_column(String(255))
    # File path; for a camera the URL with any password masked (never the secret itself).
    uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    videos: Mapped[list[Video]] = relationship(back_populates="source")


class Video(Base):
    """One analysis of one video's content with given parameters (the cache unit)."""

    __tablename__ = "videos"
    __table_args__ = (
        Index("ix_videos_cache", "sha256", "params_key"),
        Index("ix_videos_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    # A file's path; for a live session, the camera's masked URL.
    path: Mapped[str] = mapped_column(Text)
    # Content hash and size of a file; None for a live session (no content to hash).
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Everything that changes the poses (fps, backend, frame size): equal key + equal content
    # = reusable poses.
    params_key: Mapped[str] = mapped_column(String(64))
    fps_target: Mapped[float] = mapped_column(Float)
    pose_backend: Mapped[str] = mapped_column(String(32))
    exercise: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[VideoStatus] = mapped_column(_enum(VideoStatus), default=VideoStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    # New for every (re)run: jobs and Redis keys of an older run can never touch this one.
    run_token: Mapped[str] = mapped_column(String(32))

    container: Mapped[str | None] = mapped_column(String(64))
    codec: Mapped[str | None] = mapped_column(String(32))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    rotation_deg: Mapped[int | None] = mapped_column(Integer)
    fps_native: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    frames_expected: Mapped[int | None] = mapped_column(Integer)

    frames_total: Mapped[int | None] = mapped_column(Integer)  # known once ingest has finished
    chunks_total: Mapped[int | None] = mapped_column(Integer)
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    frames_with_person: Mapped[int] = mapped_column(Integer, default=0)
    decode_errors: Mapped[int] = mapped_column(Integer, default=0)
    analytics_version: Mapped[int | None] = mapped_column(Integer)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # For a live session: the wall-clock time of t_s = 0 (frame and event times count from it).
    started_at: Mapped[datetime | None]
    ingest_finished_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    ingest_s: Mapped[float | None] = mapped_column(Float)
    ingest_wait_s: Mapped[float | None] = mapped_column(Float)
    pose_s: Mapped[float] = mapped_column(Float, default=0.0)

    source: Mapped[Source] = relationship(back_populates="videos")


class Chunk(Base):
    """A pose job's unit, sampled frames [seq_from, seq_to) of one run, once its poses are stored:
    a chunk has a row only when it is done (a chunk queued or failing is RQ's to know)."""

    __tablename__ = "chunks"

    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq_from: Mapped[int] = mapped_column(Integer)
    seq_to: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    pose_s: Mapped[float | None] = mapped_column(Float)
    worker: Mapped[str | None] = mapped_column(String(128))
    finished_at: Mapped[datetime | None]


class AnalysedFrame(Base):
    """One analysed (sampled) frame, whether or not anybody was found in it."""

    __tablename__ = "frames"

    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    t_s: Mapped[float] = mapped_column(Float)
    persons: Mapped[int] = mapped_column(Integer)


class PoseRow(Base):
    """One person in one analysed frame. (video, seq, person) is the idempotency key."""

    __tablename__ = "poses"
    __table_args__ = (
        ForeignKeyConstraint(
            ["video_id", "seq"], ["frames.video_id", "frames.seq"], ondelete="CASCADE", name="fk_poses_frame"
        ),
        Index("ix_poses_track", "video_id", "track_id", "seq"),
    )

    video_id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    person: Mapped[int] = mapped_column(Integer, primary_key=True)
    t_s: Mapped[float] = mapped_column(Float)
    track_id: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[bytes] = mapped_column(LargeBinary)
    world_landmarks: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The person's hands (pose.types.Hand: (21, 3) little-endian float32, and its score);
    # None when hands were off or none met that wrist.
    left_hand: Mapped[bytes | None] = mapped_column(LargeBinary)
    left_hand_score: Mapped[float | None] = mapped_column(Float)
    right_hand: Mapped[bytes | None] = mapped_column(LargeBinary)
    right_hand_score: Mapped[float | None] = mapped_column(Float)


class AnalyticsState(Base):
    """Where a video's analytics has got to: the next chunk, and the engine's pickled state.

    Advanced with a compare-and-set on `next_chunk` in the same transaction as the events of
    the chunk it covers, so a chunk's events are stored exactly once however often, or
    however concurrently, the analytics job runs.
    """

    __tablename__ = "analytics_state"

    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True)
    next_chunk: Mapped[int] = mapped_column(Integer, default=0)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    engine: Mapped[bytes | None] = mapped_column(LargeBinary)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_video", "video_id", "type", "t_start_s"),
        Index("ix_events_source", "source_id", "type", "t_start_s"),
        Index("ix_events_type", "type", "t_start_s"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    track_id: Mapped[int | None] = mapped_column(Integer)
    t_start_s: Mapped[float] = mapped_column(Float)
    t_end_s: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Wall-clock times for events of live streams (None for recorded files).
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Camera(Base):
    """A live source. Its URL is stored encrypted; `url_masked` is the form shown anywhere."""

    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url_masked: Mapped[str] = mapped_column(Text)
    url_secret: Mapped[bytes] = mapped_column(LargeBinary)
    fps: Mapped[float] = mapped_column(Float)
    exercise: Mapped[str | None] = mapped_column(String(32))
    # The pose backend its sessions use (pose.estimator.BACKENDS): `multi` for rooms with several people.
    pose_backend: Mapped[str] = mapped_column(String(32))
    # Seconds a fallen person stays down before long_lie, for this camera (a care-home room
    # may want a shorter time than a gym); None: the deployment's POSEPIPE_LONG_LIE_S.
    long_lie_s: Mapped[float | None] = mapped_column(Float)
    # Find each person's hands in its sessions (pose.hands).
    hands: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    source: Mapped[Source] = relationship()


class CameraStatusRow(Base):
    """What the ingester last reported about a camera (written every couple of seconds)."""

    __tablename__ = "camera_status"

    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[CameraState] = mapped_column(_enum(CameraState))
    session_video_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id", ondelete="SET NULL"))
    last_frame_at: Mapped[datetime | None]
    fps_in: Mapped[float | None] = mapped_column(Float)
    fps_analyzed: Mapped[float | None] = mapped_column(Float)
    frames_in: Mapped[int] = mapped_column(BigInteger, default=0)
    frames_queued: Mapped[int] = mapped_column(BigInteger, default=0)
    # Frames not analysed, by cause ("workers_behind", "stale", ...): a small JSON object.
    dropped: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reconnects: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TokenScope(str, Enum):
    """What an API token may do: `read` every GET; `admin` also create, change and delete."""

    READ = "read"
    ADMIN = "admin"


class ApiToken(Base):
    """An API token. Only its SHA-256 is stored; the token itself is shown once, when it is made."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[TokenScope] = mapped_column(_enum(TokenScope))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's first characters: enough to tell tokens apart in a list, far too few to use.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class DeliveryState(str, Enum):
    PENDING = "pending"  # waiting for its (next) attempt at next_attempt_at
    DELIVERING = "delivering"  # claimed by a dispatcher until claimed_until
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the last attempt


class Webhook(Base):
    """A subscription: POST every new event of `event_types` (all types when empty) to a URL.

    The URL (it may hold credentials or a token) and the signing secret are stored encrypted
    with the SecretBox; `url_masked` is the form shown anywhere.
    """

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url_masked: Mapped[str] = mapped_column(Text)
    url_secret: Mapped[bytes] = mapped_column(LargeBinary)
    signing_secret: Mapped[bytes] = mapped_column(LargeBinary)
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """The outbox: one row per (webhook, event), written in the transaction that stores the event.

    Dispatchers claim a due row with a compare-and-set on `claim_version`, so with several
    processes each attempt is made by exactly one of them; a claim whose holder died expires
    at `claimed_until` and the row is attempted again (delivery is at least once).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claim_version: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EventCursor(Base):
    """How far a long-running event consumer (the MQTT bridge) has handled events, by consumer
    name: it resumes past this id after a restart. One process at a time holds it, until
    `lease_until` (renewed as it goes; storage.event_feed)."""

    __tablename__ = "event_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

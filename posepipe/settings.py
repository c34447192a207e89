"""Settings: the one model of configuration, read from the environment when a command starts.

Environment variables use the POSEPIPE_ prefix; REDIS_URL and DATABASE_URL are also accepted
unprefixed because every deployment tool speaks them. An unknown POSEPIPE_ variable is an
error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from analytics import thresholds as th
from pipeline.payload import FrameEncoding
from workers.settings import WorkerSettings

ENV_PREFIX = "POSEPIPE_"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "posepipe"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, populate_by_name=True
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the default SQLite database lives ($XDG_DATA_HOME/posepipe).",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("POSEPIPE_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; unset means SQLite at <data_dir>/posepipe.db.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("POSEPIPE_REDIS_URL", "REDIS_URL"),
        description="Redis for the queue and frames; unset means the embedded in-process queue.",
    )
    analysis_fps: float = Field(
        default=10.0, ge=0.0, le=240.0, description="Target analysis rate; 0 = every frame."
    )
    chunk_frames: int = Field(default=32, ge=1, le=2048, description="Sampled frames per pose job.")
    max_queued_mb: float = Field(
        default=384,
        gt=0,
        le=65536,
        description="Redis memory one video's waiting frames may take (never less than two chunks).",
    )
    frame_max_side: int = Field(
        default=1280, ge=0, le=8192, description="Longer side of frames sent to pose (0 = native size)."
    )
    segment_min_s: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="Shortest part of a file one ingest job decodes: files under twice this are decoded "
        "by one ingester, longer ones in parts that workers decode in parallel (pipeline.segments).",
    )
    workers_per_segment: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Pose workers one ingester keeps busy (docs/benchmarks.md, bench.ingest): a long "
        "file gets one part per this many workers.",
    )
    frame_encoding: FrameEncoding = Field(default=FrameEncoding.YUV420, description="Pixel payload in Redis.")
    jpeg_quality: int = Field(default=90, ge=30, le=100)
    frame_ttl_s: int = Field(default=6 * 3600, ge=60, description="Safety expiry of frames nobody consumed.")
    pose_backend: str = Field(
        # BlazePose, with MoveNet where it lost the person: chosen by bench.pose_models and the eval
        # (docs/multi_pose.md): a pose on 94.8 % of the frames after the shared falls' landings
        # against 88.8 % for BlazePose alone, the same eval scores, and a cost paid only on the
        # frames where someone was lost.
        default="mediapipe+movenet",
        description="Pose backend of files and uploads: mediapipe+movenet (BlazePose, MoveNet where it "
        "lost the person), mediapipe, litert, litert+movenet, multi or movenet (pose.estimator).",
    )
    camera_pose_backend: str = Field(
        # Cameras keep BlazePose alone: on bench.live's looped fall the rescue costs ~18 % more
        # worker CPU a frame (MoveNet runs on the frames with the person on the floor), and a
        # live deployment's stream count is set by that cost (docs/multi_pose.md).
        default="mediapipe",
        description="Pose backend a camera added without one gets (`camera add --pose-backend`).",
    )
    pose_model: Literal["lite", "full", "heavy"] = Field(
        default="full",
        description="BlazePose landmark model of the mediapipe, litert and multi backends "
        "(model_complexity 0, 1, 2); lite and heavy are installed by scripts/install. Part of the "
        "analysis cache key.",
    )
    hands: bool = Field(
        default=False,
        description="Also find each person's hands (21 landmarks each, MediaPipe's hand models at each "
        "wrist; 1.5-4x the cost of posing alone, docs/multi_pose.md). Part of the analysis cache key; "
        "cameras take it too, besides their own `camera add --hands`.",
    )
    pose_min_confidence: float = Field(
        default=0.3,
        ge=0.05,
        le=0.95,
        description="MediaPipe's detection and tracking confidence. Its default 0.5 drops people in "
        "exactly the frames a fall happens in (fast motion, odd orientation); 0.3 keeps them.",
    )
    job_retries: int = Field(default=3, ge=0, le=20, description="Retries of a failed or abandoned job.")
    job_timeout_s: int = Field(default=120, ge=5, description="Longest a pose or analytics job may run.")
    worker_max_rss_mb: float = Field(
        default=3000,
        ge=0,
        le=1_048_576,
        description="A pose worker process whose resident memory passes this many MiB finishes its job "
        "and is replaced by a fresh one (0 = never); bounds memory whatever native code keeps.",
    )
    db_outage_s: float = Field(
        default=300,
        gt=0,
        le=86400,
        description="How long `analyze` waits for an unreachable database before it gives up.",
    )
    track_lost_s: float = Field(
        default=th.TRACK_LOST_AFTER_S,
        gt=0,
        le=600,
        description="A person unseen this long gets a new track id when seen again.",
    )
    long_lie_s: float = Field(
        default=th.LONG_LIE_AFTER_S,
        gt=0,
        le=3600,
        description="A fallen person still down after this long raises long_lie.",
    )
    media_dir: Path = Field(
        default=Path("../shared/media"),
        validation_alias=AliasChoices("POSEPIPE_MEDIA", "POSEPIPE_MEDIA_DIR"),
        description="Shared real clips used by the tests and benchmarks.",
    )
    live_chunk_frames: int = Field(
        default=4, ge=1, le=64, description="Frames per live pose job (few: each waits for its last frame)."
    )
    live_chunk_max_wait_s: float = Field(
        default=0.35, gt=0, le=5, description="A live chunk is queued when this old even if not full."
    )
    live_chunk_max_frames: int = Field(
        default=8,
        ge=1,
        le=64,
        description="While the camera's worker is behind, a live chunk takes up to this many frames "
        "(never fewer than live_chunk_frames): fewer, larger jobs let it catch up.",
    )
    live_max_queued_mb: float = Field(
        default=32, gt=0, le=4096, description="Redis memory one camera's waiting frames may take."
    )
    live_max_lag_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="A live chunk older than this when a worker takes it is dropped.",
    )
    live_thin_lag_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Workers this far behind a camera drop every other chunk of it, so the chunks they "
        "pose stay close enough for tracking to continue (>= live_max_lag_s: never).",
    )
    secret_key: str | None = Field(
        default=None,
        description="Fernet key encrypting camera URLs at rest; unset: <data_dir>/secret.key (made once).",
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    api_max_upload_mb: float = Field(
        default=4096,
        gt=0,
        le=1_048_576,
        description="Largest video file the API accepts in one upload, in MB (10^6 bytes); more gets 413.",
    )
    api_cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Browser origins (comma-separated, e.g. https://ops.example.com) allowed to call the API "
        "from their pages; empty = CORS off (the bundled web UI is same-origin and needs none).",
    )
    api_analysis_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Without REDIS_URL: pose worker threads the `api` process runs for uploaded videos.",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Longest a webhook receiver may take to answer one delivery."
    )
    webhook_max_attempts: int = Field(
        default=12, ge=1, le=100, description="Attempts before a webhook delivery is given up as failed."
    )
    webhook_retry_base_s: float = Field(
        default=2.0, gt=0, le=3600, description="Wait before the first retry; doubled each retry (jittered)."
    )
    webhook_retry_cap_s: float = Field(
        default=900.0, gt=0, le=86400, description="Longest wait between two attempts of one delivery."
    )
    mqtt_url: SecretStr | None = Field(
        default=None,
        description="MQTT broker `posepipe mqtt` publishes events and camera status to, e.g. "
        "mqtt://user:password@broker:1883 (mqtts:// for TLS); unset = no MQTT. Shown masked everywhere.",
    )
    mqtt_topic_prefix: str = Field(
        default="posepipe",
        pattern=r"^[A-Za-z0-9_-]{1,32}(/[A-Za-z0-9_-]{1,32}){0,3}$",
        description="First level(s) of every topic (docs/integrations.md).",
    )
    mqtt_discovery_prefix: str = Field(
        default="homeassistant",
        pattern=r"^([A-Za-z0-9_-]{1,32}(/[A-Za-z0-9_-]{1,32}){0,3})?$",
        description="Home Assistant MQTT discovery prefix; empty = no discovery messages.",
    )

    @field_validator("api_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'posepipe.db'}"

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: jobs run on an in-process queue."""
        return not self.redis_url

    def for_workers(self) -> WorkerSettings:
        """What jobs read of these settings (workers.settings)."""
        return WorkerSettings(
            frame_ttl_s=self.frame_ttl_s,
            frame_encoding=self.frame_encoding,
            jpeg_quality=self.jpeg_quality,
            job_timeout_s=self.job_timeout_s,
            job_retries=self.job_retries,
            pose_backend=self.pose_backend,
            pose_model=self.pose_model,
            hands=self.hands,
            pose_min_confidence=self.pose_min_confidence,
            track_lost_s=self.track_lost_s,
            long_lie_s=self.long_lie_s,
            chunk_frames=self.chunk_frames,
            max_queued_mb=self.max_queued_mb,
            frame_max_side=self.frame_max_side,
            workers_per_segment=self.workers_per_segment,
            segment_min_s=self.segment_min_s,
            live_thin_lag_s=self.live_thin_lag_s,
            live_max_lag_s=self.live_max_lag_s,
        )


def _known_env_names() -> set[str]:
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        else:
            names.add(f"{ENV_PREFIX}{name}".upper())
    return names


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (plus explicit overrides from command-line flags)."""
    unknown = sorted(
        key for key in os.environ if key.startswith(ENV_PREFIX) and key not in _known_env_names()
    )
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(_known_env_names()))}"
        )
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]

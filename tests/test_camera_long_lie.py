"""A camera's own long-lie time: stored with the camera, and the one its sessions analyse with."""

from __future__ import annotations

import pytest
import redis

from storage import cameras
from storage.db import Database
from storage.secret_box import SecretBox
from workers.context import WorkerContext


def test_a_cameras_long_lie_time_overrides_the_deployments(
    db: Database, make_settings, tmp_path, redis_url: str
) -> None:
    box = SecretBox.from_settings(None, tmp_path)
    with db.session() as session:
        care = cameras.add_camera(
            session, box, "room-12", "rtsp://u:p@127.0.0.1/r12", 5.0, None, "mediapipe", long_lie_s=20.0
        )
        gym = cameras.add_camera(session, box, "gym", "rtsp://127.0.0.1/gym", 5.0, "squat", "mediapipe")
        care_source, gym_source = care.source_id, gym.source_id
    settings = make_settings(long_lie_s=120.0)
    ctx = WorkerContext.create(settings.for_workers(), db, redis.Redis.from_url(redis_url))
    with db.session() as session:
        assert ctx.analytics_config(None, cameras.long_lie_s(session, care_source)).long_lie_after_s == 20.0
        assert (
            ctx.analytics_config("squat", cameras.long_lie_s(session, gym_source)).long_lie_after_s == 120.0
        )
        cameras.update_camera(session, box, "gym", cameras.CameraUpdate(long_lie_s=60.0))
        cameras.update_camera(session, box, "room-12", cameras.CameraUpdate(clear_long_lie=True))
    with db.session() as session:
        assert cameras.long_lie_s(session, gym_source) == 60.0
        assert cameras.long_lie_s(session, care_source) is None
        with pytest.raises(cameras.CameraError, match="long-lie"):
            cameras.update_camera(session, box, "gym", cameras.CameraUpdate(long_lie_s=-1.0))

"""One JSON view per entity (posepipe.views): the CLI's `--json` and the API give the same event,
video and camera documents, key for key and value for value, for the same stored rows; webhooks
and MQTT carry the same event; every document says its schema version.

The rows are written directly (a file's analysis, a camera with its status and live session,
their events), so the test poses nothing; `posepipe` and `posepipe api` read them as deployed.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from analytics.events import Event, EventType
from posepipe.mqtt_topics import camera_status_document
from posepipe.views import SCHEMA_VERSION, STALE_STATUS_S, CameraView, CameraViewState, EventView
from storage.db import Database
from storage.events import add_events
from storage.models import (
    Camera,
    CameraState,
    CameraStatusRow,
    EventRow,
    Source,
    SourceKind,
    Video,
    VideoStatus,
)
from tests.test_api import api_server, token
from tests.test_cli import clean_env, posepipe

CAMERA_PASSWORD = "Pa55-views-x7"
SESSION_ORIGIN = datetime(2026, 12, 7, 4, 21, 0, 123456, tzinfo=timezone.utc)


def store_rows(db: Database) -> dict[str, int]:
    """A finished file analysis with two events, and camera `hall`'s running session with a
    live event and an error in its status. Returns the ids."""
    with db.session() as session:
        clip = Source(kind=SourceKind.FILE, name="squats.mp4", uri="/media/squats.mp4")
        session.add(clip)
        session.flush()
        video = Video(
            source_id=clip.id,
            path="/media/squats.mp4",
            sha256="ab" * 32,
            size_bytes=123_456,
            params_key="k" * 16,
            fps_target=10.0,
            pose_backend="mediapipe",
            exercise="squat",
            status=VideoStatus.DONE,
            run_token="r" * 16,
            container="mov,mp4,m4a,3gp,3g2,mj2",
            codec="h264",
            width=640,
            height=360,
            fps_native=30.0,
            duration_s=13.84,
            frames_expected=139,
            frames_total=139,
            frames_done=139,
            frames_with_person=130,
            decode_errors=1,
            finished_at=datetime(2026, 12, 7, 4, 0, 12, 500000),  # naive UTC, as SQLite gives it back
            ingest_s=3.25,
            ingest_wait_s=0.5,
            pose_s=7.0004,
        )
        session.add(video)
        session.flush()
        add_events(
            session,
            video.id,
            clip.id,
            [
                Event(EventType.REP, 3.10004, 7.0, 1, 0.91234, {"exercise": "squat", "t_peak_s": 5.5}),
                Event(EventType.FALL, 9.0, 10.25, 2, 0.8, {"t_peak_s": 9.6}),
            ],
        )
        camera = session.scalar(select(Camera).where(Camera.name == "hall"))
        assert camera is not None
        live = Video(
            source_id=camera.source_id,
            path="camera:hall",
            params_key="c" * 16,
            fps_target=10.0,
            pose_backend="mediapipe",
            status=VideoStatus.RUNNING,
            run_token="s" * 16,
            frames_done=42,
            frames_with_person=40,
            started_at=SESSION_ORIGIN,
        )
        session.add(live)
        session.flush()
        add_events(
            session, live.id, camera.source_id, [Event(EventType.FALL, 2.5, 3.5, 1, 0.7)], SESSION_ORIGIN
        )
        session.add(
            CameraStatusRow(
                camera_id=camera.id,
                state=CameraState.RECONNECTING,
                session_video_id=live.id,
                last_frame_at=SESSION_ORIGIN + timedelta(seconds=4),
                fps_in=9.5,
                fps_analyzed=9.25,
                frames_in=400,
                frames_queued=3,
                dropped={"stale": 2, "workers_behind": 1},
                reconnects=1,
                last_error=f"connection to rtsp://admin:{CAMERA_PASSWORD}@127.0.0.1:9/cam refused",
                # Long ago, so `stale` is the same whenever it is read.
                updated_at=SESSION_ORIGIN,
            )
        )
        return {"video": video.id, "session": live.id, "camera": camera.id}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path, dict[str, int]]:
    data_dir = tmp_path_factory.mktemp("views")
    env = clean_env(data_dir)
    posepipe(env, "camera", "add", "hall", f"rtsp://admin:{CAMERA_PASSWORD}@127.0.0.1:9/cam", "--fps", "10")
    db = Database(f"sqlite:///{data_dir / 'posepipe.db'}")
    try:
        ids = store_rows(db)
    finally:
        db.engine.dispose()
    return env, data_dir, ids


def cli_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    document = json.loads(posepipe(env, *args).stdout)
    assert document["schema_version"] == SCHEMA_VERSION
    return document


def test_the_cli_and_the_api_give_the_same_documents(
    stored: tuple[dict[str, str], Path, dict[str, int]],
) -> None:
    env, data_dir, ids = stored
    cli_events = cli_json(env, "events", "--format", "json")["events"]
    cli_video = cli_json(env, "status", str(ids["video"]), "--json")["videos"]
    cli_videos = cli_json(env, "status", "--json")["videos"]
    cli_cameras = cli_json(env, "camera", "list", "--json")["cameras"]
    bearer = token(env, "views", "read")
    with api_server(env, data_dir / "api.log") as server, server.client(bearer) as api:
        answer = api.get("/api/events", params={"sort": "t_start", "limit": 500})
        assert answer.headers["x-posepipe-schema"] == str(SCHEMA_VERSION)
        page = answer.json()
        api_video = api.get(f"/api/videos/{ids['video']}").json()
        api_videos = api.get("/api/videos").json()
        cameras = api.get("/api/cameras")
        assert cameras.headers["x-posepipe-schema"] == str(SCHEMA_VERSION)
        detail = api.get(f"/api/events/{page['items'][0]['id']}").json()
        health = api.get("/api/health").json()
    assert (
        page["schema_version"] == api_videos["schema_version"] == health["schema_version"] == SCHEMA_VERSION
    )

    # Events: the same list, each the same document.
    assert len(cli_events) == 3 and page["total"] == 3
    assert cli_events == page["items"]
    by_type = {(e["source_kind"], e["type"]): e for e in cli_events}
    rep = by_type[("file", "rep")]
    assert rep["t_start_s"] == 3.1 and rep["confidence"] == 0.912 and "t_start" not in rep
    assert rep["data"] == {"exercise": "squat", "t_peak_s": 5.5}
    assert rep["snapshot_url"] == f"/api/events/{rep['id']}/snapshot" and rep["clip_url"].endswith("/clip")
    live = by_type[("camera", "fall")]
    assert live["camera"] == "hall" and live["clip_url"] is None and live["video_id"] == ids["session"]
    assert live["started_at"] == "2026-12-07T04:21:02.623456Z"
    # An event's detail is its list item with more.
    assert {k: v for k, v in detail.items() if k in page["items"][0]} == page["items"][0]

    # Videos: `posepipe status` and GET /api/videos, one video and the list.
    assert cli_video == [api_video]
    assert cli_videos == api_videos["items"]
    assert api_video["status"] == "done" and api_video["progress"] == 1.0
    assert api_video["event_counts"] == {"rep": 1, "fall": 1}
    assert api_video["elapsed_s"] is not None and api_video["pose_s"] == 7.0
    assert api_video["finished_at"] == "2026-12-07T04:00:12.500000Z"
    session = next(v for v in cli_videos if v["id"] == ids["session"])
    assert session["kind"] == "camera" and session["camera"] == "hall" and session["status"] == "running"

    # Cameras: `posepipe camera list` and GET /api/cameras.
    assert cli_cameras == cameras.json()
    (hall,) = cli_cameras
    assert (
        hall["state"] == "reconnecting"
        and hall["stale"] is True
        and hall["session_video_id"] == ids["session"]
    )
    assert hall["url_masked"] == "rtsp://admin:***@127.0.0.1:9/cam"
    assert CAMERA_PASSWORD not in json.dumps(cli_cameras) and "admin:***@" in hall["last_error"]


def test_webhooks_and_mqtt_carry_the_same_event_and_camera_views(
    stored: tuple[dict[str, str], Path, dict[str, int]],
) -> None:
    from posepipe.mqtt_topics import Topics
    from storage import webhooks

    env, data_dir, ids = stored
    db = Database(f"sqlite:///{data_dir / 'posepipe.db'}")
    try:
        with db.session() as session:
            row, source = session.execute(
                select(EventRow, Source)
                .join(Source, Source.id == EventRow.source_id)
                .where(EventRow.video_id == ids["session"])
            ).one()
            camera, status = session.execute(
                select(Camera, CameraStatusRow).join(CameraStatusRow, CameraStatusRow.camera_id == Camera.id)
            ).one()
            hook, _ = webhooks.create_webhook(session, _box(data_dir), "hook", "http://127.0.0.1:9/h", [])
            webhooks.queue_deliveries(session, [row])
        view = EventView.from_rows(row, source)
        cli_item = next(e for e in cli_json(env, "events", "--format", "json")["events"] if e["id"] == row.id)
        assert view.document() == cli_item
        # MQTT publishes exactly that document on the event's topics.
        messages = Topics("posepipe").event_messages(view.document())
        assert [m.topic for m in messages] == ["posepipe/events/fall", "posepipe/cameras/hall/events/fall"]
        assert all(json.loads(m.payload) == cli_item for m in messages)
        # A webhook's claim loads the rows the dispatcher makes the same view of.
        with db.session() as session:
            ((delivery_id, version),) = webhooks.due_candidates(
                session, datetime.now(timezone.utc) + timedelta(1)
            )
        with db.session() as session:
            claim = webhooks.try_claim(
                session, delivery_id, version, "test", 30, datetime.now(timezone.utc) + timedelta(1)
            )
        assert claim is not None and claim.webhook_id == hook.id
        assert EventView.from_rows(claim.event, claim.source).document() == cli_item
        # The retained camera status is the camera's view without its URL.
        published = camera_status_document(camera, status)
        cli_camera = cli_json(env, "camera", "list", "--json")["cameras"][0]
        assert published == {k: v for k, v in cli_camera.items() if k != "url_masked"}
    finally:
        db.engine.dispose()


def _box(data_dir: Path) -> Any:
    from storage.secret_box import SecretBox

    return SecretBox.from_settings(None, data_dir)


def test_a_camera_is_stale_once_its_status_is_old_and_every_stored_state_has_a_view() -> None:
    camera = Camera(
        id=1,
        name="door",
        url_masked="rtsp://h/x",
        fps=10.0,
        hands=False,
        enabled=True,
        created_at=SESSION_ORIGIN,
    )
    fresh = SESSION_ORIGIN + timedelta(seconds=STALE_STATUS_S - 1)
    old = SESSION_ORIGIN + timedelta(seconds=STALE_STATUS_S + 1)
    row = CameraStatusRow(
        camera_id=1,
        state=CameraState.ONLINE,
        frames_in=5,
        frames_queued=0,
        dropped={},
        reconnects=0,
        updated_at=SESSION_ORIGIN.replace(tzinfo=None),  # naive UTC, as SQLite gives it back
    )
    assert CameraView.from_rows(camera, row, fresh).stale is False
    assert CameraView.from_rows(camera, row, old).stale is True
    never = CameraView.from_rows(camera, None, fresh)
    assert never.state is CameraViewState.NEVER_STARTED and never.stale and never.dropped == {}
    assert {s.value for s in CameraState} <= {s.value for s in CameraViewState}

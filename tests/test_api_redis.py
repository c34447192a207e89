"""The API in a deployment: `posepipe api`, `ingest` and `worker` as processes on Redis and PostgreSQL.

An upload is queued for the ingester and posed by the worker; a camera added through the API
is run by the ingester against a real RTSP server, and its live fall reaches a webhook
receiver (delivered by whichever process's dispatcher claims it first, exactly once).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from tests.rtsp import rtsp_server
from tests.services import posepipe_services, wait_until
from tests.test_api import FALL_CLIP, Server, api_server, token, upload, wait_done
from tests.test_cli import clean_env
from tests.test_webhooks import receiver

SECRET = "Live-Pa55-7q"
HOOK_SECRET = "live-hook-secret-0123456789"


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, pg_url: str) -> Iterator[tuple[dict[str, str], Server, Path]]:
    env = clean_env(tmp_path / "data")
    env.update(
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": pg_url,
            "POSEPIPE_SECRET_KEY": Fernet.generate_key().decode(),
            "POSEPIPE_WEBHOOK_RETRY_BASE_S": "0.2",
        }
    )
    logs = tmp_path / "services.log"
    with posepipe_services(env, logs), api_server(env, tmp_path / "api.log") as server:
        yield env, server, logs


def test_upload_and_live_camera_through_the_api_on_redis_and_postgres(
    stack: tuple[dict[str, str], Server, Path], media_dir: Path, tmp_path: Path
) -> None:
    env, server, service_logs = stack
    admin_token = token(env, "ops", "admin")
    with server.client(admin_token) as api, receiver(HOOK_SECRET) as hook:
        created = api.post(
            "/api/webhooks",
            json={"name": "falls", "url": hook.url, "event_types": ["fall"], "secret": HOOK_SECRET},
        )
        assert created.status_code == 201
        assert api.get("/api/health").json()["queue"] == "redis"

        # An upload goes to the ingester and workers (this API process poses nothing).
        sent = upload(api, media_dir / FALL_CLIP)
        assert sent.status_code == 202 and sent.json()["action"] == "ingest"
        video = wait_done(api, sent.json()["video"]["id"])
        file_falls = api.get("/api/events", params={"video_id": video["id"], "type": "fall"}).json()["items"]
        assert file_falls
        wait_until(lambda: len(hook.delivered()) >= len(file_falls), 30, "the file's fall webhook")

        metrics = api.get("/metrics").text
        assert "posepipe_redis_up 1.0" in metrics and "posepipe_api_analysis_process_up" not in metrics
        workers = next(line for line in metrics.splitlines() if line.startswith("posepipe_workers "))
        assert float(workers.split()[1]) >= 2  # the worker and the ingester's worker
        assert 'posepipe_queue_depth{queue="posepipe:pose"}' in metrics

        # A camera added through the API is picked up by the running ingester.
        with rtsp_server({"cam": media_dir / FALL_CLIP}, user="admin", password=SECRET) as rtsp:
            url = rtsp.url("cam", user="admin", password=SECRET)
            added = api.post("/api/cameras", json={"name": "hall", "url": url, "fps": 10})
            assert added.status_code == 201 and SECRET not in added.text

            def online() -> bool:
                camera = api.get("/api/cameras/hall").json()
                return camera["state"] == "online" and camera["session_video_id"] is not None

            wait_until(online, 60, "the camera to come online")

            def live_fall() -> bool:
                return api.get("/api/events", params={"camera": "hall", "type": "fall"}).json()["total"] > 0

            wait_until(live_fall, 90, "a fall on the live camera")
            camera = api.get("/api/cameras/hall").json()
            assert camera["fps_in"] > 10 and camera["url_masked"].startswith("rtsp://admin:***@")
            session = api.get(f"/api/videos/{camera['session_video_id']}").json()
            assert (
                session["kind"] == "camera" and session["camera"] == "hall" and session["status"] == "running"
            )
            assert api.get("/api/videos", params={"camera": "hall"}).json()["total"] >= 1
            metrics = api.get("/metrics").text
            assert 'posepipe_camera_up{camera="hall"} 1.0' in metrics
            assert 'posepipe_camera_fps_in{camera="hall"}' in metrics
            assert 'posepipe_camera_inference_ms{camera="hall"}' in metrics

            fall = api.get("/api/events", params={"camera": "hall", "type": "fall"}).json()["items"][0]
            assert fall["camera"] == "hall" and fall["started_at"] and fall["clip_url"] is None
            # A live session keeps no frames: the snapshot is the skeleton alone; no clip.
            shot = api.get(fall["snapshot_url"])
            assert shot.status_code == 200 and shot.headers["x-background"] == "blank"
            clip = api.get(f"/api/events/{fall['id']}/clip")
            assert clip.status_code == 409 and "live camera" in clip.json()["detail"]
            detail = api.get(f"/api/events/{fall['id']}").json()
            assert "live camera" in detail["clip_unavailable"]
            # Poses of the fall's session by wall-clock time.
            recent = api.get(
                f"/api/videos/{fall['video_id']}/poses",
                params={"format": "json", "landmarks": "nose", "after": fall["started_at"]},
            ).json()["poses"]
            # The event's t_start_s is given to the millisecond, pose times to 0.1 ms.
            assert recent and all(p["t_s"] >= fall["t_start_s"] - 0.0005 for p in recent)
            # Deleting a camera's running session is refused; removing the camera ends it.
            assert api.delete(f"/api/videos/{session['id']}").status_code == 409

            def live_fall_delivered() -> bool:
                return any(r.body["event"]["camera"] == "hall" for r in hook.delivered())

            wait_until(live_fall_delivered, 30, "the live fall's webhook")
            assert api.delete("/api/cameras/hall").status_code == 204

        ids = [r.delivery_id for r in hook.delivered()]
        assert len(ids) == len(set(ids)) and all(r.signature_ok for r in hook.requests)

    # The camera's password is nowhere: logs of every service, or any table.
    for log in (service_logs, server.log):
        assert SECRET not in log.read_text() and admin_token not in log.read_text()
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for (row,) in conn.execute(f'SELECT row_to_json(t)::text FROM "{table}" t'):
                assert SECRET not in row and HOOK_SECRET not in row and admin_token not in row, table

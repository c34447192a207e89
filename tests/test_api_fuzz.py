"""Schemathesis against the OpenAPI document the server publishes: no request an authorised
client can make, however odd, gets a 5xx. The server holds a real analysed clip, a camera and
a webhook, and a first pass pins the path ids to them, so the item routes (snapshots, clips,
poses, deliveries) are fuzzed on real data and not only answered with 404; a second pass lets
every parameter run free, DELETE included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from tests.test_api import SHORT_CLIP, api_server, token, upload, wait_done
from tests.test_cli import clean_env

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES_PER_OPERATION = 25
CAMERA_PASSWORD = "fuzz-cam-Pa55"


def schemathesis(url: str, bearer: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(SCHEMATHESIS),
            *extra[:2],  # --config-file goes before `run`
            "run",
            f"{url}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {bearer}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            "1",  # the same requests every run: a failure here reproduces
            "--no-color",
            # The event stream never ends by design; its filters are those of /api/events,
            # fuzzed there, and tests/test_event_stream.py drives the stream itself.
            "--exclude-path",
            "/api/events/stream",
            *extra[2:],
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_no_request_gets_a_server_error(tmp_path: Path, media_dir: Path) -> None:
    env = clean_env(tmp_path / "data")
    env["POSEPIPE_SECRET_KEY"] = Fernet.generate_key().decode()
    admin = token(env, "fuzz", "admin")
    with api_server(env, tmp_path / "api.log") as server, server.client(admin) as api:
        sent = upload(api, media_dir / SHORT_CLIP, fps=5)
        assert sent.status_code == 202, sent.text
        video_id = wait_done(api, sent.json()["video"]["id"])["id"]
        events = api.get("/api/events", params={"video_id": video_id}).json()["items"]
        assert events, "the fall clip gives at least one event to fuzz the event routes with"
        camera = api.post(
            "/api/cameras",
            json={"name": "hall", "url": f"rtsp://viewer:{CAMERA_PASSWORD}@127.0.0.1:9/hall", "fps": 5},
        )
        assert camera.status_code == 201, camera.text
        hook = api.post(
            "/api/webhooks", json={"name": "hook", "url": "http://127.0.0.1:9/hook", "event_types": ["fall"]}
        )
        assert hook.status_code == 201, hook.text
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            "[parameters]\n"
            f"video_id = {video_id}\n"
            f"event_id = {events[0]['id']}\n"
            f"webhook_id = {hook.json()['id']}\n"
            'name = "hall"\n'
        )
        pinned = schemathesis(server.url, admin, "--config-file", str(config), "--exclude-method", "DELETE")
        assert pinned.returncode == 0, pinned.stdout[-6000:]
        free = schemathesis(server.url, admin)
        assert free.returncode == 0, free.stdout[-6000:]
        assert "passed" in free.stdout and "Server error" not in free.stdout
    log = server.log.read_text()
    assert "Traceback" not in log
    assert admin not in log and CAMERA_PASSWORD not in log

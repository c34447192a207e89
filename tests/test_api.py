"""The REST API as a client sees it: `posepipe api` as a real server (no Redis: it analyses uploads itself),
real clips uploaded over HTTP, a real webhook receiver. Two clips are analysed once for the module."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest
from cryptography.fernet import Fernet

from pose.types import LANDMARK_INDEX
from posepipe.api.media import H264_ENCODERS
from storage.tokens import hash_token
from tests.services import free_port, wait_until
from tests.test_cli import clean_env
from tests.test_webhooks import Receiver, receiver

FALL_CLIP = "falls/urfall_ds04_fall_while_walking.mp4"
SHORT_CLIP = "falls/urfall_ds22_fall_toward_camera.mp4"
CAMERA_SECRET = "cam-Pa55w0rd-x9"
WEBHOOK_SECRET = "hook-secret-0123456789abcdef"
UPLOAD_LIMIT_MB = 2
SERVER_START_S = 60
ANALYSIS_S = 180


def token(env: dict[str, str], name: str, scope: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "posepipe", "token", "create", name, "--scope", scope],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@dataclass
class Server:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def client(self, bearer: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


@contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[Server]:
    """`posepipe api` on a free port, until it answers its health check; stopped afterwards."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "posepipe", "api", "--port", str(port)], env=env, stdout=out, stderr=out
        )
        server = Server(f"http://127.0.0.1:{port}", log, proc)

        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"{server.url}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(healthy, SERVER_START_S, "posepipe api to answer")
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def upload(client: httpx.Client, path: Path, name: str | None = None, **params: Any) -> httpx.Response:
    with open(path, "rb") as handle:
        return client.post(
            "/api/videos", params=params, files={"file": (name or path.name, handle, "video/mp4")}
        )


def wait_done(client: httpx.Client, video_id: int) -> dict[str, Any]:
    def finished() -> bool:
        return client.get(f"/api/videos/{video_id}").json()["status"] in ("done", "failed")

    wait_until(finished, ANALYSIS_S, f"video {video_id} to be analysed", interval_s=0.5)
    video = client.get(f"/api/videos/{video_id}").json()
    assert video["status"] == "done", video
    return video


@dataclass
class Served:
    env: dict[str, str]
    server: Server
    admin: httpx.Client
    reader: httpx.Client
    tokens: dict[str, str]
    hook: Receiver
    webhook: dict[str, Any]
    fall_video: dict[str, Any]
    short_video: dict[str, Any]
    data_dir: Path
    responses: list[str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("api")
    env = clean_env(base / "data")
    env.update(
        {
            "POSEPIPE_API_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB),
            "POSEPIPE_SECRET_KEY": Fernet.generate_key().decode(),
            "POSEPIPE_WEBHOOK_RETRY_BASE_S": "0.2",
            "POSEPIPE_WEBHOOK_RETRY_CAP_S": "1",
        }
    )
    tokens = {"admin": token(env, "ops", "admin"), "read": token(env, "viewer", "read")}
    with (
        receiver(WEBHOOK_SECRET, fail_first=1) as hook,
        api_server(env, base / "api.log") as server,
        server.client(tokens["admin"]) as admin,
        server.client(tokens["read"]) as reader,
    ):
        created = admin.post(
            "/api/webhooks",
            json={
                "name": "pager",
                "url": hook.url + "?key=q-s3cr3t",
                "event_types": ["fall"],
                "secret": WEBHOOK_SECRET,
            },
        )
        assert created.status_code == 201, created.text
        first = upload(admin, media_dir / FALL_CLIP)
        assert first.status_code == 202, first.text
        second = upload(admin, media_dir / SHORT_CLIP, fps=5)
        assert second.status_code == 202, second.text
        fall_video = wait_done(admin, first.json()["video"]["id"])
        short_video = wait_done(admin, second.json()["video"]["id"])
        yield Served(
            env,
            server,
            admin,
            reader,
            tokens,
            hook,
            created.json(),
            fall_video,
            short_video,
            base / "data",
            [first.text, second.text],  # not `created`: it shows the webhook's secret, once, by design
        )


def truth(media_dir: Path, clip: str) -> dict[str, Any]:
    return json.loads((media_dir / "ground_truth.json").read_text())[clip]


def test_health_is_open_and_every_other_route_needs_a_token(served: Served) -> None:
    anonymous = served.server.client(None)
    health = anonymous.get("/api/health").json()
    assert health["status"] == "ok" and health["queue"] == "embedded"
    document = anonymous.get("/api/openapi.json").json()
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            url = path.replace("{video_id}", "1").replace("{event_id}", "1").replace("{name}", "x")
            url = url.replace("{webhook_id}", "1")
            if operation["x-scope"] == "none":
                continue
            for client in (anonymous, served.server.client("pp_not-a-real-token")):
                response = client.request(method.upper(), url)
                assert response.status_code == 401, (method, url, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
            if operation["x-scope"] == "admin":
                assert served.reader.request(method.upper(), url).status_code == 403, (method, url)
            checked += 1
    assert checked >= 20
    assert served.reader.get("/api/me").json() == {"name": "viewer", "scope": "read"}
    # A revoked token stops working at once.
    spare = token(served.env, "spare", "read")
    with served.server.client(spare) as client:
        assert client.get("/api/videos").status_code == 200
        subprocess.run(
            [sys.executable, "-m", "posepipe", "token", "revoke", "spare"],
            env=served.env,
            check=True,
            timeout=60,
        )
        assert client.get("/api/videos").status_code == 401


def test_uploads_are_analysed_like_the_cli_does(served: Served, media_dir: Path) -> None:
    video = served.fall_video
    assert video["name"] == Path(FALL_CLIP).name and video["kind"] == "file" and video["progress"] == 1.0
    assert video["frames_done"] == video["frames_total"] > 0 and video["sha256"]
    listing = served.reader.get("/api/videos").json()
    assert listing["total"] == 2 and {v["id"] for v in listing["items"]} == {
        served.fall_video["id"],
        served.short_video["id"],
    }
    # The API reads what the CLI reads: the same events from the same database.
    cli = subprocess.run(
        [sys.executable, "-m", "posepipe", "events", "--video", str(video["id"]), "--format", "json"],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    from_cli = json.loads(cli.stdout)["events"]
    from_api = served.reader.get("/api/events", params={"video_id": video["id"], "sort": "t_start"}).json()
    assert from_api["items"] == from_cli  # one event shape: the same documents, key for key
    assert video["event_counts"] == {
        t: sum(1 for e in from_cli if e["type"] == t) for t in video["event_counts"]
    }
    # The clip's labelled fall is among them.
    label = truth(media_dir, FALL_CLIP)
    falls = [e for e in from_api["items"] if e["type"] == "fall"]
    assert label["fall"] and falls
    assert any(e["t_start_s"] - 1.5 <= label["fall_start_s"] <= e["t_end_s"] + 1.5 for e in falls), falls
    # The same content again is served from the cache.
    again = upload(served.admin, media_dir / FALL_CLIP)
    assert again.status_code == 202 and again.json()["action"] == "cached"
    assert again.json()["video"]["id"] == video["id"]


def test_events_filter_sort_and_page(served: Served) -> None:
    api = served.reader
    everything = api.get("/api/events", params={"limit": 500}).json()
    items = everything["items"]
    assert everything["total"] == len(items) >= 2
    assert [e["id"] for e in items] == sorted((e["id"] for e in items), reverse=True)  # newest first
    oldest = api.get("/api/events", params={"sort": "id", "limit": 500}).json()["items"]
    assert [e["id"] for e in oldest] == [e["id"] for e in reversed(items)]
    by_conf = api.get("/api/events", params={"sort": "-confidence", "limit": 500}).json()["items"]
    assert [e["confidence"] for e in by_conf] == sorted((e["confidence"] for e in items), reverse=True)
    # Paging walks the same list.
    pages = [api.get("/api/events", params={"limit": 1, "offset": i}).json() for i in range(len(items))]
    assert [p["items"][0]["id"] for p in pages] == [e["id"] for e in items] and pages[0]["total"] == len(
        items
    )
    # Filters.
    short_id = served.short_video["id"]
    only_short = api.get("/api/events", params={"video_id": short_id}).json()["items"]
    assert only_short and {e["video_id"] for e in only_short} == {short_id}
    assert {
        e["video_id"]
        for e in api.get("/api/events", params={"source_id": only_short[0]["source_id"]}).json()["items"]
    } == {short_id}
    falls = api.get("/api/events", params={"type": "fall"}).json()["items"]
    assert falls and all(e["type"] == "fall" for e in falls)
    several = api.get("/api/events", params=[("type", "fall"), ("type", "rep")]).json()["total"]
    assert several == sum(1 for e in items if e["type"] in ("fall", "rep"))
    top = max(e["confidence"] for e in items)
    assert api.get("/api/events", params={"min_confidence": top}).json()["total"] == sum(
        1 for e in items if e["confidence"] >= top
    )
    assert api.get("/api/events", params={"min_confidence": min(1.0, top + 0.001)}).json()["total"] == 0
    event = items[0]
    window = {"video_id": event["video_id"], "from": event["t_start_s"], "to": event["t_end_s"]}
    assert event["id"] in [e["id"] for e in api.get("/api/events", params=window).json()["items"]]
    after_all = {"video_id": event["video_id"], "from": 1e6}
    assert api.get("/api/events", params=after_all).json()["total"] == 0
    assert api.get("/api/events", params={"track_id": 987654}).json()["total"] == 0
    assert api.get("/api/events", params={"camera": "no-such-camera"}).json()["total"] == 0
    future = {"after": "2999-01-01T00:00:00Z"}
    assert api.get("/api/events", params=future).json()["total"] == 0
    assert api.get("/api/events", params={"before": "2999-01-01T00:00:00+02:00"}).json()["total"] == len(
        items
    )
    assert api.get("/api/events", params={"type": "dance"}).status_code == 422
    # CSV with the same filters.
    rows = list(csv.DictReader(io.StringIO(api.get("/api/events.csv", params={"type": "fall"}).text)))
    assert sorted(int(r["id"]) for r in rows) == sorted(e["id"] for e in falls)


def red_at(image: np.ndarray, xy: tuple[float, float]) -> bool:
    h, w = image.shape[:2]
    x, y = int(xy[0] * w), int(xy[1] * h)
    r, g, b = image[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].reshape(-1, 3).mean(axis=0)
    return bool(r > 160 and g < 120 and b < 120)


def jpeg_rgb(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def visible_joint(pose: dict[str, Any]) -> tuple[float, float]:
    names = ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_knee", "right_knee")
    best = max(names, key=lambda n: pose["landmarks"][LANDMARK_INDEX[n]][3])
    x, y, _z, visibility = pose["landmarks"][LANDMARK_INDEX[best]]
    assert visibility > 0.5
    return x, y


def poses_json(api: httpx.Client, video_id: int, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/api/videos/{video_id}/poses", params={"format": "json", **params})
    assert response.status_code == 200, response.text
    return response.json()["poses"]  # type: ignore[no-any-return]


def test_event_detail_snapshot_and_clip_show_the_skeleton(served: Served) -> None:
    api = served.reader
    fall = api.get("/api/events", params={"video_id": served.fall_video["id"], "type": "fall"}).json()[
        "items"
    ][0]
    detail = api.get(f"/api/events/{fall['id']}").json()
    assert detail["data"] == fall["data"] and detail["video"]["id"] == served.fall_video["id"]
    assert fall["t_start_s"] <= detail["key_time_s"] <= fall["t_end_s"] and detail["clip_unavailable"] is None
    assert api.get("/api/events/999999").status_code == 404

    shot = api.get(detail["snapshot_url"])
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
    assert shot.headers["x-background"] == "frame"
    frame_t = float(shot.headers["x-frame-time-s"])
    pose = next(p for p in poses_json(api, fall["video_id"]) if abs(p["t_s"] - frame_t) < 1e-3)
    joint = visible_joint(pose)
    image = jpeg_rgb(shot.content)
    assert image.shape[:2] == (served.fall_video["height"], served.fall_video["width"])
    assert red_at(image, joint)
    green = jpeg_rgb(api.get(detail["snapshot_url"], params={"joint_color": "#00ff00"}).content)
    assert (
        not red_at(green, joint)
        and green[int(joint[1] * image.shape[0]), int(joint[0] * image.shape[1]), 1] > 160
    )
    thumb = jpeg_rgb(api.get(detail["snapshot_url"], params={"max_side": 160}).content)
    assert max(thumb.shape[:2]) == 160
    assert api.get(detail["snapshot_url"], params={"joint_color": "mauve-ish"}).status_code == 422
    by_time = api.get(f"/api/videos/{fall['video_id']}/snapshot", params={"t": frame_t})
    assert by_time.content == shot.content

    clip = api.get(detail["clip_url"], params={"pad_s": 1})
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
    t_from, t_to = float(clip.headers["x-clip-from-s"]), float(clip.headers["x-clip-to-s"])
    assert t_from == pytest.approx(max(0, fall["t_start_s"] - 1), abs=1e-3) and t_to > fall["t_end_s"]
    path = served.data_dir / "clip-test.mp4"
    path.write_bytes(clip.content)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and clip.headers["x-codec"] in H264_ENCODERS
        frames = [f for f in container.decode(stream)]
    fps = served.fall_video["fps_native"]
    assert len(frames) == pytest.approx((t_to - t_from) * fps, abs=2)
    # The frame of the clip at the pose's time shows the same red joint.
    index = round((frame_t - t_from) * fps)
    assert red_at(frames[index].to_ndarray(format="rgb24"), joint)


PHOTOS = ("img_businessman_fullbody.jpeg", "img_yoga_tree_pose.jpeg", "img_zidane_two_men.jpg")


def test_several_photos_uploaded_at_once_each_get_their_skeleton_and_landmarks(
    served: Served, media_dir: Path
) -> None:
    """Three real photos sent at the same time (the web UI sends a multi-file pick so): each is
    analysed, says it is a photo, and has its skeleton drawing and its landmarks CSV."""
    paths = [media_dir / "images" / name for name in PHOTOS]

    def send(path: Path) -> httpx.Response:
        with served.server.client(served.tokens["admin"]) as client:
            return upload(client, path)

    with ThreadPoolExecutor(len(paths)) as pool:
        sent = list(pool.map(send, paths))
    for path, response in zip(paths, sent, strict=True):
        assert response.status_code == 202, response.text
        assert response.json()["video"]["name"] == path.name
        video = wait_done(served.admin, response.json()["video"]["id"])
        assert video["photo"] is True and video["frames_done"] == 1, video
        original = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        shot = served.reader.get(f"/api/videos/{video['id']}/snapshot", params={"t": 0})
        assert shot.status_code == 200 and shot.headers["X-Background"] == "frame"
        image = jpeg_rgb(shot.content)
        assert image.shape == original.shape
        (pose,) = poses_json(served.reader, video["id"])
        assert pose["t_s"] == 0.0
        assert red_at(image, visible_joint(pose)), path.name
        table = served.reader.get(f"/api/videos/{video['id']}/poses", params={"format": "csv"})
        rows = list(csv.DictReader(io.StringIO(table.text)))
        assert table.headers["content-type"].startswith("text/csv") and len(rows) == 1
        assert float(rows[0]["nose_visibility"]) > 0.5
    listed = served.reader.get("/api/videos", params={"limit": 500}).json()["items"]
    assert not any(v["photo"] for v in listed if v["id"] == served.fall_video["id"])


def test_poses_as_csv_and_json_with_subsets_and_time_ranges(served: Served) -> None:
    api = served.reader
    video_id = served.fall_video["id"]
    everything = poses_json(api, video_id)
    assert len(everything) == served.fall_video["frames_with_person"]
    assert set(everything[0]["angles_deg"]) >= {"left_knee_deg", "trunk_inclination_deg"}
    t0, t1 = everything[5]["t_s"], everything[15]["t_s"]
    window = poses_json(api, video_id, **{"from": t0, "to": t1, "landmarks": "nose,left_wrist"})
    assert [p["seq"] for p in window] == [p["seq"] for p in everything if t0 <= p["t_s"] <= t1]
    assert len(window[0]["landmarks"]) == 2
    response = api.get(
        f"/api/videos/{video_id}/poses", params={"landmarks": "lower_body", "from": t0, "to": t1}
    )
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == len(window) and "left_knee_x" in rows[0] and "nose_x" not in rows[0]
    assert api.get(f"/api/videos/{video_id}/poses", params={"landmarks": "elbow_of_doom"}).status_code == 422
    assert api.get("/api/videos/999999/poses").status_code == 404
    assert (
        api.get(f"/api/videos/{video_id}/poses", params={"after": "2026-01-01T00:00:00Z"}).status_code == 422
    )


def test_bad_uploads_are_refused_and_leave_nothing(served: Served, media_dir: Path, tmp_path: Path) -> None:
    api = served.admin
    uploads = served.data_dir / "uploads"
    before = sorted(p.name for p in uploads.iterdir())
    total = api.get("/api/videos").json()["total"]
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"this is not a video at all\n" * 1000)
    refused = upload(api, junk)
    assert refused.status_code == 422 and refused.json()["detail"].startswith(
        "notes.mp4: not a readable media file"
    )
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(UPLOAD_LIMIT_MB * 1_000_000 + 200_000))
    too_big = upload(api, big)
    assert too_big.status_code == 413 and "upload limit" in too_big.json()["detail"]
    # Without Content-Length (chunked), the limit stops the stream as it passes it.
    boundary = "b0undary"

    def chunked() -> Iterator[bytes]:
        disposition = 'Content-Disposition: form-data; name="file"; filename="x.mp4"'
        yield f"--{boundary}\r\n{disposition}\r\n\r\n".encode()
        for _ in range(UPLOAD_LIMIT_MB * 4 + 2):
            yield b"\0" * 256_000
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = api.post(
        "/api/videos",
        content=chunked(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413
    assert api.post("/api/videos", content=b"raw", headers={"Content-Type": "video/mp4"}).status_code == 415
    assert api.post("/api/videos", files={"other": ("a.txt", b"x")}).status_code == 422
    assert sorted(p.name for p in uploads.iterdir()) == before
    assert not any((uploads / ".incoming").iterdir())
    assert api.get("/api/videos").json()["total"] == total
    # A name with a path in it is only a display name: the file is stored under its content hash.
    sneaky = upload(api, media_dir / SHORT_CLIP, name="../../../../tmp/evil.mp4", fps=5)
    assert sneaky.status_code == 202 and sneaky.json()["video"]["name"] == "evil.mp4"
    assert sneaky.json()["action"] == "cached" and sneaky.json()["video"]["id"] == served.short_video["id"]
    assert not Path("/tmp/evil.mp4").exists()
    stored = [p for p in uploads.iterdir() if p.is_file()]
    assert stored and all(len(p.name) == 64 and set(p.name) <= set("0123456789abcdef") for p in stored)


def test_cameras_crud_and_the_password_never_comes_back(served: Served) -> None:
    api = served.admin
    url = f"rtsp://viewer:{CAMERA_SECRET}@127.0.0.1:8554/hall"
    created = api.post("/api/cameras", json={"name": "hall", "url": url, "fps": 5, "exercise": "squat"})
    assert created.status_code == 201, created.text
    camera = created.json()
    assert (
        camera["url_masked"] == "rtsp://viewer:***@127.0.0.1:8554/hall" and camera["state"] == "never_started"
    )
    assert api.post("/api/cameras", json={"name": "hall", "url": url}).status_code == 409
    assert api.post("/api/cameras", json={"name": "bad name!", "url": url}).status_code == 422
    assert api.post("/api/cameras", json={"name": "nourl", "url": "no-scheme-here"}).status_code == 422
    listed = served.reader.get("/api/cameras").json()
    assert [c["name"] for c in listed] == ["hall"]
    changed = api.patch("/api/cameras/hall", json={"fps": 2.5, "enabled": False}).json()
    assert changed["fps"] == 2.5 and changed["enabled"] is False and changed["exercise"] == "squat"
    cleared = api.patch("/api/cameras/hall", json={"exercise": None}).json()
    assert cleared["exercise"] is None and cleared["fps"] == 2.5
    assert cleared["long_lie_s"] is None  # the deployment's time until the camera sets one
    assert api.patch("/api/cameras/hall", json={"long_lie_s": 45}).json()["long_lie_s"] == 45
    assert api.patch("/api/cameras/hall", json={"long_lie_s": 0}).status_code == 422
    assert api.patch("/api/cameras/hall", json={"long_lie_s": None}).json()["long_lie_s"] is None
    moved = api.patch("/api/cameras/hall", json={"url": url.replace("/hall", "/hall2")}).json()
    assert moved["url_masked"].endswith("/hall2") and CAMERA_SECRET not in json.dumps(moved)
    assert api.patch("/api/cameras/nope", json={"fps": 1}).status_code == 404
    responses = [created.text, json.dumps(listed), json.dumps(changed), json.dumps(cleared)]
    assert not any(CAMERA_SECRET in text for text in responses)
    assert api.delete("/api/cameras/hall").status_code == 204
    assert api.get("/api/cameras/hall").status_code == 404
    served.responses.extend(responses)


def test_webhook_delivered_signed_after_a_retry(served: Served) -> None:
    falls = served.reader.get("/api/events", params={"type": "fall"}).json()["items"]
    wait_until(lambda: len(served.hook.delivered()) >= len(falls), 30, "the fall webhooks")
    delivered = served.hook.delivered()
    assert sorted(r.body["event"]["id"] for r in delivered) == sorted(e["id"] for e in falls)
    assert all(r.signature_ok and r.event_type == "fall" and r.attempt == 2 for r in delivered)
    by_id = {e["id"]: e for e in falls}
    for r in delivered:
        sent, stored = r.body["event"], by_id[r.body["event"]["id"]]
        assert {k: sent[k] for k in ("type", "t_start_s", "t_end_s", "data", "video_id")} == {
            k: stored[k] for k in ("type", "t_start_s", "t_end_s", "data", "video_id")
        }
    hook = served.webhook
    assert hook["url_masked"].endswith("/hook?***") and hook["secret"] == WEBHOOK_SECRET
    rows = served.admin.get(f"/api/webhooks/{hook['id']}/deliveries").json()["items"]
    assert len(rows) == len(falls)
    assert all(
        r["state"] == "delivered"
        and r["attempts"] == 2
        and r["last_status_code"] == 200
        and r["delivered_at"]
        for r in rows
    )
    listed = served.admin.get("/api/webhooks").json()
    assert listed[0]["deliveries"]["delivered"] == len(falls) and "secret" not in listed[0]
    served.responses.append(json.dumps(listed))


def test_metrics_are_computed_from_the_stores(served: Served) -> None:
    text = served.reader.get("/metrics").text
    done = served.reader.get("/api/videos", params={"status": "done"}).json()["total"]
    assert f'posepipe_videos{{status="done"}} {float(done)}' in text
    assert "posepipe_database_up 1.0" in text and "posepipe_api_analysis_process_up 1.0" in text
    delivered = sum(1 for r in served.hook.delivered())
    assert f'posepipe_webhook_deliveries{{state="delivered"}} {float(delivered)}' in text
    assert "# TYPE posepipe_inference_ms gauge" in text


def test_cors_is_off_unless_origins_are_set(served: Served, tmp_path: Path) -> None:
    preflight = {"Origin": "https://ops.example.com", "Access-Control-Request-Method": "GET"}
    response = httpx.options(f"{served.server.url}/api/videos", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    env = clean_env(tmp_path / "data")
    env["POSEPIPE_API_CORS_ORIGINS"] = "https://ops.example.com, https://other.example.com"
    with api_server(env, tmp_path / "cors.log") as server, server.client(None) as client:
        allowed = client.options("/api/videos", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"
        assert "Authorization" in allowed.headers["access-control-allow-headers"]
        other = client.options("/api/videos", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_secrets_are_nowhere_in_clear(served: Served) -> None:
    secrets = [CAMERA_SECRET, WEBHOOK_SECRET, "q-s3cr3t", *served.tokens.values()]
    dump = []
    with sqlite3.connect(served.data_dir / "posepipe.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                dump.extend(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row)
    blob = "\n".join(dump)
    for secret in secrets:
        assert secret not in blob
    assert hash_token(served.tokens["admin"]) in blob  # what is stored instead
    log = served.server.log.read_text()
    for text in (log, *served.responses):
        for secret in secrets:
            assert secret not in text
    listing = subprocess.run(
        [sys.executable, "-m", "posepipe", "token", "list"],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "ops" in listing and served.tokens["admin"] not in listing


def test_deleting_a_video_deletes_its_rows_and_file(served: Served) -> None:
    api = served.admin
    video = api.get(f"/api/videos/{served.short_video['id']}").json()
    path = served.data_dir / "uploads" / video["sha256"]
    assert path.is_file()
    events = api.get("/api/events", params={"video_id": video["id"]}).json()["items"]
    assert events
    assert served.reader.delete(f"/api/videos/{video['id']}").status_code == 403
    assert api.delete(f"/api/videos/{video['id']}").status_code == 204
    assert api.get(f"/api/videos/{video['id']}").status_code == 404
    assert api.get("/api/events", params={"video_id": video["id"]}).json()["total"] == 0
    assert api.get(f"/api/events/{events[0]['id']}").status_code == 404
    assert not path.exists()
    with sqlite3.connect(served.data_dir / "posepipe.db") as conn:
        for table in ("frames", "poses", "chunks", "events", "analytics_state"):
            count = conn.execute(
                f"SELECT count(*) FROM {table} WHERE video_id = ?", (video["id"],)
            ).fetchone()[0]
            assert count == 0, table
        ids = ",".join(str(e["id"]) for e in events)
        assert (
            conn.execute(f"SELECT count(*) FROM webhook_deliveries WHERE event_id IN ({ids})").fetchone()[0]
            == 0
        )
    # The other video is untouched.
    assert api.get(f"/api/videos/{served.fall_video['id']}").json()["status"] == "done"
    assert api.delete(f"/api/videos/{video['id']}").status_code == 404


def test_an_upload_cut_off_by_a_restart_is_finished_after_it(tmp_path: Path, media_dir: Path) -> None:
    env = clean_env(tmp_path / "data")
    admin = token(env, "ops", "admin")
    first_log = tmp_path / "first.log"
    with api_server(env, first_log) as server, server.client(admin) as api:
        sent = upload(api, media_dir / "exercise/ex_squat_side_woman.mp4", fps=5)
        video_id = sent.json()["video"]["id"]
        wait_until(
            lambda: api.get(f"/api/videos/{video_id}").json()["frames_done"] > 0, 120, "posing to start"
        )
    # Stopping the API stops its analysis process at once, leaving the upload unfinished.
    pid = int(first_log.read_text().split("started the analysis process pid=")[1].split()[0])
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 15, "the analysis process to exit")
    with sqlite3.connect(tmp_path / "data" / "posepipe.db") as conn:
        (status,) = conn.execute("SELECT status FROM videos WHERE id = ?", (video_id,)).fetchone()
    assert status in ("queued", "running")
    with api_server(env, tmp_path / "second.log") as server, server.client(admin) as api:
        video = wait_done(api, video_id)
    assert video["frames_done"] == video["frames_total"] > 0

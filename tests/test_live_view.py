"""The live view (issue 19 part 1): a camera's latest analysed frame with skeletons, track ids,
exercise, reps and an open fall, kept by the workers only while someone watches.

The analytics' state is read from a real engine run over real posed clips; the Redis side on a
real Redis; the whole path (RTSP server -> `posepipe ingest` -> `posepipe worker` -> `posepipe api`
-> the web UI's Live page) in real headless Chromium.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis
from cryptography.fernet import Fernet
from playwright.sync_api import BrowserContext, Page

from analytics.config import AnalyticsConfig
from analytics.engine import AnalyticsEngine
from analytics.events import EventType, Exercise
from bench.posed import PoseCache
from pipeline import keys
from pipeline.frames import Frame
from pose.types import Pose
from posepipe.api.live import render_view
from posepipe.render import SkeletonStyle
from tests.media_gen import ffmpeg
from tests.rtsp import rtsp_server
from tests.services import posepipe_services, wait_until
from tests.test_api import api_server, token
from tests.test_cli import clean_env
from tests.test_ui import STEP_MS, browser, watch_console  # noqa: F401 (browser is a fixture)
from workers import live_view

FALL_CLIP = "falls/urfall_ds04_fall_while_walking.mp4"  # 5 s: walks, falls at ~3 s, lies from ~3.6 s
# The fall clip with its last frame held, so the person lies still for this long each loop:
# the fall is open for seconds, long enough for a page to show it.
HOLD_S = 5
SQUAT_CLIP = "exercise/ex_squat_side_woman.mp4"  # 3 complete reps
# A joint's red (posepipe.render's default) after JPEG: the clip's own frames have none.
RED_MIN = (170, 90, 90)  # r at least, g and b at most
MIN_RED_PIXELS = 20


# The page's pictures per second that show it follows the analysis (10 fps), not its chunks
# (~2.5 a second): a loaded 2-core machine may thin a few chunks (workers.live.drop_cause).
PAGE_MIN_FPS = 5
# Records the data-seq values an element takes over `ms`.
RECORD_SEQS = """({selector, ms}) => new Promise((done) => {
  const img = document.querySelector(selector);
  const seen = [];
  const observer = new MutationObserver(() => seen.push(Number(img.dataset.seq)));
  observer.observe(img, { attributes: true, attributeFilter: ["data-seq"] });
  setTimeout(() => { observer.disconnect(); done(seen); }, ms);
})"""


def red_pixels(rgb: np.ndarray) -> int:
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return int(((r >= RED_MIN[0]) & (g <= RED_MIN[1]) & (b <= RED_MIN[2])).sum())


@pytest.fixture(scope="module")
def cache() -> Iterator[PoseCache]:
    poses = PoseCache()
    try:
        yield poses
    finally:
        poses.close()


# ---------- the analytics' state, read from a real engine ----------


def test_engine_state_shows_an_open_fall_until_the_end(cache: PoseCache) -> None:
    engine = AnalyticsEngine(AnalyticsConfig())
    fall_at, open_at = None, []
    for frame in cache.poses(FALL_CLIP):
        outcome = engine.process(frame)
        if any(e.type is EventType.FALL for e in outcome.events):
            fall_at = frame.pts_s
        tracks = live_view.engine_tracks(engine)
        assert {t.track_id for t in tracks} == set(engine.tracker.live_track_ids)
        if any(t.fall_open for t in tracks):
            open_at.append(frame.pts_s)
    assert fall_at is not None
    # Open from the frame its event is reported to the end of the clip (he never gets up).
    assert open_at and open_at[0] == fall_at and len(open_at) >= 3


def test_engine_state_counts_the_reps_of_the_set_in_progress(cache: PoseCache, media_dir: Path) -> None:
    engine = AnalyticsEngine(AnalyticsConfig())
    reps_seen, rep_events = [], 0
    for frame in cache.poses(SQUAT_CLIP):
        outcome = engine.process(frame)
        rep_events += sum(e.type is EventType.REP for e in outcome.events)
        for t in live_view.engine_tracks(engine):
            if t.exercise is not None:
                assert t.exercise == Exercise.SQUAT.value and not t.fall_open
                reps_seen.append(t.reps)
    # The live count is the reps reported so far, rising once the set opens; reps are reported
    # some seconds after they end (docs/analytics.md), so the clip's last ones come at its end.
    assert reps_seen and reps_seen[-1] == rep_events
    assert reps_seen == sorted(reps_seen)
    final = rep_events + sum(e.type is EventType.REP for e in engine.finish())
    truth = json.loads((media_dir / "ground_truth.json").read_text())[SQUAT_CLIP]
    assert reps_seen[-1] <= final == truth["reps_complete"]


# ---------- Redis: watched mark, one overwritten value, TTLs ----------


@pytest.fixture
def rds(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def test_nothing_is_kept_unless_watched_and_the_view_is_replaced(rds: redis.Redis) -> None:
    assert not live_view.is_watched(rds, 7)
    live_view.mark_watched(rds, 7)
    assert live_view.is_watched(rds, 7)
    assert 0 < rds.ttl(keys.live_watched(7)) <= live_view.WATCH_TTL_S
    tracks = (live_view.TrackState(3, "squat", 4, False), live_view.TrackState(5, None, 0, True))
    rgb = np.zeros((720, 1280, 3), np.uint8)
    rgb[100:200, 100:300] = (0, 200, 0)
    for chunk in range(10):
        frames = [Frame(seq, seq / 10, rgb) for seq in range(chunk * 4, chunk * 4 + 4 - chunk % 2)]
        live_view.publish(rds, 7, 1000.0, frames, tracks)
    # One value per camera, replaced: a viewer that never reads holds nothing back, and a shorter
    # chunk leaves no frame of the one before.
    assert rds.keys(f"{keys.PREFIX}:live-view:*") == [keys.live_view(7).encode()]
    assert rds.hlen(keys.live_view(7)) == 1 + 3
    assert live_view.latest_seq(rds, 7) == 38
    view = live_view.latest(rds, 7)
    assert view is not None and [f.seq for f in view.frames] == [36, 37, 38]
    assert view.tracks == tracks and view.fall_open and (view.width, view.height) == (1280, 720)
    picture = cv2.imdecode(np.frombuffer(view.frames[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[:2] == (360, 640)  # scaled to VIEW_MAX_SIDE
    assert len(view.frames[0].jpeg) < 30_000
    assert 0 < rds.ttl(keys.live_view(7)) <= live_view.VIEW_TTL_S
    assert live_view.latest(rds, 8) is None and live_view.latest_seq(rds, 8) is None
    # What a viewer is shown next: the newest for a new viewer, then frame by frame at the
    # frames' own spacing, and the chunk's first when it fell behind.
    assert view.next_after(None) == view.frames[-1]
    assert view.next_after(36) == view.frames[1] and view.next_after(38) is None
    assert view.next_after(20) == view.frames[0]
    assert view.due_at(view.frames[2]) == pytest.approx(view.analysed_at + 0.2)


def test_render_draws_skeleton_and_track_id_on_the_live_picture(cache: PoseCache) -> None:
    frame = next(
        f for f in cache.poses(FALL_CLIP) if f.poses and f.poses[0].landmarks_xyzv[:, 3].mean() > 0.6
    )
    rgb = np.full((frame.resolution_wh[1], frame.resolution_wh[0], 3), 90, np.uint8)
    jpeg = live_view.encode_view(rgb)
    bare = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    pose: Pose = frame.poses[0]
    drawn = cv2.imdecode(
        np.frombuffer(render_view(jpeg, [(4, pose)], SkeletonStyle(), None), np.uint8), cv2.IMREAD_COLOR
    )[..., ::-1]
    assert red_pixels(bare) == 0 and red_pixels(drawn) >= MIN_RED_PIXELS
    # The label: white text pixels above the head, where the bare picture is flat grey.
    assert (drawn.min(axis=2) > 230).sum() > 20 and (bare.min(axis=2) > 230).sum() == 0


# ---------- the whole path, in Chromium ----------


def fall_then_lie(src: Path, dst: Path) -> Path:
    """The fall clip with its last frame held HOLD_S seconds (H.264, a keyframe each second, so
    the RTSP server passes it through)."""
    ffmpeg(
        "-i", str(src), "-vf", f"tpad=stop_mode=clone:stop_duration={HOLD_S}", "-an",
        "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p", str(dst),
    )  # fmt: skip
    return dst


def picture(page: Page, selector: str) -> tuple[int, np.ndarray]:
    """The tile's shown frame seq and its pixels (an element screenshot, as the page shows it)."""
    img = page.locator(selector)
    seq = int(img.get_attribute("data-seq") or "-1")
    png = img.screenshot()
    return seq, cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def test_live_page_shows_the_camera_with_skeleton_track_and_fall_banner(
    browser: BrowserContext,  # noqa: F811
    media_dir: Path,
    tmp_path: Path,
    redis_url: str,
    pg_url: str,
) -> None:
    clip = fall_then_lie(media_dir / FALL_CLIP, tmp_path / "fall_then_lie.mp4")
    env = clean_env(tmp_path / "data")
    env.update(
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": pg_url,
            "POSEPIPE_SECRET_KEY": Fernet.generate_key().decode(),
        }
    )
    viewer = token(env, "viewer", "read")
    admin = token(env, "ops", "admin")
    rds = redis.Redis.from_url(redis_url)
    with (
        rtsp_server({"cam": clip}) as rtsp,
        posepipe_services(env, tmp_path / "services.log"),
        api_server(env, tmp_path / "api.log") as server,
        server.client(admin) as api,
    ):
        created = api.post("/api/cameras", json={"name": "hall", "url": rtsp.url("cam"), "fps": 10})
        assert created.status_code == 201, created.text
        # A second camera that never streams: its tile says so, and asks for no picture.
        broken = api.post("/api/cameras", json={"name": "door", "url": rtsp.url("nope"), "fps": 10})
        assert broken.status_code == 201, broken.text

        def session() -> int | None:
            return api.get("/api/cameras/hall").json()["session_video_id"]  # type: ignore[no-any-return]

        wait_until(lambda: session() is not None, 60, "the camera's session")
        video_id = session()
        assert video_id is not None
        frames_done = lambda: api.get(f"/api/videos/{video_id}").json()["frames_done"]  # noqa: E731
        wait_until(lambda: frames_done() >= 30, 90, "live frames to be analysed")
        # Nobody watches: the workers keep no picture.
        assert not rds.exists(keys.live_view(video_id)) and not rds.exists(keys.live_watched(video_id))

        # The API refuses without a token, and answers a reader.
        assert httpx.get(f"{server.url}/api/cameras/hall/live.jpg").status_code == 401
        with server.client(viewer) as reader:
            assert reader.get("/api/cameras/nope/live.jpg").status_code == 404
            # A camera that never connected has a session but no frames: nothing to show.
            assert reader.get("/api/cameras/door/live.jpg", params={"wait": 0.2}).status_code == 204
            first = reader.get("/api/cameras/hall/live", params={"wait": 5})
            assert first.status_code == 200, first.text
            seq = first.json()["seq"]
            newer = reader.get("/api/cameras/hall/live", params={"after": seq, "wait": 5})
            assert newer.status_code == 200 and newer.json()["seq"] > seq
            assert (
                reader.get("/api/cameras/hall/live", params={"after": 10**9, "wait": 0.2}).status_code == 204
            )

        page = browser.new_page()
        page.set_default_timeout(STEP_MS)
        problems = watch_console(page)
        page.goto(server.url + "/")
        page.wait_for_selector("#token-input")
        page.fill("#token-input", viewer)
        page.click("#token-save")
        page.wait_for_selector("#who >> text=viewer (read)")
        page.click("[data-nav=live]")
        img = ".live-tile[data-camera=hall] img.live-img[data-seq]"
        page.wait_for_selector(img)
        seq0, pixels0 = picture(page, img)

        # The picture follows the analysis: newer frames, and (once the person moves; the clip
        # holds its last frame HOLD_S seconds) different pixels.
        shots = [(seq0, pixels0)]

        def moved() -> bool:
            return any(np.abs(p.astype(int) - pixels0.astype(int)).mean() > 2 for _, p in shots[1:])

        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (moved() and len(shots) >= 6):
            page.wait_for_selector(f"{img}:not([data-seq='{shots[-1][0]}'])")
            shots.append(picture(page, img))
        seqs = [s for s, _ in shots]
        assert moved() and len(set(seqs)) == len(seqs) and seqs == sorted(seqs), seqs
        assert max(red_pixels(p) for _, p in shots) >= MIN_RED_PIXELS
        source = cv2.VideoCapture(str(clip))
        ok, raw = source.read()
        source.release()
        assert ok and red_pixels(raw[..., ::-1]) == 0  # the red is the skeleton's, not the scene's
        page.wait_for_selector(".live-tile[data-camera=hall] .live-people li[data-track]")
        assert page.locator(".live-tile").count() == 2
        page.wait_for_selector(".live-tile[data-camera=door] .live-note >> text=Not streaming")
        assert page.locator(".live-tile[data-camera=door] img[data-seq]").count() == 0
        # Every analysed frame is shown, a chunk's frames at their own spacing (10 fps analysed).
        shown = page.evaluate(RECORD_SEQS, {"selector": img, "ms": 3000})
        print("frames shown in 3 s:", len(shown), shown)
        steps = np.diff(shown)
        assert len(shown) >= 3 * PAGE_MIN_FPS and (steps > 0).all() and np.median(steps) == 1, shown

        # The fall: a red banner while it is open (the person lies still for HOLD_S seconds).
        page.wait_for_selector(".live-tile.fall[data-camera=hall] .live-banner:not([hidden])", timeout=60_000)
        banner = page.locator(".live-tile[data-camera=hall] .live-banner").inner_text()
        assert "FALL" in banner and "#" in banner
        page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
        assert rds.exists(keys.live_watched(video_id))

        # The page closed: within the marks' TTLs the workers stop keeping pictures.
        page.close()
        wait_until(
            lambda: not rds.exists(keys.live_view(video_id)),
            live_view.WATCH_TTL_S + live_view.VIEW_TTL_S + 5,
            "the live view to lapse once nobody watches",
        )
        assert not problems, problems
    rds.close()
    print(f"screenshots in {tmp_path}")

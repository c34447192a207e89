"""The web UI in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser
download): give a token, upload a shared clip, watch it finish, see its events, timeline, snapshot
and clip, download its CSV, browse events and cameras. The page runs under its real CSP, and any
console error or page error fails the test. Screenshots are kept in the test's tmp folder."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.test_api import FALL_CLIP, Server, api_server, token
from tests.test_cli import clean_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ANALYSIS_MS = 180_000
STEP_MS = 30_000


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def ui_server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    env = clean_env(tmp_path / "data")
    admin = token(env, "browser", "admin")
    with api_server(env, tmp_path / "api.log") as server:
        yield server, admin


def watch_console(page: Page) -> list[str]:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return problems


def test_upload_watch_and_browse_in_chromium(
    browser: BrowserContext, ui_server: tuple[Server, str], media_dir: Path, tmp_path: Path
) -> None:
    server, admin = ui_server
    page = browser.new_page()
    page.set_default_timeout(STEP_MS)
    problems = watch_console(page)

    # No token yet: the UI asks for one, and keeps it in localStorage.
    page.goto(server.url + "/")
    page.wait_for_selector("#token-input")
    page.fill("#token-input", "pp_wrong")
    page.click("#token-save")
    page.wait_for_selector("text=Not accepted")
    problems.clear()  # the refused token's 401 is logged by the browser, as it should be
    page.fill("#token-input", admin)
    page.click("#token-save")
    page.wait_for_selector("#upload-file")
    assert page.locator("#who").inner_text() == "browser (admin)"
    assert page.evaluate("() => localStorage.getItem('posepipe.token')") == admin

    # Upload with a progress bar, then the analysis' progress until it is done.
    page.set_input_files("#upload-file", str(media_dir / FALL_CLIP))
    page.click("#upload-button")
    page.wait_for_selector("#upload-progress:not([hidden])")
    page.wait_for_selector("#upload-open", timeout=ANALYSIS_MS)
    assert "null" not in page.locator("#upload-status").inner_text()
    page.screenshot(path=str(tmp_path / "videos.png"), full_page=True)
    page.wait_for_selector("#videos tr[data-video] .badge.done")  # the list refreshes by itself
    assert Path(FALL_CLIP).name in page.locator("#videos tr[data-video]").first.inner_text()

    # The video page: events with thumbnails, a timeline with the fall, the snapshot of a moment.
    page.click("#upload-open")
    page.wait_for_selector("#timeline canvas")
    page.wait_for_selector("#snapshot[data-shown]")
    with server.client(admin) as api:
        video_id = int(page.url.rsplit("/", 1)[-1])
        events = api.get("/api/events", params={"video_id": video_id}).json()["items"]
        video = api.get(f"/api/videos/{video_id}").json()
    falls = [e for e in events if e["type"] == "fall"]
    assert falls
    assert page.locator("#video-events tr[data-type=fall]").count() == len(falls)
    page.wait_for_selector("#video-events tr[data-type=fall] img.thumb[src^='blob:']")
    thumb = page.locator("#video-events tr[data-type=fall] img.thumb").first
    assert thumb.evaluate("img => img.naturalWidth") > 0
    first_shown = page.locator("#snapshot").get_attribute("data-shown")
    # The snapshot starts at the first fall; a click early on the timeline shows another moment.
    assert falls[0]["t_start_s"] <= float(first_shown or "nan") <= falls[0]["t_end_s"] + 0.2
    box = page.locator("#timeline .u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)
    page.wait_for_selector(f"#snapshot[data-shown]:not([data-shown='{first_shown}'])")
    clicked = float(page.locator("#snapshot").get_attribute("data-shown") or "nan")
    assert 0 <= clicked < float(first_shown or "nan")
    assert page.locator("#snapshot").evaluate("img => img.naturalWidth") == video["width"]
    page.screenshot(path=str(tmp_path / "video.png"), full_page=True)

    # The clip of the fall plays in the page.
    page.locator("#video-events tr[data-type=fall] button", has_text="clip").first.click()
    page.wait_for_selector("#clip-box video.clip")
    duration = page.locator("#clip-box video.clip").evaluate(
        "v => new Promise(ok => v.readyState >= 1 ? ok(v.duration)"
        " : v.addEventListener('loadedmetadata', () => ok(v.duration)))"
    )
    assert duration > falls[0]["t_end_s"] - falls[0]["t_start_s"]

    # CSV download of the poses and angles.
    with page.expect_download() as download:
        page.click("#download-poses")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == video["frames_with_person"] and "left_knee_deg" in rows[0]

    # The events page lists the fall with its picture; a filter narrows it.
    page.goto(server.url + "/#/events")
    page.wait_for_selector("#events tr[data-type=fall] img.thumb[src^='blob:']")
    page.select_option("#filter-type", "rep")
    page.click("#filter-apply")
    page.wait_for_selector("#events >> text=No events match.")
    page.select_option("#filter-type", "fall")
    page.click("#filter-apply")
    page.wait_for_selector("#events tr[data-type=fall]")
    page.screenshot(path=str(tmp_path / "events.png"), full_page=True)

    # Cameras: add one (its URL comes back masked), see it listed, remove it.
    page.goto(server.url + "/#/cameras")
    page.fill("#camera-name", "door")
    page.fill("#camera-url", "rtsp://viewer:S3cret-door@127.0.0.1:8554/door")
    page.click("#cameras-add")
    page.wait_for_selector("#cameras tr[data-camera=door]")
    camera_row = page.locator("#cameras tr[data-camera=door]").inner_text()
    assert "rtsp://viewer:***@127.0.0.1:8554/door" in camera_row and "S3cret-door" not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#cameras tr[data-camera=door] button", has_text="remove").click()
    page.wait_for_selector("#cameras >> text=No cameras.")

    assert not problems, problems
    print(f"screenshots in {tmp_path}")


def test_several_photos_at_once_show_their_skeletons_and_landmarks(
    browser: BrowserContext, ui_server: tuple[Server, str], media_dir: Path, tmp_path: Path
) -> None:
    """Two real photos picked together: each is uploaded and analysed, its skeleton drawing shows
    as soon as it is done, and its landmarks CSV downloads."""
    server, admin = ui_server
    page = browser.new_page()
    page.set_default_timeout(STEP_MS)
    problems = watch_console(page)
    page.goto(server.url + "/")
    page.wait_for_selector("#token-input")
    page.fill("#token-input", admin)
    page.click("#token-save")
    page.wait_for_selector("#upload-file")
    card = page.locator(".card", has=page.locator("#upload-file")).inner_text()
    assert "video or photo" in card.lower()
    photos = [media_dir / "images" / n for n in ("img_yoga_tree_pose.jpeg", "img_businessman_fullbody.jpeg")]
    page.set_input_files("#upload-file", [str(p) for p in photos])
    page.click("#upload-button")
    page.wait_for_selector(".upload-item[data-index='1'] .photo-result[data-shown]", timeout=ANALYSIS_MS)
    page.wait_for_selector(".upload-item[data-index='0'] .photo-result[data-shown]", timeout=ANALYSIS_MS)
    for index, photo in enumerate(photos):
        item = page.locator(f".upload-item[data-index='{index}']")
        assert photo.name in item.inner_text() and "Photo" in item.inner_text()
        original_width = cv2.imread(str(photo)).shape[1]
        assert item.locator(".photo-result").evaluate("img => img.naturalWidth") == original_width
        with page.expect_download() as download:
            item.locator(".photo-csv").click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert len(rows) == 1 and float(rows[0]["nose_visibility"]) > 0.5
    page.screenshot(path=str(tmp_path / "photos.png"), full_page=True)
    # A photo's own page shows the same drawing.
    page.click("#upload-open")
    page.wait_for_selector("#snapshot[data-shown]")
    assert (
        page.locator("#snapshot").evaluate("img => img.naturalWidth") == cv2.imread(str(photos[0])).shape[1]
    )
    page.wait_for_selector("#video-analysed >> text=1 person found")
    assert page.locator("#timeline").count() == 0  # a photo has no timeline
    page.screenshot(path=str(tmp_path / "photo-page.png"), full_page=True)
    assert not problems, problems

"""Live cameras against a real RTSP server (GStreamer, tests/rtsp_server.py) and a real black-hole
listener: frames at the served rate, reconnects after a kill or a freeze, timeouts that do not
hang, clear errors, masked passwords, one bad camera beside good ones. Plus the backoff and
watchdog checks as tables."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from common.backoff import Backoff, BackoffPolicy
from pipeline.frames import Frame
from pipeline.stream import CameraStatus, CameraStream, LiveFrame, StreamConfig, StreamGap, StreamState
from pipeline.watchdog import (
    SessionHealth,
    StreamFault,
    WatchdogLimits,
    check_decode_errors,
    check_stalled,
    inspect,
)
from tests.rtsp import RtspServer, black_hole, rtsp_server

CLIP = "falls/urfall_ds04_fall_while_walking.mp4"  # 320x240, 30 fps, 5.03 s, H.264 with B-frames
SERVED_FPS = 30.0
# Short everything so each test takes seconds: a dead peer is noticed within 1-2 s.
FAST = StreamConfig(
    open_timeout_s=1.5,
    read_timeout_s=1.0,
    stall_timeout_s=3.0,
    backoff=BackoffPolicy(base_s=0.05, cap_s=0.4),
    fps_window_s=2.0,
)
# A stop must land within one blocked call (open: up to twice its timeout) plus slack.
STOP_SLACK_S = 1.0


@pytest.fixture
def clip(media_dir: Path) -> Path:
    return media_dir / CLIP


class Reader:
    """Iterates one CameraStream in a thread of its own, as the ingest supervisor will."""

    def __init__(self, camera: CameraStream) -> None:
        self.camera = camera
        self.items: list[LiveFrame | StreamGap] = []
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"reader-{camera.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self.camera.frames():
                with self._lock:
                    self.items.append(item)
        except Exception as exc:  # noqa: BLE001 - handed to the test thread: join() raises it
            self._error = exc

    def frames(self, session: int | None = None) -> list[LiveFrame]:
        with self._lock:
            return [i for i in self.items if isinstance(i, LiveFrame) and session in (None, i.session)]

    def gaps(self) -> list[StreamGap]:
        with self._lock:
            return [i for i in self.items if isinstance(i, StreamGap)]

    def wait(self, what: str, predicate: Callable[[CameraStatus], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.camera.status()):
                return
            if not self._thread.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"{self.camera.name}: not {what} after {timeout_s} s: {self.camera.status()}")

    def stop(self) -> float:
        """Ask the camera to stop; how long the reader took to finish."""
        started = time.monotonic()
        self.camera.stop()
        self.join()
        return time.monotonic() - started

    def join(self, timeout_s: float = 10.0) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"{self.camera.name}: reader still running"
        if self._error is not None:
            raise self._error


def steady_fps(frames: list[LiveFrame], skip_s: float = 1.5) -> float:
    """Receive rate after the first `skip_s` (the frames FFmpeg probes while opening come in a burst)."""
    start = frames[0].captured_at_s + skip_s
    steady = [f.captured_at_s for f in frames if f.captured_at_s >= start]
    assert len(steady) >= 10, f"only {len(steady)} frames after the first {skip_s} s"
    return (len(steady) - 1) / (steady[-1] - steady[0])


def test_streams_frames_in_order_at_the_served_rate(clip: Path) -> None:
    with rtsp_server({"cam1": clip}) as server:
        reader = Reader(CameraStream("cam1", server.url("cam1"), FAST))
        reader.wait("online", lambda s: s.state == StreamState.ONLINE)
        # Past the clip's end (5.03 s of stream; the open probes ~0.8 s ahead): the loop shows.
        time.sleep(5.0)
        status = reader.camera.status()
        reader.stop()
    frames = reader.frames()
    assert reader.gaps() == []
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert {f.session for f in frames} == {1}
    captured = [f.captured_at_s for f in frames]
    assert captured == sorted(captured)
    pts = [f.pts_s for f in frames if f.pts_s is not None]
    assert len(pts) >= len(frames) - 2
    steps = [b - a for a, b in pairwise(pts)]
    # Strictly increasing and seamless, across the server's loop too.
    assert min(steps) > 0 and max(steps) < 2.5 / SERVED_FPS, (min(steps), max(steps))
    assert pts[-1] > 5.1, "the stream did not run past the clip's end"
    assert steady_fps(frames) == pytest.approx(SERVED_FPS, rel=0.12)
    assert status.state == StreamState.ONLINE
    assert status.fps_measured == pytest.approx(SERVED_FPS, rel=0.12)
    assert status.reconnects == 0 and status.last_error is None
    assert status.last_frame_at_s is not None and time.time() - status.last_frame_at_s < 5.0
    # The frames are ordinary decoded video, ready for the pose pipeline.
    rgb = Frame.from_av(frames[-1].av_frame, seq=0, pts_s=0.0, rotation_deg=0, max_side=0)
    assert rgb.resolution_wh == (320, 240)
    final = reader.camera.status()
    assert final.state == StreamState.OFFLINE and final.frames_received == len(frames)


IN_FLIGHT_S = 0.5


def test_server_killed_mid_stream_reconnects_and_reports_the_gap(clip: Path) -> None:
    with rtsp_server({"cam1": clip}) as server:
        reader = Reader(CameraStream("cam1", server.url("cam1"), FAST))
        reader.wait("streaming", lambda s: s.frames_received >= 40)
        server.kill()
        killed_at = time.time()
        reader.wait(
            "reconnecting", lambda s: s.state == StreamState.RECONNECTING and s.reconnects >= 1, timeout_s=5
        )
        # Down long enough for several refused attempts.
        reader.wait("refused", lambda s: s.last_fault == StreamFault.REFUSED and s.reconnects >= 3)
        assert "connection refused" in (reader.camera.status().last_error or "")
        time.sleep(0.5)
        server.start()  # same port
        restarted_at = time.time()
        reader.wait("streaming again", lambda s: s.session == 2 and s.state == StreamState.ONLINE)
        time.sleep(2.5)
        status = reader.camera.status()
        reader.stop()
    before, after = reader.frames(session=1), reader.frames(session=2)
    assert before and after
    [gap] = reader.gaps()
    # The gap sits between the two sessions and spans the outage.
    index = reader.items.index(gap)
    assert reader.items[index - 1] is before[-1] and reader.items[index + 1] is after[0]
    # Frames already in the socket buffer when the server dies are still read just after.
    assert gap.started_at_s == before[-1].captured_at_s <= killed_at + IN_FLIGHT_S
    assert gap.ended_at_s == after[0].captured_at_s >= restarted_at
    assert gap.session == 2
    assert gap.cause == StreamFault.ENDED  # the kill closes the connection: end of stream
    assert gap.reconnects == status.reconnects >= 3
    assert [f.seq for f in before + after] == list(range(len(before) + len(after)))
    assert steady_fps(after, skip_s=1.0) == pytest.approx(SERVED_FPS, rel=0.15)
    assert status.state == StreamState.ONLINE
    assert status.last_fault == StreamFault.REFUSED  # what the last failed attempt met


def test_server_frozen_mid_stream_times_out_reconnects_and_stops_promptly(clip: Path) -> None:
    """The PyAV #584 trap: the peer keeps the connection but sends nothing. Reads time out."""
    with rtsp_server({"cam1": clip}) as server:
        reader = Reader(CameraStream("cam1", server.url("cam1"), FAST))
        reader.wait("streaming", lambda s: s.frames_received >= 40)
        server.freeze()
        frozen_at = time.monotonic()
        reader.wait("timed out", lambda s: s.last_fault == StreamFault.TIMEOUT, timeout_s=5)
        noticed_s = time.monotonic() - frozen_at
        # The frames already in flight play out, then one read waits its full timeout.
        assert FAST.read_timeout_s <= noticed_s + 0.1 < FAST.read_timeout_s + 2.5, noticed_s
        status = reader.camera.status()
        assert status.state == StreamState.RECONNECTING
        assert status.last_error == "timed out: no data for 1 s"
        # While frozen, new connections are accepted by the kernel and never answered.
        reader.wait("retried", lambda s: s.reconnects >= 1 and s.last_error_at_s != status.last_error_at_s)
        server.thaw()
        reader.wait("streaming again", lambda s: s.session == 2, timeout_s=10)
        [gap] = reader.gaps()
        assert gap.cause == StreamFault.TIMEOUT
        # Freeze again and stop while the read is blocked: done within the read timeout.
        server.freeze()
        time.sleep(0.3)
        took_s = reader.stop()
        server.thaw()
    assert took_s < FAST.read_timeout_s + STOP_SLACK_S, took_s
    assert reader.camera.status().state == StreamState.OFFLINE


def test_black_hole_times_out_keeps_retrying_and_stops_promptly() -> None:
    with black_hole() as hole:
        reader = Reader(CameraStream("hole", hole.url(), FAST))
        started = time.monotonic()
        reader.wait("retrying", lambda s: s.reconnects >= 2 and s.last_fault == StreamFault.TIMEOUT)
        elapsed_s = time.monotonic() - started
        status = reader.camera.status()
        assert status.state == StreamState.RECONNECTING
        assert status.last_error == "timed out: no answer within 1.5 s"
        assert status.frames_received == 0 and status.session == 0
        assert hole.accepted >= 2  # it did connect each time: the timeouts are RTSP-level
        # Two failed attempts and the start of a third: each bounded by the open timeout.
        assert elapsed_s < 3 * 2 * FAST.open_timeout_s, elapsed_s
        time.sleep(0.5)  # mid-attempt
        took_s = reader.stop()
    assert took_s < 2 * FAST.open_timeout_s + STOP_SLACK_S, took_s
    assert reader.frames() == [] and reader.gaps() == []
    assert reader.camera.status().state == StreamState.OFFLINE


def test_stop_interrupts_the_wait_between_retries(clip: Path) -> None:
    slow_retry = StreamConfig(open_timeout_s=1.0, read_timeout_s=1.0, backoff=BackoffPolicy(60.0, 60.0))
    with rtsp_server({"cam1": clip}) as server:
        reader = Reader(CameraStream("cam1", server.url("nope"), slow_retry, rng=random.Random(1)))
        reader.wait("failed", lambda s: s.last_fault is not None)
        time.sleep(0.2)  # now in the first backoff wait (8 s with this seed)
        took_s = reader.stop()
    assert took_s < STOP_SLACK_S, took_s
    assert reader.camera.status().reconnects == 0


def test_wrong_path_says_not_found(clip: Path) -> None:
    with rtsp_server({"cam1": clip}) as server:
        reader = Reader(CameraStream("cam1", server.url("wrong"), FAST))
        reader.wait("retried", lambda s: s.reconnects >= 2)
        status = reader.camera.status()
        reader.stop()
    assert status.state == StreamState.RECONNECTING
    assert status.last_fault == StreamFault.NOT_FOUND
    assert status.last_error == "404 not found: no stream at this path"
    assert reader.frames() == []


def test_wrong_credentials_say_unauthorized_and_no_password_is_shown(
    clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with rtsp_server({"cam1": clip}, user="alice", password="s3cret-pw") as server:
        wrong = Reader(CameraStream("wrong", server.url("cam1", user="alice", password="hunter2-pw"), FAST))
        missing = Reader(CameraStream("missing", server.url("cam1"), FAST))
        right = Reader(CameraStream("right", server.auth_url("cam1"), FAST))
        for reader in (wrong, missing):
            reader.wait("refused entry", lambda s: s.reconnects >= 1)
        right.wait("streaming", lambda s: s.frames_received >= 10)
        statuses = {r.camera.name: r.camera.status() for r in (wrong, missing, right)}
        for reader in (wrong, missing, right):
            reader.stop()
    for name in ("wrong", "missing"):
        assert statuses[name].last_fault == StreamFault.UNAUTHORIZED
        assert statuses[name].last_error == "401 unauthorized: wrong or missing credentials"
    assert statuses["right"].state == StreamState.ONLINE
    assert statuses["wrong"].url == f"rtsp://alice:***@127.0.0.1:{server.port}/cam1"
    shown = repr(statuses) + "\n".join(r.getMessage() for r in caplog.records)
    assert "hunter2" not in shown and "s3cret" not in shown
    assert "camera=wrong" in shown


def test_one_bad_camera_does_not_slow_the_others(clip: Path) -> None:
    stop = threading.Event()
    with rtsp_server({"cam1": clip, "cam2": clip}) as server, black_hole() as hole:
        cameras = [
            CameraStream("cam1", server.url("cam1"), FAST, stop=stop),
            CameraStream("hole", hole.url(), FAST, stop=stop),
            CameraStream("cam2", server.url("cam2"), FAST, stop=stop),
        ]
        readers = [Reader(camera) for camera in cameras]
        time.sleep(4.5)
        started = time.monotonic()
        stop.set()
        for reader in readers:
            reader.join()
        took_s = time.monotonic() - started
    good = [readers[0], readers[2]]
    for reader in good:
        frames = reader.frames()
        assert steady_fps(frames) == pytest.approx(SERVED_FPS, rel=0.12), reader.camera.name
        steady = [f.captured_at_s for f in frames if f.captured_at_s > frames[0].captured_at_s + 1.5]
        # No hiccups while the bad camera blocks in its opens (which release the GIL).
        assert max(b - a for a, b in pairwise(steady)) < 0.25
        assert reader.gaps() == []
    bad = readers[1].camera.status()
    assert bad.last_fault == StreamFault.TIMEOUT and bad.reconnects >= 1
    assert took_s < 2 * FAST.open_timeout_s + STOP_SLACK_S, took_s
    assert all(r.camera.status().state == StreamState.OFFLINE for r in readers)


def test_a_server_can_be_restarted_on_its_port(clip: Path) -> None:
    """The test server itself: kill and restart keep the port, the URL stays valid."""
    server = RtspServer({"cam1": clip})
    try:
        server.start()
        port = server.port
        server.kill()
        assert not server.running
        server.start()
        assert server.running and server.port == port and server.starts == 2
    finally:
        server.close()
    assert not server.running


# -- backoff and watchdog as tables ------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "ceiling_s"), [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (60, 30.0), (10**6, 30.0)]
)
def test_backoff_ceiling_doubles_up_to_the_cap(attempt: int, ceiling_s: float) -> None:
    assert BackoffPolicy(base_s=0.5, cap_s=30.0).ceiling_s(attempt) == ceiling_s


def test_backoff_jitter_is_full_and_resets() -> None:
    backoff = Backoff(BackoffPolicy(base_s=1.0, cap_s=8.0), rng=random.Random(7))
    delays = [backoff.next_delay_s() for _ in range(200)]
    ceilings = [min(8.0, 2.0**n) for n in range(200)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    late = delays[10:]
    assert min(late) < 1.0 and max(late) > 7.0  # anywhere in [0, cap], not just near it
    assert backoff.failures == 200
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay_s() <= 1.0


@pytest.mark.parametrize(("base_s", "cap_s"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_backoff_policy_rejects_nonsense(base_s: float, cap_s: float) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(base_s, cap_s)


LIMITS = WatchdogLimits(stall_timeout_s=10.0, max_consecutive_decode_errors=3)


@pytest.mark.parametrize(
    ("last_frame_at_s", "now_s", "fault"),
    [
        (None, 109.9, None),  # still waiting for the first frame
        (None, 110.0, StreamFault.STALLED),  # none 10 s after opening
        (105.0, 114.9, None),
        (105.0, 115.0, StreamFault.STALLED),
    ],
)
def test_check_stalled(last_frame_at_s: float | None, now_s: float, fault: StreamFault | None) -> None:
    health = SessionHealth(opened_at_s=100.0, last_frame_at_s=last_frame_at_s)
    verdict = check_stalled(health, LIMITS, now_s)
    assert (verdict.fault if verdict else None) == fault


@pytest.mark.parametrize(
    ("events", "fault"),
    [
        ("fff", StreamFault.DECODE_ERRORS),
        ("ff", None),
        ("ffdff", None),  # a good packet ends the run
        ("dfffd", None),
        ("dfff", StreamFault.DECODE_ERRORS),
    ],
)
def test_check_decode_errors(events: str, fault: StreamFault | None) -> None:
    health = SessionHealth(opened_at_s=0.0)
    for event in events:
        health.packet_failed() if event == "f" else health.packet_decoded()
    verdict = check_decode_errors(health, LIMITS, 0.0)
    assert (verdict.fault if verdict else None) == fault


def test_inspect_reports_the_first_failing_check() -> None:
    health = SessionHealth(opened_at_s=0.0, consecutive_decode_errors=5)
    verdict = inspect(health, LIMITS, now_s=60.0)
    assert verdict is not None and verdict.fault == StreamFault.DECODE_ERRORS
    assert "5 packets in a row" in verdict.reason
    assert inspect(SessionHealth(opened_at_s=0.0, last_frame_at_s=59.0), LIMITS, now_s=60.0) is None

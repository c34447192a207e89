"""Live cameras: read an RTSP (or any FFmpeg) URL with PyAV for as long as asked, reconnecting
after every failure, and keep a thread-safe status of each camera.

Owns the connection: open and read timeouts, RTSP transport, reconnect pacing, the watchdog
verdicts and how an interruption is shown to the consumer. Does not convert frames to RGB
(`pipeline.frames.Frame.from_av`), sample, or queue them: the consumer does, in the reading
thread or handed off, and must keep up (a slow consumer delays `captured_at_s`).

What a consumer iterating `CameraStream.frames()` gets, in order:
- `LiveFrame`: a decoded frame, its wall-clock receive time, stream pts, `seq` (0, 1, ... over
  the camera's life) and `session` (1 for the first connection that delivered frames, +1 for
  each later one);
- `StreamGap`: yielded just before the first frame of every session after the first, with the
  capture times of the last frame before and the first frame after the interruption and why
  it happened. A connection that fails before delivering any frame is no session.
"""

from __future__ import annotations

import errno
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import cast
from urllib.parse import urlsplit

import av

from common.backoff import Backoff, BackoffPolicy
from common.redaction import mask_secrets
from pipeline import watchdog
from pipeline.watchdog import SessionHealth, StreamFault, Verdict, WatchdogLimits

log = logging.getLogger(__name__)

# Opening covers the TCP connect, RTSP DESCRIBE/SETUP/PLAY and FFmpeg's probe of the first
# packets. PyAV applies it to the open and to the probe separately, so an attempt on a dead
# camera can take up to twice this; 10 s is ample for a camera on a LAN.
OPEN_TIMEOUT_S = 10.0
# One packet read taking longer than this means the camera stopped sending (real cameras
# send many packets a second). A blocked read cannot be interrupted, so this also bounds
# how long stopping a stream can take.
READ_TIMEOUT_S = 5.0
# Data arrives but no video frame decodes for this long (audio only, a broken encoder).
STALL_TIMEOUT_S = 10.0
# A run of undecodable packets this long is garbage, not a damaged spot (as for files).
MAX_CONSECUTIVE_DECODE_ERRORS = 25
# Reconnect pacing: the first retry within 0.5 s, later ones never more than 30 s apart.
RECONNECT_BASE_S = 0.5
RECONNECT_CAP_S = 30.0
# Input fps is measured over the frames received in this trailing window.
FPS_WINDOW_S = 5.0
# RTP interleaved in the RTSP TCP connection: UDP loses packets (smeared frames) on a busy
# network and needs ports open through NAT and firewalls.
RTSP_TRANSPORT = "tcp"
RTSP_SCHEMES = ("rtsp", "rtsps")


class StreamState(str, Enum):
    CONNECTING = "connecting"  # first attempt, nothing failed yet
    ONLINE = "online"  # frames arriving
    RECONNECTING = "reconnecting"  # something failed: waiting to retry, or retrying
    OFFLINE = "offline"  # not reading: not started yet, or stopped


@dataclass(frozen=True)
class StreamConfig:
    """Timeouts and pacing for one camera; the defaults are the module constants."""

    open_timeout_s: float = OPEN_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    stall_timeout_s: float = STALL_TIMEOUT_S
    max_consecutive_decode_errors: int = MAX_CONSECUTIVE_DECODE_ERRORS
    backoff: BackoffPolicy = field(default_factory=lambda: BackoffPolicy(RECONNECT_BASE_S, RECONNECT_CAP_S))
    fps_window_s: float = FPS_WINDOW_S
    rtsp_transport: str = RTSP_TRANSPORT
    # Extra FFmpeg input options, as (name, value) pairs (e.g. ("analyzeduration", "1000000")).
    ffmpeg_options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("open_timeout_s", "read_timeout_s", "fps_window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.rtsp_transport not in ("tcp", "udp", "udp_multicast", "http", "https"):
            raise ValueError(f"unknown rtsp_transport {self.rtsp_transport!r}")
        self.limits  # noqa: B018 - validates the watchdog limits now, not at the first packet

    @property
    def limits(self) -> WatchdogLimits:
        return WatchdogLimits(self.stall_timeout_s, self.max_consecutive_decode_errors)


@dataclass(frozen=True, slots=True, eq=False)
class LiveFrame:
    """A decoded frame as received. `captured_at_s` is the wall-clock time (time.time()) it
    came out of the decoder; `pts_s` the stream's presentation time in seconds, None when the
    stream gives none (often the first frame of an RTSP session); it restarts with each
    session. Frames FFmpeg probes while opening (~0.8 s of video) arrive together, with
    close capture times."""

    av_frame: av.VideoFrame
    seq: int
    session: int
    captured_at_s: float
    pts_s: float | None

    def __post_init__(self) -> None:
        if self.seq < 0 or self.session < 1:
            raise ValueError(f"seq must be >= 0 and session >= 1, got {self.seq}, {self.session}")


@dataclass(frozen=True)
class StreamGap:
    """No frames between two capture times: the stream failed (`cause`, `reason`) and came
    back as `session` after `reconnects` attempts."""

    started_at_s: float
    ended_at_s: float
    cause: StreamFault
    reason: str
    reconnects: int
    session: int

    def __post_init__(self) -> None:
        if self.ended_at_s < self.started_at_s:
            raise ValueError(f"gap ends ({self.ended_at_s}) before it starts ({self.started_at_s})")

    @property
    def duration_s(self) -> float:
        return self.ended_at_s - self.started_at_s


@dataclass(frozen=True)
class CameraStatus:
    """A snapshot of one camera. Times are wall-clock seconds; `url` and `last_error` have
    any password masked. `reconnects` counts attempts made after a failure, successful or
    not; `last_error` stays after the camera is back online (the state says it is)."""

    camera: str
    url: str
    state: StreamState
    session: int
    frames_received: int
    fps_measured: float
    last_frame_at_s: float | None
    reconnects: int
    last_fault: StreamFault | None
    last_error: str | None
    last_error_at_s: float | None


@dataclass
class _Outage:
    """From the first failure after the last frame until frames flow again."""

    last_frame_at_s: float | None
    cause: StreamFault
    reason: str
    reconnects: int = 0


class CameraStream:
    """One camera. Iterate `frames()` in a thread of its own (it blocks on the network and
    runs until stopped); read `status()` from any thread; `stop()` ends the iteration within
    about `read_timeout_s` (or the open timeout while connecting; at once while waiting to
    retry). `stop` may be an event shared by several cameras."""

    def __init__(
        self,
        name: str,
        url: str,
        config: StreamConfig | None = None,
        *,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not name:
            raise ValueError("a camera needs a name")
        self.name = name
        self.url_masked = mask_secrets(url)
        self.config = config or StreamConfig()
        self.stop_event = stop or threading.Event()
        self._url = url
        self._backoff = Backoff(self.config.backoff, rng)
        self._started = False
        # Only the reading thread touches these.
        self._outage: _Outage | None = None
        self._last_logged: tuple[StreamFault, str] | None = None
        # Shared with status(): written under the lock.
        self._lock = threading.Lock()
        self._last_frame_wall_s: float | None = None
        self._state = StreamState.OFFLINE
        self._session = 0
        self._frames = 0
        self._reconnects = 0
        self._recent_mono_s: deque[float] = deque()
        self._last_fault: StreamFault | None = None
        self._last_error: str | None = None
        self._last_error_at_s: float | None = None

    def stop(self) -> None:
        self.stop_event.set()

    def status(self) -> CameraStatus:
        now_mono = time.monotonic()
        with self._lock:
            self._trim_window(now_mono)
            return CameraStatus(
                camera=self.name,
                url=self.url_masked,
                state=self._state,
                session=self._session,
                frames_received=self._frames,
                fps_measured=_rate(self._recent_mono_s),
                last_frame_at_s=self._last_frame_wall_s,
                reconnects=self._reconnects,
                last_fault=self._last_fault,
                last_error=self._last_error,
                last_error_at_s=self._last_error_at_s,
            )

    def frames(self) -> Iterator[LiveFrame | StreamGap]:
        """Frames (and gaps) until stopped; reconnects forever. Once per CameraStream."""
        if self._started:
            raise RuntimeError(f"camera {self.name}: frames() can be iterated once")
        self._started = True
        self._set_state(StreamState.CONNECTING)
        log.info("camera=%s connecting to %s", self.name, self.url_masked)
        try:
            while not self.stop_event.is_set():
                verdict = yield from self._session_frames()
                if verdict is None:
                    break
                self._failed(verdict)
                delay_s = self._backoff.next_delay_s()
                self._log_failure(verdict, delay_s)
                if self.stop_event.wait(delay_s):
                    break
                with self._lock:
                    self._reconnects += 1
                if self._outage is not None:
                    self._outage.reconnects += 1
        finally:
            self._set_state(StreamState.OFFLINE)
            log.info("camera=%s stopped", self.name)

    # -- one connection ---------------------------------------------------------------------

    def _session_frames(self) -> Generator[LiveFrame | StreamGap, None, Verdict | None]:
        """Open, read until something fails; the verdict, or None when asked to stop."""
        cfg = self.config
        started = time.monotonic()
        try:
            container = av.open(
                self._url,
                options=self._options(),
                timeout=(cfg.open_timeout_s, cfg.read_timeout_s),
            )
        except av.error.FFmpegError as exc:
            return open_verdict(exc, time.monotonic() - started, cfg.open_timeout_s)
        try:
            if not container.streams.video:
                kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
                return Verdict(StreamFault.NO_VIDEO, f"no video stream (contains: {kinds})")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            log.info(
                "camera=%s connected in %.2f s: %s %dx%d",
                self.name,
                time.monotonic() - started,
                ctx.name,
                ctx.width,
                ctx.height,
            )
            return (yield from self._read(container, stream))
        finally:
            try:
                container.close()
            except av.error.FFmpegError as exc:
                log.warning("camera=%s closing the stream failed: %s", self.name, ffmpeg_reason(exc))

    def _read(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Generator[LiveFrame | StreamGap, None, Verdict | None]:
        read_timeout_s = self.config.read_timeout_s
        limits = self.config.limits
        health = SessionHealth(opened_at_s=time.monotonic())
        # Every stream is demuxed, not only the video: the watchdog must run while audio
        # or data packets keep each read short but no video comes.
        packets = cast(Generator[av.Packet, None, None], container.demux())
        try:
            while not self.stop_event.is_set():
                try:
                    packet = next(packets)
                except StopIteration:
                    return Verdict(StreamFault.ENDED, "the server ended the stream")
                except av.error.ExitError:
                    return Verdict(StreamFault.TIMEOUT, f"timed out: no data for {read_timeout_s:g} s")
                except av.error.FFmpegError as exc:
                    return Verdict(StreamFault.READ_ERROR, f"read failed: {ffmpeg_reason(exc)}")
                if packet.stream_index == stream.index:
                    yield from self._decode(packet, health)
                verdict = watchdog.inspect(health, limits, time.monotonic())
                if verdict is not None:
                    return verdict
            return None
        finally:
            packets.close()

    def _decode(self, packet: av.Packet, health: SessionHealth) -> Iterator[LiveFrame | StreamGap]:
        try:
            decoded = packet.decode()
        except av.error.FFmpegError as exc:
            health.packet_failed()
            log.debug("camera=%s undecodable packet: %s", self.name, ffmpeg_reason(exc))
            return
        health.packet_decoded()
        for av_frame in decoded:
            captured_at_s = time.time()
            now_mono = time.monotonic()
            first_of_session = health.last_frame_at_s is None
            health.frame_received(now_mono)
            if first_of_session:
                gap = self._session_started(captured_at_s)
                if gap is not None:
                    yield gap
            with self._lock:
                seq = self._frames
                self._frames += 1
                self._last_frame_wall_s = captured_at_s
                self._recent_mono_s.append(now_mono)
                self._trim_window(now_mono)
                session = self._session
            pts_s = float(av_frame.time) if av_frame.time is not None else None
            yield LiveFrame(av_frame, seq=seq, session=session, captured_at_s=captured_at_s, pts_s=pts_s)

    def _session_started(self, captured_at_s: float) -> StreamGap | None:
        """The first frame of a connection: back online, backoff reset; the gap, if any."""
        self._backoff.reset()
        self._last_logged = None
        with self._lock:
            self._session += 1
            self._state = StreamState.ONLINE
            session = self._session
        outage, self._outage = self._outage, None
        if outage is None or outage.last_frame_at_s is None:
            log.info("camera=%s online (session %d)", self.name, session)
            return None
        gap = StreamGap(
            started_at_s=outage.last_frame_at_s,
            ended_at_s=captured_at_s,
            cause=outage.cause,
            reason=outage.reason,
            reconnects=outage.reconnects,
            session=session,
        )
        log.warning(
            "camera=%s online again (session %d) after a %.1f s gap: %s, %d reconnect(s)",
            self.name,
            session,
            gap.duration_s,
            gap.reason,
            gap.reconnects,
        )
        return gap

    # -- status -----------------------------------------------------------------------------

    def _options(self) -> dict[str, str]:
        options = dict(self.config.ffmpeg_options)
        if urlsplit(self._url).scheme.lower() in RTSP_SCHEMES:
            options.setdefault("rtsp_transport", self.config.rtsp_transport)
        return options

    def _failed(self, verdict: Verdict) -> None:
        reason = mask_secrets(verdict.reason)
        if self._outage is None:
            self._outage = _Outage(self._last_frame_wall_s, verdict.fault, reason)
        with self._lock:
            self._state = StreamState.RECONNECTING
            self._last_fault = verdict.fault
            self._last_error = reason
            self._last_error_at_s = time.time()
            self._recent_mono_s.clear()

    def _log_failure(self, verdict: Verdict, delay_s: float) -> None:
        # A camera that stays down logs its reason once at WARNING, then its retries at INFO.
        key = (verdict.fault, verdict.reason)
        level = logging.INFO if key == self._last_logged else logging.WARNING
        self._last_logged = key
        log.log(
            level,
            "camera=%s %s (%s); retry %d in %.2f s",
            self.name,
            mask_secrets(verdict.reason),
            verdict.fault.value,
            self._backoff.failures,
            delay_s,
        )

    def _set_state(self, state: StreamState) -> None:
        with self._lock:
            self._state = state

    def _trim_window(self, now_mono: float) -> None:
        window = self._recent_mono_s
        while window and window[0] < now_mono - self.config.fps_window_s:
            window.popleft()


def _rate(times_s: deque[float]) -> float:
    """Frames per second over a run of receive times (0 with fewer than two)."""
    if len(times_s) < 2 or times_s[-1] <= times_s[0]:
        return 0.0
    return (len(times_s) - 1) / (times_s[-1] - times_s[0])


def open_verdict(exc: av.error.FFmpegError, elapsed_s: float, open_timeout_s: float) -> Verdict:
    """Why opening failed, in words a person can act on (FFmpeg's RTSP client reports an
    interrupted open as invalid data, so a failure at the timeout is taken as the timeout)."""
    if isinstance(exc, (av.error.ExitError, av.error.TimeoutError)) or elapsed_s >= open_timeout_s:
        return Verdict(StreamFault.TIMEOUT, f"timed out: no answer within {open_timeout_s:g} s")
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return Verdict(StreamFault.UNAUTHORIZED, "401 unauthorized: wrong or missing credentials")
    if isinstance(exc, av.error.HTTPForbiddenError):
        return Verdict(StreamFault.UNAUTHORIZED, "403 forbidden: these credentials may not read this stream")
    if isinstance(exc, av.error.HTTPNotFoundError):
        return Verdict(StreamFault.NOT_FOUND, "404 not found: no stream at this path")
    if getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return Verdict(StreamFault.REFUSED, "connection refused: nothing listens at this address")
    return Verdict(StreamFault.OPEN_FAILED, f"cannot open: {ffmpeg_reason(exc)}")


def ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    """FFmpeg's message without the URL PyAV appends (it may hold a password), masked anyway."""
    return mask_secrets(getattr(exc, "strerror", None) or type(exc).__name__)

"""Live stream health: why a stream session ended (StreamFault), and one small check per way a
connected stream can go bad while its reads still succeed.

Reads that block are bounded by PyAV's read timeout, not here; these checks run after each
packet and catch the streams that keep sending but stop producing frames. Owns no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class StreamFault(str, Enum):
    """Why a live stream session failed or ended."""

    TIMEOUT = "timeout"  # opening or a read took longer than its timeout (no answer, no data)
    REFUSED = "refused"  # nothing listens at the address
    UNAUTHORIZED = "unauthorized"  # 401/403: missing or wrong credentials
    NOT_FOUND = "not_found"  # 404: no stream at this path
    OPEN_FAILED = "open_failed"  # any other reason the stream could not be opened
    NO_VIDEO = "no_video"  # opened, but holds no video stream
    ENDED = "ended"  # the server closed the stream (end of file for a file URL)
    READ_ERROR = "read_error"  # reading failed mid-stream (connection reset, bad data)
    DECODE_ERRORS = "decode_errors"  # packets arrive but a run of them fails to decode
    STALLED = "stalled"  # packets arrive but no frame was decoded for too long


@dataclass(frozen=True)
class Verdict:
    """A failed check or a failed read: the fault and a short reason a person can act on."""

    fault: StreamFault
    reason: str


@dataclass(frozen=True)
class WatchdogLimits:
    stall_timeout_s: float
    max_consecutive_decode_errors: int

    def __post_init__(self) -> None:
        if not self.stall_timeout_s > 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {self.stall_timeout_s}")
        if self.max_consecutive_decode_errors < 1:
            raise ValueError(
                f"max_consecutive_decode_errors must be >= 1, got {self.max_consecutive_decode_errors}"
            )


@dataclass
class SessionHealth:
    """What the checks look at, kept by the one thread reading a session. Monotonic seconds."""

    opened_at_s: float
    last_frame_at_s: float | None = None
    consecutive_decode_errors: int = 0

    def frame_received(self, now_s: float) -> None:
        self.last_frame_at_s = now_s

    def packet_decoded(self) -> None:
        self.consecutive_decode_errors = 0

    def packet_failed(self) -> None:
        self.consecutive_decode_errors += 1


Check = Callable[[SessionHealth, WatchdogLimits, float], "Verdict | None"]


def check_stalled(health: SessionHealth, limits: WatchdogLimits, now_s: float) -> Verdict | None:
    """No decoded frame for stall_timeout_s (counted from the open until the first frame)."""
    since = health.last_frame_at_s if health.last_frame_at_s is not None else health.opened_at_s
    idle_s = now_s - since
    if idle_s < limits.stall_timeout_s:
        return None
    what = "no video frame" if health.last_frame_at_s is None else "no new video frame"
    return Verdict(StreamFault.STALLED, f"{what} for {idle_s:.1f} s although data arrives")


def check_decode_errors(health: SessionHealth, limits: WatchdogLimits, now_s: float) -> Verdict | None:
    """A run of undecodable packets: the stream is garbage, not a damaged spot."""
    if health.consecutive_decode_errors < limits.max_consecutive_decode_errors:
        return None
    return Verdict(
        StreamFault.DECODE_ERRORS, f"{health.consecutive_decode_errors} packets in a row failed to decode"
    )


CHECKS: tuple[Check, ...] = (check_decode_errors, check_stalled)


def inspect(health: SessionHealth, limits: WatchdogLimits, now_s: float) -> Verdict | None:
    """The first failing check, or None while the session is healthy."""
    for check in CHECKS:
        verdict = check(health, limits, now_s)
        if verdict is not None:
            return verdict
    return None

"""Reconnect pacing: capped exponential backoff with full jitter. Owns the delay, not the sleeping."""

from __future__ import annotations

import random
from dataclasses import dataclass

# 2**30 times any sensible base is far past every cap; bounding the exponent keeps the
# arithmetic finite however long a source stays down.
MAX_EXPONENT = 30


@dataclass(frozen=True)
class BackoffPolicy:
    """The n-th retry (from 0) waits a uniformly random time in [0, min(cap_s, base_s * 2**n)].

    Full jitter spreads the retries of many clients that failed together (a switch reboot
    takes every camera down at once) instead of having them retry in lock step.
    """

    base_s: float
    cap_s: float

    def __post_init__(self) -> None:
        if not self.base_s > 0:
            raise ValueError(f"base_s must be > 0, got {self.base_s}")
        if not self.cap_s >= self.base_s:
            raise ValueError(f"cap_s must be >= base_s ({self.base_s}), got {self.cap_s}")

    def ceiling_s(self, attempt: int) -> float:
        """The longest wait before retry number `attempt` (0 for the first retry)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        return min(self.cap_s, self.base_s * 2 ** min(attempt, MAX_EXPONENT))


class Backoff:
    """Counts consecutive failures of one source; `reset()` once it works again.

    Not thread-safe: one per reconnect loop. `rng` is injectable so tests can fix the jitter.
    """

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay_s(self) -> float:
        """The wait before the next attempt; counts one more failure."""
        delay = self._rng.uniform(0.0, self.policy.ceiling_s(self.failures))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

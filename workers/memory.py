"""Worker memory: a process's resident size, and the limit past which a worker is replaced.

A long-running worker's memory does not only hold what it uses: native libraries (MediaPipe,
TFLite, FFmpeg) and the C allocator keep what they once needed, and the soak measured a pose
worker's RSS swinging by hundreds of MB over minutes. Whatever the cause, a worker past
`worker_max_rss_mb` finishes the job in hand and is replaced by a fresh process, so memory
stays bounded the way Celery's max-memory-per-child and gunicorn's max-requests bound theirs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

# A worker is replaced at most this often, so a limit set below what a worker needs at rest
# costs a model load a minute instead of a restart loop.
MIN_LIFETIME_S = 60.0


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident memory of a process in MiB (the MB of ps and top), or None without /proc."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class MemoryLimit:
    """`limit_mb` 0 means no limit; a process younger than `min_lifetime_s` is never over it."""

    limit_mb: float
    min_lifetime_s: float = MIN_LIFETIME_S
    started: float = field(default_factory=time.monotonic)

    def exceeded(self) -> float | None:
        """This process's RSS when it is over the limit (and old enough to be replaced), else None."""
        if self.limit_mb <= 0 or time.monotonic() - self.started < self.min_lifetime_s:
            return None
        current = rss_mb()
        return current if current is not None and current > self.limit_mb else None

"""Landmark smoothing per track with the 1€ filter (Casiez et al.; the authors' `OneEuroFilter` package).

The 1€ filter adapts its cutoff to speed: still joints get heavy smoothing (no jitter in
angles), fast ones get little (a fall or a jump is not delayed). Real timestamps are used,
so sampled and variable-rate video smooth correctly. Stored landmarks stay raw.
"""

from __future__ import annotations

import numpy as np
from OneEuroFilter import OneEuroFilter

from analytics import thresholds as th

# The filter's `freq` is only a fallback when no timestamp is given; we always give one.
NOMINAL_RATE_HZ = 10.0


class LandmarkSmoother:
    """Smooths a fixed-size array of coordinates over time (one filter per coordinate)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self._filters = [
            OneEuroFilter(
                NOMINAL_RATE_HZ, th.SMOOTH_MIN_CUTOFF_HZ, th.SMOOTH_BETA, th.SMOOTH_DERIVATIVE_CUTOFF_HZ
            )
            for _ in range(int(np.prod(shape)))
        ]
        self._last_t: float | None = None

    def __call__(self, values: np.ndarray, t_s: float) -> np.ndarray:
        if values.shape != self.shape:
            raise ValueError(f"expected shape {self.shape}, got {values.shape}")
        # The filter rejects equal timestamps; a repeated time is not new information.
        if self._last_t is not None and t_s <= self._last_t:
            t_s = self._last_t + 1e-6
        self._last_t = t_s
        flat = values.reshape(-1)
        out = np.fromiter(
            (f(float(v), t_s) for f, v in zip(self._filters, flat, strict=True)),
            dtype=np.float64,
            count=flat.size,
        )
        return out.reshape(self.shape)

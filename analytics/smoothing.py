"""Landmark smoothing per track with the 1€ filter (Casiez et al.), over whole landmark arrays.

The 1€ filter adapts its cutoff to speed: still joints get heavy smoothing (no jitter in
angles), fast ones get little (a fall or a jump is not delayed). Real timestamps are used,
so sampled and variable-rate video smooth correctly. Stored landmarks stay raw.

This is the authors' reference implementation (the `OneEuroFilter` package) computed on
arrays: every coordinate of a pose shares its timestamps, so one clock and two arrays of state
replace one filter object per coordinate. The package's 165 objects per track (each with two
inner filters) cost ~0.4 ms a frame in Python calls and made most of the analytics state that
is pickled between chunks (a live camera's chunk unpickles and pickles it every few hundred
milliseconds). `tests/analytics/test_smoothing.py` checks the two give the same values on real
landmark tracks, so the package stays the reference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analytics import thresholds as th

# The filter's starting rate, used until two timestamps give one (the reference's `freq`).
NOMINAL_RATE_HZ = 10.0


def _alpha(rate_hz: float, cutoff_hz: np.ndarray | float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass at `cutoff_hz` sampled at `rate_hz`."""
    te = 1.0 / rate_hz
    tau = 1.0 / (2 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / te)


class LandmarkSmoother:
    """Smooths a fixed-size array of coordinates over time (a 1€ filter per coordinate)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self._rate_hz = NOMINAL_RATE_HZ
        self._last_t: float | None = None
        self._value: np.ndarray | None = None  # filtered coordinates
        self._speed: np.ndarray | None = None  # filtered derivative, per second

    def __call__(self, values: np.ndarray, t_s: float) -> np.ndarray:
        if values.shape != self.shape:
            raise ValueError(f"expected shape {self.shape}, got {values.shape}")
        # A repeated time is not new information, and would divide by zero.
        if self._last_t is not None and t_s <= self._last_t:
            t_s = self._last_t + 1e-6
        # As the reference does: a time of 0 (a video's first frame) gives no rate.
        if self._last_t and t_s and t_s > self._last_t:
            self._rate_hz = 1.0 / (t_s - self._last_t)
        self._last_t = t_s
        x = values.astype(np.float64)
        if self._value is None:
            self._value, self._speed = x, np.zeros_like(x)
            return x.copy()
        assert self._speed is not None
        dx = (x - self._value) * self._rate_hz
        a_d = _alpha(self._rate_hz, th.SMOOTH_DERIVATIVE_CUTOFF_HZ)
        self._speed = a_d * dx + (1.0 - a_d) * self._speed
        cutoff = th.SMOOTH_MIN_CUTOFF_HZ + th.SMOOTH_BETA * np.abs(self._speed)
        a = _alpha(self._rate_hz, cutoff)
        self._value = a * x + (1.0 - a) * self._value
        return self._value.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_filters" in state:
            state = _from_reference_filters(state)
        self.__dict__.update(state)


def _from_reference_filters(old: dict[str, Any]) -> dict[str, Any]:
    """The state of a smoother pickled when it held one reference filter per coordinate (a
    stream or video in progress across the upgrade carries on where it was)."""
    filters, shape = old["_filters"], old["shape"]

    def filtered(inner: str) -> np.ndarray | None:
        values = [getattr(f, f"_OneEuroFilter__{inner}").lastFilteredValue() for f in filters]
        return None if values[0] is None else np.array(values).reshape(shape)

    return {
        "shape": shape,
        "_rate_hz": filters[0]._OneEuroFilter__freq,
        "_last_t": old["_last_t"],
        "_value": filtered("x"),
        "_speed": filtered("dx"),
    }

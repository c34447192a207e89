"""The array 1€ smoother against the authors' reference package, on real landmark tracks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from OneEuroFilter import OneEuroFilter

from analytics import thresholds as th
from analytics.smoothing import NOMINAL_RATE_HZ, LandmarkSmoother

# A fall (fast, then still) and a squat set (slow, periodic): both ends of the filter's range.
CLIPS = ["falls/urfall_ds04_fall_while_walking.mp4", "exercise/ex_squat_side_woman.mp4"]


class ReferenceSmoother:
    """One reference filter per coordinate, as the smoother was first written."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.filters = [
            OneEuroFilter(
                NOMINAL_RATE_HZ, th.SMOOTH_MIN_CUTOFF_HZ, th.SMOOTH_BETA, th.SMOOTH_DERIVATIVE_CUTOFF_HZ
            )
            for _ in range(int(np.prod(shape)))
        ]
        self.last_t: float | None = None

    def __call__(self, values: np.ndarray, t_s: float) -> np.ndarray:
        if self.last_t is not None and t_s <= self.last_t:
            t_s = self.last_t + 1e-6
        self.last_t = t_s
        flat = values.reshape(-1)
        smoothed = [f(float(v), t_s) for f, v in zip(self.filters, flat, strict=True)]
        return np.array(smoothed).reshape(self.shape)

    def pickled_state(self) -> dict[str, object]:
        """What a smoother of the old kind pickled."""
        return {"shape": self.shape, "_filters": self.filters, "_last_t": self.last_t}


def tracks(posed_clips, rel: str) -> list[tuple[float, np.ndarray]]:  # type: ignore[no-untyped-def]
    """(time, first person's x, y, z and world x, y, z) for each frame with a person."""
    return [
        (f.pts_s, np.hstack([f.poses[0].landmarks_xyzv[:, :3], f.poses[0].world_xyz_m]).astype(np.float64))
        for f in posed_clips(rel)
        if f.poses and f.poses[0].world_xyz_m is not None
    ]


@pytest.mark.parametrize("rel", CLIPS)
def test_the_same_values_as_the_reference_on_real_tracks(posed_clips, rel: str) -> None:
    track = tracks(posed_clips, rel)
    assert len(track) > 40 and track[0][0] == 0.0  # from a video's first frame: time 0
    ours, reference = LandmarkSmoother((33, 6)), ReferenceSmoother((33, 6))
    for t_s, values in track:
        np.testing.assert_allclose(ours(values, t_s), reference(values, t_s), rtol=0, atol=1e-12)
    # It smooths: the output is not the input.
    assert not np.allclose(ours(track[-1][1] + 0.1, track[-1][0] + 0.1), track[-1][1] + 0.1)


def test_repeated_times_and_pickling_between_chunks_change_nothing(posed_clips) -> None:
    track = tracks(posed_clips, CLIPS[0])
    ours, reference = LandmarkSmoother((33, 6)), ReferenceSmoother((33, 6))
    for i, (t_s, values) in enumerate(track):
        if i % 7 == 3:
            t_s = track[i - 1][0]  # the same time twice
        if i % 5 == 0:
            ours = pickle.loads(pickle.dumps(ours))
        np.testing.assert_allclose(ours(values, t_s), reference(values, t_s), rtol=0, atol=1e-12)


@pytest.mark.parametrize("after_frames", [0, 1, 25])
def test_a_smoother_pickled_with_reference_filters_carries_on(posed_clips, after_frames: int) -> None:
    """A stream or video in progress when posepipe is upgraded keeps its smoothing state."""
    track = tracks(posed_clips, CLIPS[0])
    reference = ReferenceSmoother((33, 6))
    for t_s, values in track[:after_frames]:
        reference(values, t_s)
    ours = LandmarkSmoother.__new__(LandmarkSmoother)
    ours.__setstate__(pickle.loads(pickle.dumps(reference.pickled_state())))
    for t_s, values in track[after_frames:]:
        np.testing.assert_allclose(ours(values, t_s), reference(values, t_s), rtol=0, atol=1e-12)


def test_a_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="expected shape"):
        LandmarkSmoother((33, 2))(np.zeros((33, 3)), 0.0)

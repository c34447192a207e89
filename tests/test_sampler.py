"""Frame sampling by presentation time: per-frame tables."""

import pytest

from pipeline.sampler import FrameSampler


def kept(fps: float, pts: list[float]) -> list[float]:
    sampler = FrameSampler(fps)
    return [t for t in pts if sampler.take(t)]


def test_30fps_to_10fps_keeps_every_third_frame() -> None:
    pts = [i / 30 for i in range(30)]
    assert kept(10, pts) == [pts[i] for i in range(0, 30, 3)]


def test_25fps_to_10fps_keeps_first_frame_of_each_slot() -> None:
    pts = [i * 0.04 for i in range(25)]
    assert [round(t, 2) for t in kept(10, pts)] == [0.0, 0.12, 0.2, 0.32, 0.4, 0.52, 0.6, 0.72, 0.8, 0.92]


def test_variable_frame_rate_samples_by_time_not_count() -> None:
    # A burst at 60 fps then a stretch at 5 fps: per-second output stays at the target.
    pts = [i / 60 for i in range(60)] + [1 + i / 5 for i in range(5)]
    result = kept(10, pts)
    assert len([t for t in result if t < 1]) == 10
    assert [round(t, 2) for t in result if t >= 1] == [1.0, 1.2, 1.4, 1.6, 1.8]


def test_target_above_native_rate_keeps_everything() -> None:
    pts = [i / 25 for i in range(50)]
    assert kept(100, pts) == pts


def test_fps_zero_keeps_every_frame() -> None:
    pts = [i / 30 for i in range(10)]
    assert kept(0, pts) == pts


def test_repeated_or_backward_timestamps_are_never_kept_twice() -> None:
    assert kept(0, [0.0, 0.1, 0.1, 0.05, 0.2]) == [0.0, 0.1, 0.2]
    assert kept(10, [0.0, 0.0, 0.1, 0.1, 0.09, 0.2]) == [0.0, 0.1, 0.2]


def test_negative_fps_is_rejected() -> None:
    with pytest.raises(ValueError):
        FrameSampler(-1)

"""A worker's pose models for live sessions: tracking continues across short gaps (another
worker's chunk in between), restarts after long ones, and idle models are closed."""

from __future__ import annotations

import pytest

from workers import context
from workers.context import WorkerContext
from workers.estimator import MediaPipeEstimator


@pytest.fixture
def ctx(make_settings) -> WorkerContext:  # type: ignore[no-untyped-def]
    worker = WorkerContext(settings=make_settings(), db=None, redis=None, frames=None, queue=None)  # type: ignore[arg-type]
    yield worker
    worker.close()


@pytest.fixture
def resets(monkeypatch: pytest.MonkeyPatch) -> list[MediaPipeEstimator]:
    """The models reset, in order (the real reset still runs)."""
    seen: list[MediaPipeEstimator] = []
    real_reset = MediaPipeEstimator.reset

    def counting_reset(self: MediaPipeEstimator) -> None:
        seen.append(self)
        real_reset(self)

    monkeypatch.setattr(MediaPipeEstimator, "reset", counting_reset)
    return seen


def chunk(ctx: WorkerContext, video_id: int, first_s: float, last_s: float) -> object:
    model = ctx.session_estimator(video_id, first_s)
    ctx.note_session_posed(video_id, last_s)
    return model


def test_tracking_continues_over_short_gaps_and_restarts_after_long_ones(
    ctx: WorkerContext, resets: list[MediaPipeEstimator]
) -> None:
    model = chunk(ctx, 1, 0.0, 0.2)  # a new model starts fresh: nothing to reset
    assert chunk(ctx, 1, 0.3, 0.5) is model  # the next chunk
    assert chunk(ctx, 1, 0.9, 1.1) is model  # another worker posed 0.6-0.8
    assert resets == []
    assert chunk(ctx, 1, 2.0, 2.2) is model  # 0.9 s later: too far to track from
    assert resets == [model]
    assert chunk(ctx, 1, 2.0, 2.2) is model  # a retried chunk goes back in time
    assert resets == [model, model]
    other = chunk(ctx, 2, 0.0, 0.2)
    assert other is not model  # each session has its own model
    assert resets == [model, model]


def test_an_idle_session_model_is_closed(ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch) -> None:
    model = chunk(ctx, 1, 0.0, 0.2)
    monkeypatch.setattr(context, "SESSION_MODEL_IDLE_S", 0.0)
    chunk(ctx, 2, 0.0, 0.2)  # session 1's model has been idle longer than the limit
    monkeypatch.setattr(context, "SESSION_MODEL_IDLE_S", 60.0)
    assert chunk(ctx, 1, 0.3, 0.5) is not model

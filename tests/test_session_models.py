"""Live sessions on a worker: its pose models keep tracking across short gaps (another
worker's chunk in between), restart after long ones and are closed when idle; and behind a
camera, workers pose every other chunk so the posed chunks stay close."""

from __future__ import annotations

import pytest

from pose.estimator import MediaPipeEstimator
from workers import context
from workers.context import WorkerContext
from workers.live import drop_cause


@pytest.fixture
def ctx(make_settings) -> WorkerContext:  # type: ignore[no-untyped-def]
    # BlazePose alone, the cameras' default backend (whose reset the `resets` fixture sees).
    settings = make_settings(pose_backend="mediapipe")
    worker = WorkerContext(settings=settings.for_workers(), db=None, redis=None, frames=None, queue=None)  # type: ignore[arg-type]
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


@pytest.mark.parametrize(
    ("lag_s", "posed_previous", "cause"),
    [
        (0.4, True, None),  # keeping up: every chunk is posed
        (1.5, True, "thinned"),  # behind: the chunk after a posed one goes
        (1.5, False, None),  # ... and the one after that is posed: never two thinned in a row
        (2.5, False, "stale"),  # too old to be worth posing at all
        (2.5, True, "stale"),
    ],
)
def test_workers_behind_a_camera_pose_every_other_chunk(
    lag_s: float, posed_previous: bool, cause: str | None
) -> None:
    assert drop_cause(lag_s, posed_previous, thin_lag_s=1.0, max_lag_s=2.0) == cause


def test_a_session_engine_is_kept_between_chunks_only_once_committed(ctx: WorkerContext) -> None:
    from analytics.config import AnalyticsConfig
    from analytics.engine import AnalyticsEngine
    from storage.analytics_state import SavedEngine

    chunk(ctx, 1, 0.0, 0.2)
    saved = SavedEngine(b"state", AnalyticsEngine(AnalyticsConfig(), detectors=[]))
    ctx.keep_session_engine(1, saved)  # a job committed this state
    assert ctx.take_session_engine(1) is saved
    # The job that took it failed before keeping its own: the next one unpickles the stored state.
    assert ctx.take_session_engine(1) is None
    ctx.keep_session_engine(1, saved)
    ctx.forget_session(1)  # the session ended: its engine goes with its model
    assert ctx.take_session_engine(1) is None

"""Settings: environment with the POSEPIPE_ prefix, REDIS_URL/DATABASE_URL, typos rejected."""

from dataclasses import fields

import pytest

from pipeline.payload import FrameEncoding
from posepipe.settings import load_settings


def test_defaults_are_embedded_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for key in ("REDIS_URL", "DATABASE_URL", "POSEPIPE_REDIS_URL", "POSEPIPE_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("POSEPIPE_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.embedded
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'posepipe.db'}"
    assert settings.analysis_fps == 10


def test_unprefixed_service_urls_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/2")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    settings = load_settings()
    assert not settings.embedded
    assert settings.redis_url == "redis://example:6379/2"
    assert settings.sqlalchemy_url == "postgresql://u@h/db"


def test_unknown_posepipe_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSEPIPE_ANALYSIS_FSP", "5")
    with pytest.raises(ValueError, match="POSEPIPE_ANALYSIS_FSP"):
        load_settings()


def test_out_of_range_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSEPIPE_ANALYSIS_FPS", "-3")
    with pytest.raises(ValueError):
        load_settings()


def test_command_line_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSEPIPE_ANALYSIS_FPS", "5")
    assert load_settings(analysis_fps=15).analysis_fps == 15
    assert load_settings(analysis_fps=None).analysis_fps == 5


def test_workers_get_the_settings_they_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings.for_workers copies each field to the one of the same name, set values included."""
    for name, value in {
        "POSEPIPE_CHUNK_FRAMES": "16",
        "POSEPIPE_FRAME_ENCODING": "jpeg",
        "POSEPIPE_POSE_MODEL": "lite",
        "POSEPIPE_HANDS": "true",
        "POSEPIPE_LONG_LIE_S": "75",
        "POSEPIPE_LIVE_MAX_LAG_S": "9",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    copy = settings.for_workers()
    assert {f.name: getattr(copy, f.name) for f in fields(copy)} == {
        f.name: getattr(settings, f.name) for f in fields(copy)
    }
    assert (copy.chunk_frames, copy.frame_encoding, copy.pose_model) == (16, FrameEncoding.JPEG, "lite")
    assert (copy.hands, copy.long_lie_s, copy.live_max_lag_s) == (True, 75.0, 9.0)

"""Faults while a file is analysed: the services recover by themselves, and the stored rows equal a
clean run's (none lost, none doubled). Recovery times are printed (pytest -s) for docs/reliability.md."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from posepipe import analyze as analysis
from posepipe.services import Services
from storage.models import Video, VideoStatus
from tests.services import private_postgres, private_redis
from tests.test_pipeline import analyse_in_background, clean_rows, sampled_times, stored_rows

CLIP = "adl_negatives/ds6_mattress_room_196_lie_down_on_mattress.mp4"  # 385 frames, 13 chunks
# The fault strikes once this many frames are stored: a few chunks done, more still queued.
FAULT_AFTER_FRAMES = 64


def analyse_through(services: Services, clip: Path, fault: Callable[[], None], what: str) -> int:
    """Analyse `clip`, calling `fault()` mid-way; returns the video id once it is done."""
    opts = analysis.AnalyzeOptions(fps=10, workers=1)
    target = analysis.plan(services, str(clip), opts)
    runner = analyse_in_background(services, target, opts)

    def progress() -> int:
        with services.db.session() as s:
            return s.get(Video, target.video_id).frames_done

    deadline = time.monotonic() + 120
    while progress() < FAULT_AFTER_FRAMES and time.monotonic() < deadline:
        time.sleep(0.2)
    assert progress() >= FAULT_AFTER_FRAMES
    fault()
    back = time.monotonic()
    runner.join(timeout=180)
    if runner.is_alive():
        with services.db.session() as s:
            video = s.get(Video, target.video_id)
            state = f"{video.status.value}, {video.frames_done}/{video.frames_total} frames, {video.error}"
        raise AssertionError(f"the analysis did not recover from the {what} in 180 s: {state}")
    print(f"{what}: finished {time.monotonic() - back:.1f} s after it came back")
    with services.db.session() as s:
        video = s.get(Video, target.video_id)
        assert video.status is VideoStatus.DONE, video.error
        assert video.frames_done == video.frames_total == len(sampled_times(clip, 10))
    return target.video_id


def test_redis_restart_mid_analysis_loses_and_doubles_nothing(
    make_settings, open_services, media_dir: Path, tmp_path: Path
) -> None:
    clip = media_dir / CLIP
    expected = clean_rows(make_settings, open_services, clip)
    with private_redis() as redis_server:
        services = open_services(
            make_settings(
                redis_url=redis_server.url, database_url=f"sqlite:///{tmp_path / 'f.db'}", max_queued_mb=8
            )
        )

        def restart() -> None:
            redis_server.stop()
            time.sleep(2)
            redis_server.start()  # empty: every queued frame and job is gone

        video_id = analyse_through(services, clip, restart, "Redis restart")
    assert stored_rows(services, video_id) == expected


def test_postgres_restart_while_workers_write_loses_and_doubles_nothing(
    make_settings, open_services, media_dir: Path, redis_url: str
) -> None:
    clip = media_dir / CLIP
    expected = clean_rows(make_settings, open_services, clip)
    with private_postgres() as pg:
        services = open_services(make_settings(redis_url=redis_url, database_url=pg.url, max_queued_mb=8))

        def crash() -> None:
            pg.stop("immediate")  # a crash, mid-write
            time.sleep(3)
            pg.start()

        video_id = analyse_through(services, clip, crash, "PostgreSQL restart")
        assert stored_rows(services, video_id) == expected
        services.close()


def test_a_database_that_stays_away_ends_the_wait_with_a_clear_error(
    make_settings, open_services, media_dir: Path, redis_url: str
) -> None:
    with private_postgres() as pg:
        settings = make_settings(redis_url=redis_url, database_url=pg.url, db_outage_s=5)
        services = open_services(settings)
        opts = analysis.AnalyzeOptions(fps=10, workers=1)
        target = analysis.plan(services, str(media_dir / CLIP), opts)
        pg.stop("immediate")
        started = time.monotonic()
        try:
            with pytest.raises(analysis.DatabaseUnreachable, match="unreachable for 5 s"):
                analysis.run(services, [target], opts)
            gave_up_s = time.monotonic() - started
        finally:
            pg.start()  # so the block ends with a clean stop
    print(f"gave up on the missing database after {gave_up_s:.1f} s")
    assert gave_up_s < 60  # the limit, the worker's shutdown and the ingest thread's stop

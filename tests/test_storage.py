"""Storage on SQLite and PostgreSQL: migrations, idempotent chunk writes, the analytics cursor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, inspect, select

from analytics.config import AnalyticsConfig
from analytics.engine import AnalyticsEngine
from analytics.events import Event, EventType
from pose.types import FramePoses, Pose
from storage import analytics_state, events, poses, videos
from storage.db import MIGRATIONS_DIR, Database, head_revision
from storage.models import AnalysedFrame, Chunk, PoseRow, Video


def a_pose(shift: float = 0.0) -> Pose:
    rng = np.random.default_rng(int(shift * 1000))
    lm = np.column_stack([rng.random((33, 2)) * 0.5 + shift, rng.random(33) * 0.1, np.full(33, 0.9)])
    return Pose(landmarks_xyzv=lm, world_xyz_m=rng.random((33, 3)), score=0.9)


def a_video(db: Database) -> Video:
    with db.session() as s:
        source = videos.file_source(s, "/tmp/clip.mp4")
        params = videos.AnalysisParams(10.0, "mediapipe", 1280, 0.3)
        video = videos.create_video(s, source, "/tmp/clip.mp4", "ab" * 32, 123, params, None)
        video.width, video.height = 640, 480
        return video


def chunk(video_id: int, frames: list[FramePoses]) -> poses.ChunkWrite:
    return poses.ChunkWrite(video_id, 0, 0, len(frames), frames, pose_s=0.5, worker="test")


def test_migration_creates_every_table_and_is_repeatable(db: Database) -> None:
    db.migrate()  # a second run is a no-op, not an error
    tables = set(inspect(db.engine).get_table_names())
    assert {"sources", "videos", "chunks", "frames", "poses", "events", "analytics_state"} <= tables


def test_the_head_read_from_the_migration_files_is_alembics(db: Database) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()
    assert db.revision() == head_revision()


def test_the_engine_state_is_stored_uncompressed_on_postgresql(pg_url: str) -> None:
    # Migration 0006: a live camera rewrites it with every chunk; compressing it cost PostgreSQL
    # three times the CPU of storing it. Down and up again, as a deployment rolling back would.
    from alembic import command
    from alembic.config import Config

    database = Database(pg_url)
    database.migrate()

    def storage() -> str:
        with database.engine.connect() as conn:
            return str(
                conn.exec_driver_sql(
                    "SELECT attstorage FROM pg_attribute "
                    "WHERE attrelid = 'analytics_state'::regclass AND attname = 'engine'"
                ).scalar()
            )

    try:
        assert storage() == "e"  # EXTERNAL: out of line, never compressed
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with database.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0005_chunk_rows_are_done")
        assert storage() == "x"  # EXTENDED: PostgreSQL's default for bytea
        database.migrate()
        assert storage() == "e"
    finally:
        database.dispose()


def test_a_database_at_the_head_starts_without_importing_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    probe = (
        "import sys; from storage.db import Database; Database(sys.argv[1]).migrate(); "
        "print('alembic' in sys.modules)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    # The first start creates the schema with Alembic; the next one only reads the revision.
    assert [r.stdout.strip() for r in runs] == ["True", "False"]


def test_writing_a_chunk_twice_stores_it_once(db: Database) -> None:
    video = a_video(db)
    frames = [FramePoses.of(i, i / 10, (640, 480), [a_pose(i / 100)] if i != 2 else []) for i in range(4)]
    for _ in range(2):  # a retried job writes the same chunk again
        with db.session() as s:
            poses.write_chunk(s, chunk(video.id, frames))
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PoseRow)) == 3
        assert s.scalar(select(func.count()).select_from(AnalysedFrame)) == 4
        stored = s.get(Video, video.id)
        assert (stored.frames_done, stored.frames_with_person) == (4, 3)
        assert stored.pose_s == pytest.approx(0.5)
        back = poses.read_frames(s, video.id, 0, 4, (640, 480))
    assert [len(f.poses) for f in back] == [1, 1, 0, 1]  # the empty frame is explicit
    assert np.array_equal(back[3].poses[0].landmarks_xyzv, frames[3].poses[0].landmarks_xyzv)
    assert np.array_equal(back[3].poses[0].world_xyz_m, frames[3].poses[0].world_xyz_m)


def test_a_retry_with_other_results_replaces_the_first_attempt(db: Database) -> None:
    video = a_video(db)
    first = [FramePoses.of(i, i / 10, (640, 480), [a_pose()]) for i in range(4)]
    retry = [FramePoses.of(i, i / 10, (640, 480), [a_pose()] if i % 2 else []) for i in range(4)]
    for frames in (first, retry):
        with db.session() as s:
            poses.write_chunk(s, chunk(video.id, frames))
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PoseRow)) == 2
        assert s.scalar(select(Chunk.attempts).where(Chunk.video_id == video.id)) == 2
        stored = s.get(Video, video.id)
        assert (stored.frames_done, stored.frames_with_person) == (4, 2)
        assert stored.pose_s == pytest.approx(0.5)


def test_track_ids_are_written_per_person(db: Database) -> None:
    video = a_video(db)
    frames = [FramePoses.of(i, i / 10, (640, 480), [a_pose(), a_pose(0.3)]) for i in range(2)]
    with db.session() as s:
        poses.write_chunk(s, chunk(video.id, frames))
    with db.session() as s:
        poses.set_track_ids(s, video.id, [(0, 0, 1), (0, 1, 2), (1, 0, 1), (1, 1, None)])
    with db.session() as s:
        rows = s.execute(
            select(PoseRow.seq, PoseRow.person, PoseRow.track_id).order_by(PoseRow.seq, PoseRow.person)
        )
        assert [tuple(r) for r in rows] == [(0, 0, 1), (0, 1, 2), (1, 0, 1), (1, 1, None)]


def test_track_ids_analysed_before_storing_are_written_with_the_rows(db: Database) -> None:
    video = a_video(db)
    frames = [FramePoses.of(i, i / 10, (640, 480), [a_pose(), a_pose(0.3)][: 2 - i]) for i in range(3)]
    track_ids = [(1, 2), (1,), ()]  # per frame, one id per person, as FrameOutcome.track_ids
    with db.session() as s:
        write = poses.ChunkWrite(video.id, 0, 0, 3, frames, pose_s=0.5, worker="test", track_ids=track_ids)
        poses.write_chunk(s, write)
    with db.session() as s:
        rows = s.execute(
            select(PoseRow.seq, PoseRow.person, PoseRow.track_id).order_by(PoseRow.seq, PoseRow.person)
        )
        assert [tuple(r) for r in rows] == [(0, 0, 1), (0, 1, 2), (1, 0, 1)]


def test_an_engine_kept_in_memory_is_used_only_while_the_stored_state_is_its_own(db: Database) -> None:
    video = a_video(db)
    engine = AnalyticsEngine(AnalyticsConfig(), detectors=[])
    with db.session() as s:
        saved = analytics_state.advance(s, video.id, 0, engine)
    with db.session() as s:
        assert analytics_state.load(s, video.id, saved).engine is engine  # not unpickled again
    # Another worker advanced the session meanwhile: its state, not the one kept, is the current.
    other = AnalyticsEngine(AnalyticsConfig(), detectors=[])
    other.last_t_s = 4.2
    with db.session() as s:
        analytics_state.advance(s, video.id, 1, other)
    with db.session() as s:
        loaded = analytics_state.load(s, video.id, saved).engine
    assert loaded is not engine and loaded is not None and loaded.last_t_s == 4.2


def test_analytics_cursor_is_compare_and_set(db: Database) -> None:
    video = a_video(db)
    engine = AnalyticsEngine(AnalyticsConfig(), detectors=[])
    event = Event(EventType.FALL, 1.0, 2.0, 1, 0.9, {"t_detected_s": 1.5})
    with db.session() as s:
        events.add_events(s, video.id, video.source_id, [event])
        analytics_state.advance(s, video.id, 0, engine)
    # A second job that also thought the cursor was at 0 must not write its events.
    with pytest.raises(analytics_state.CursorMoved), db.session() as s:
        events.add_events(s, video.id, video.source_id, [event])
        analytics_state.advance(s, video.id, 0, engine)
    with db.session() as s:
        assert len(events.list_events(s, video_id=video.id)) == 1
        cursor = analytics_state.load(s, video.id)
    assert cursor.next_chunk == 1 and not cursor.finished
    assert isinstance(cursor.engine, AnalyticsEngine)


def test_the_cursor_position_alone_is_read_without_the_engine(db: Database) -> None:
    video = a_video(db)
    engine = AnalyticsEngine(AnalyticsConfig(), detectors=[])
    with db.session() as s:
        assert analytics_state.next_chunk(s, video.id) == 0  # nothing analysed yet
        analytics_state.advance(s, video.id, 0, engine, new_next=3)  # a live session skipped 1-2
    with db.session() as s:
        assert analytics_state.next_chunk(s, video.id) == 3


def test_restart_clears_results_and_changes_run(db: Database) -> None:
    video = a_video(db)
    with db.session() as s:
        poses.write_chunk(s, chunk(video.id, [FramePoses.of(0, 0.0, (640, 480), [a_pose()])]))
    with db.session() as s:
        row = s.get(Video, video.id)
        old_run = row.run_token
        videos.restart(s, row, "/tmp/clip.mp4", "squat")
    with db.session() as s:
        row = s.get(Video, video.id)
        assert row.run_token != old_run and row.frames_done == 0 and row.exercise == "squat"
        assert s.scalar(select(func.count()).select_from(PoseRow)) == 0
        assert videos.current(s, video.id, old_run) is None

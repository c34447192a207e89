"""The whole spine on real clips: ingest -> Redis -> RQ -> MediaPipe -> SQL, embedded and with servers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from rq.job import Job
from sqlalchemy import func, select

from pipeline import keys
from pipeline.job_types import PoseChunkResult
from pipeline.sampler import FrameSampler
from pipeline.source import VideoFile, first_frame_shape
from posepipe import analyze as analysis
from posepipe.report import video_report
from posepipe.services import Services
from storage.models import AnalysedFrame, Chunk, EventRow, PoseRow, Video, VideoStatus
from workers import jobs, runtime
from workers.runtime import ThreadWorker, WorkerThreads

SINGLE_PERSON = "exercise/ex_squat_side_woman.mp4"  # 13.8 s, one person in every frame
MULTI_CHUNK = "adl_negatives/urfall_ds59_get_down_on_floor.mp4"  # 13.3 s: five chunks at 10 fps
FALL_WHILE_WALKING = "falls/urfall_ds04_fall_while_walking.mp4"  # 5.1 s: two chunks


def sampled_times(path: Path, fps: float) -> list[float]:
    """The frames the pipeline must analyse, found independently of it."""
    with VideoFile(path) as video:
        sampler = FrameSampler(fps)
        return [f.pts_s for f in video.frames() if sampler.take(f.pts_s)]


def analyse(services: Services, paths: list[Path], **options: object) -> list[analysis.Target]:
    options.setdefault("fps", services.settings.analysis_fps)
    opts = analysis.AnalyzeOptions(**options)  # type: ignore[arg-type]
    targets = [analysis.plan(services, str(p), opts) for p in paths]
    analysis.run(services, targets, opts)
    return targets


def analyse_in_background(
    services: Services, target: analysis.Target, opts: analysis.AnalyzeOptions
) -> threading.Thread:
    """`analysis.run` on a daemon thread: a test that fails while the analysis still waits (for a
    server the test has already taken down) must not leave a thread that keeps pytest from exiting."""
    runner = threading.Thread(target=analysis.run, args=(services, [target], opts), daemon=True)
    runner.start()
    return runner


def stored_rows(services: Services, video_id: int) -> list[tuple[int, int, bytes, bytes | None]]:
    with services.db.session() as s:
        rows = s.execute(
            select(PoseRow.seq, PoseRow.person, PoseRow.landmarks, PoseRow.world_landmarks)
            .where(PoseRow.video_id == video_id)
            .order_by(PoseRow.seq, PoseRow.person)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def stored_analysis(services: Services, video_id: int) -> tuple[list, list]:
    """Track ids of every pose row and every event: what analytics wrote for a video."""
    with services.db.session() as s:
        tracks = s.execute(
            select(PoseRow.seq, PoseRow.person, PoseRow.track_id)
            .where(PoseRow.video_id == video_id)
            .order_by(PoseRow.seq, PoseRow.person)
        ).all()
        found = s.execute(
            select(EventRow.type, EventRow.track_id, EventRow.t_start_s, EventRow.t_end_s, EventRow.data)
            .where(EventRow.video_id == video_id)
            .order_by(EventRow.t_start_s, EventRow.type)
        ).all()
        return [tuple(r) for r in tracks], [tuple(r) for r in found]


def clean_rows(make_settings, open_services, clip: Path) -> list:  # type: ignore[no-untyped-def]
    """The pose rows of an undisturbed embedded run of `clip`: what a faulty run must equal."""
    clean = open_services(make_settings())
    (reference,) = analyse(clean, [clip])
    return stored_rows(clean, reference.video_id)


def assert_same_as_clean_run(
    services: Services, video_id: int, clip: Path, expected_rows: list[tuple[int, int, bytes, bytes | None]]
) -> None:
    """Done, every sampled frame (10 fps) accounted for, the clean run's rows: none lost or doubled."""
    with services.db.session() as s:
        video = s.get(Video, video_id)
        assert video.status is VideoStatus.DONE, video.error
        assert video.frames_done == video.frames_total == len(sampled_times(clip, 10))
    assert stored_rows(services, video_id) == expected_rows


def test_embedded_mode_accounts_for_every_sampled_frame(
    make_settings, open_services, media_dir: Path
) -> None:
    services = open_services(make_settings())
    assert services.embedded
    clip = media_dir / SINGLE_PERSON
    expected = sampled_times(clip, 10)
    (target,) = analyse(services, [clip])
    with services.db.session() as s:
        video = s.get(Video, target.video_id)
        assert video.status is VideoStatus.DONE, video.error
        frames = s.execute(
            select(AnalysedFrame.seq, AnalysedFrame.t_s)
            .where(AnalysedFrame.video_id == video.id)
            .order_by(AnalysedFrame.seq)
        ).all()
        assert video.frames_total == video.frames_done == len(expected)
        assert video.chunks_total == s.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.video_id == video.id)
        )
    assert [seq for seq, _ in frames] == list(range(len(expected)))
    assert [round(t, 4) for _, t in frames] == [round(t, 4) for t in expected]
    assert video.frames_with_person >= 0.95 * len(expected)  # a single, fully visible person
    report = video_report(services.db, target)
    assert report.status == "done" and report.frames_analyzed == len(expected)
    assert report.fps_analyzed == pytest.approx(10.0, abs=0.2)
    assert set(report.document()) == {  # the keys of `analyze --json`, unchanged by schema 2
        "video_id",
        "path",
        "sha256",
        "status",
        "error",
        "duration_s",
        "fps_analyzed",
        "frames_analyzed",
        "frames_with_person",
        "events",
        "reps",
        "kind",
        "people",
    }
    assert report.kind == "video"


def test_an_embedded_worker_whose_round_fails_starts_again(
    make_settings, open_services, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An embedded worker thread outlives a failed round of RQ's worker loop (here RQ refusing
    its registration once, as CI once saw): the analysis completes instead of waiting for ever."""
    refused: list[str] = []
    register_birth = ThreadWorker.register_birth

    def refuse_once(self: ThreadWorker) -> None:
        if not refused:
            refused.append(self.name)
            raise ValueError(f"There exists an active worker named {self.name!r} already")
        register_birth(self)

    monkeypatch.setattr(ThreadWorker, "register_birth", refuse_once)
    services = open_services(make_settings())
    opts = analysis.AnalyzeOptions(fps=10, workers=1)
    clip = media_dir / FALL_WHILE_WALKING
    target = analysis.plan(services, str(clip), opts)
    runner = analyse_in_background(services, target, opts)
    runner.join(timeout=120)
    assert refused, "the worker's registration was never attempted"
    assert not runner.is_alive(), "the analysis waited for a worker thread that had died"
    with services.db.session() as s:
        video = s.get(Video, target.video_id)
        assert video.status is VideoStatus.DONE, video.error
        assert video.frames_done == video.frames_total == len(sampled_times(clip, 10))


def test_stopping_embedded_workers_wakes_the_idle_ones(
    make_settings, open_services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle worker thread waits for work in a blocking pop that would outlast the test (here
    an hour): `stop()` wakes it instead of waiting, and leaves no wake-up queue behind."""
    monkeypatch.setattr(runtime, "THREAD_IDLE_S", 3600)
    services = open_services(make_settings())
    workers = WorkerThreads([services.worker_context() for _ in range(2)])
    workers.start()
    idle = threading.Event()

    def both_idle() -> None:
        while len([w for w in Worker.all(connection=services.redis) if w.get_state() == "idle"]) < 2:
            threading.Event().wait(0.05)
        idle.set()

    threading.Thread(target=both_idle, daemon=True).start()
    assert idle.wait(120), "the worker threads never started waiting for work"
    stopper = threading.Thread(target=workers.stop, daemon=True)
    stopper.start()
    stopper.join(60)
    assert not stopper.is_alive(), "stop() waited for the idle workers' blocking pop to time out"
    assert not any(t.is_alive() for t in workers._threads)
    assert [q.name for q in Queue.all(connection=services.redis) if ":wake:" in q.name] == []
    assert Worker.all(connection=services.redis) == []  # both ended their RQ worker (registered death)


def test_warming_the_embedded_worker_up_stores_the_same_rows(
    make_settings, open_services, media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker poses the first chunk's reset frame while the ingester decodes (WorkerThreads
    warm-up): MediaPipe sees the same frames in the same order, so the rows are the same bytes
    as a run without it."""
    clip = media_dir / FALL_WHILE_WALKING
    shapes: list[tuple[int, ...] | None] = []

    def recorded(path: str, max_side: int) -> tuple[int, ...] | None:
        shapes.append(first_frame_shape(path, max_side))
        return shapes[-1]

    monkeypatch.setattr(analysis, "first_frame_shape", recorded)
    warmed = open_services(
        make_settings(data_dir=tmp_path / "warmed", database_url=f"sqlite:///{tmp_path / 'warmed.db'}")
    )
    (target,) = analyse(warmed, [clip])
    assert len(shapes) == 1 and shapes[0] is not None and len(shapes[0]) == 3
    monkeypatch.setattr(analysis, "first_frame_shape", lambda path, max_side: None)
    assert_same_as_clean_run(warmed, target.video_id, clip, clean_rows(make_settings, open_services, clip))


def test_two_workers_store_the_same_rows_as_one(
    make_settings, open_services, media_dir, redis_url, pg_admin, tmp_path
) -> None:
    from tests.services import fresh_pg_database

    clips = [media_dir / MULTI_CHUNK, media_dir / FALL_WHILE_WALKING]
    results = {}
    for workers in (1, 2):
        redis.Redis.from_url(redis_url).flushdb()
        with fresh_pg_database(pg_admin) as pg_url:
            services = open_services(
                make_settings(redis_url=redis_url, database_url=pg_url, max_queued_mb=24)
            )
            assert not services.embedded
            targets = analyse(services, clips, workers=workers)
            chunk_workers: set[str] = set()
            estimators: dict[str, set[str]] = {}
            analysed_here = []
            results[workers] = []
            for target in targets:
                with services.db.session() as s:
                    video = s.get(Video, target.video_id)
                    assert video.status is VideoStatus.DONE, video.error
                    chunk_workers |= set(s.scalars(select(Chunk.worker).where(Chunk.video_id == video.id)))
                for idx in range(video.chunks_total):
                    job = Job.fetch(
                        keys.pose_job_id(video.id, video.run_token, idx), connection=services.redis
                    )
                    value = job.return_value()
                    assert isinstance(value, PoseChunkResult), value
                    estimators.setdefault(value.worker, set()).add(value.estimator_id)
                    analysed_here.append(value.analysed_here)
                results[workers].append(
                    (stored_rows(services, target.video_id), stored_analysis(services, target.video_id))
                )
            services.close()
        assert len(chunk_workers) == workers  # with two workers, both took chunks
        # One model per worker process for all of its jobs.
        assert all(len(ids) == 1 for ids in estimators.values()), estimators
        assert len(estimators) == workers
        if workers == 1:
            # In order, each pose job finds analytics at its chunk and analyses it itself.
            assert all(analysed_here), analysed_here
    (floor_rows, _), (fall_rows, (_, fall_events)) = results[1]
    # The test compares real poses and a real event, not empty lists.
    assert len(floor_rows) > 50 and len(fall_rows) > 20
    assert "fall" in {e[0] for e in fall_events}
    assert results[2] == results[1]


def test_a_chunk_whose_analysis_fails_in_its_pose_job_is_analysed_by_an_analytics_job(
    make_settings, open_services, media_dir, tmp_path, monkeypatch, caplog
) -> None:
    clip = media_dir / FALL_WHILE_WALKING
    clean = open_services(make_settings())
    (reference,) = analyse(clean, [clip])
    expected = stored_analysis(clean, reference.video_id)
    assert "fall" in {e[0] for e in expected[1]}

    # The last chunk's analysis fails once: by then the ingester's own analytics job has run,
    # so only the pose job's fallback can get the chunk analysed (the reconciler, which
    # would also find the stalled run, is kept out of the way).
    failed: list[int] = []
    real = jobs.analyse_frames

    def fails_once_on_the_last_chunk(session, engine, video_id, source_id, frames, *rest):  # type: ignore[no-untyped-def]
        if not failed and frames and frames[0].seq >= services.settings.chunk_frames:
            failed.append(frames[0].seq)
            raise RuntimeError("analysis broke once")
        return real(session, engine, video_id, source_id, frames, *rest)

    monkeypatch.setattr(jobs, "analyse_frames", fails_once_on_the_last_chunk)
    monkeypatch.setattr(analysis, "RECONCILE_S", 1e9)
    services = open_services(make_settings(database_url=f"sqlite:///{tmp_path / 'again.db'}"))
    opts = analysis.AnalyzeOptions(fps=services.settings.analysis_fps)
    target = analysis.plan(services, str(clip), opts)
    runner = analyse_in_background(services, target, opts)
    runner.join(180)
    assert not runner.is_alive(), "the chunk whose analysis failed was never analysed"
    with services.db.session() as s:
        video = s.get(Video, target.video_id)
        assert video.status is VideoStatus.DONE, video.error
        assert video.chunks_total == 2
    assert failed == [services.settings.chunk_frames]
    assert "video=1 analysing chunk 1 after posing failed; queueing it" in caplog.text
    # Nothing lost, nothing doubled: the same track ids and events as the undisturbed run.
    assert stored_analysis(services, target.video_id) == expected


def test_bad_files_fail_alone_and_the_batch_completes(
    make_settings, open_services, media_dir, tmp_path
) -> None:
    services = open_services(make_settings())
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((media_dir / SINGLE_PERSON).read_bytes()[:20_000])
    good = media_dir / "falls" / "urfall_ds22_fall_toward_camera.mp4"
    targets = analyse(services, [text, good, truncated, tmp_path / "missing.mp4"])
    reports = [video_report(services.db, t) for t in targets]
    assert [r.status for r in reports] == ["failed", "done", "failed", "failed"]
    assert "not a readable media file" in reports[0].error
    assert "truncated.mp4" in reports[2].error
    assert "does not exist" in reports[3].error
    assert reports[1].frames_analyzed == len(sampled_times(good, 10))


def test_same_content_is_reused_unless_forced(make_settings, open_services, media_dir, tmp_path) -> None:
    services = open_services(make_settings())
    clip = media_dir / "falls" / "urfall_ds13_fall_from_chair_2persons.mp4"
    copy = tmp_path / "renamed copy.mp4"
    copy.write_bytes(clip.read_bytes())
    (first,) = analyse(services, [clip])
    rows = stored_rows(services, first.video_id)
    (again,) = analyse(services, [copy])
    assert again.action is analysis.Action.CACHED and again.video_id == first.video_id
    (forced,) = analyse(services, [copy], force=True)
    assert forced.action is analysis.Action.INGEST and forced.video_id == first.video_id
    assert forced.run != first.run
    assert stored_rows(services, first.video_id) == rows  # same content, same poses, stored once
    (other_fps,) = analyse(services, [clip], fps=5.0)
    assert other_fps.action is analysis.Action.INGEST and other_fps.video_id != first.video_id

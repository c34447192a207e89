"""One file across several ingest jobs: the parts put the same frames, seqs and chunks as one ingester,
a part killed and retried neither doubles nor loses a frame, and a file that cannot be cut, or does not
decode as its packets say, is ingested in one pass. The last tests run the whole pipeline (pose,
analytics) on a long real clip and compare every row and event with one ingester's."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from rq.job import Job
from sqlalchemy import select

from pipeline import keys
from pipeline.framestore import FrameStore
from pipeline.ingest import IngestPlan, SegmentMismatch, Span, ingest_file
from pipeline.job_types import ChunkJob, IngestResult, SegmentJob
from pipeline.payload import FrameEncoding
from pipeline.queue import JobQueue
from pipeline.segments import SegmentPlan, predict
from pipeline.source import VideoFile
from posepipe import analyze as analysis
from storage.models import AnalysedFrame, Chunk, Video, VideoStatus
from tests import media_gen
from tests.test_pipeline import FALL_WHILE_WALKING, analyse, stored_analysis, stored_rows
from workers import ingest as ingest_job
from workers.runtime import WorkerThreads

VIDEO_ID = 3
CHUNK = 8


@pytest.fixture
def parts(redis_url: str) -> tuple[FrameStore, JobQueue]:
    client = redis.Redis.from_url(redis_url)
    return FrameStore(client, ttl_s=600, encoding=FrameEncoding.YUV420), JobQueue(
        client, job_timeout_s=60, retries=1
    )


def ingest_plan(run: str, fps: float, window_bytes: int = 10**9) -> IngestPlan:
    return IngestPlan(VIDEO_ID, run, fps, CHUNK, window_bytes, frame_max_side=0)


def one_pass(path: Path, store: FrameStore, queue: JobQueue, fps: float) -> tuple[dict, list]:
    with VideoFile(path) as source:
        result = ingest_file(source, ingest_plan("one", fps), store, queue)
    return stored_frames(store, "one", result.frames_total), pose_jobs(queue, "one")


def span_of(plan: SegmentPlan, seqs: range, yield_when_full: bool = False) -> Span:
    if seqs.start == 0:
        return Span(None, 0, None, 0, seqs.stop, plan.sampled_pts_s, yield_when_full)
    key = plan.start_for(seqs.start)
    return Span(
        key.pts, key.first_seq, key.sampler, seqs.start, seqs.stop, plan.sampled_pts_s, yield_when_full
    )


def in_parts(
    path: Path, store: FrameStore, queue: JobQueue, fps: float, parts: int
) -> tuple[dict, list, list]:
    """Each part from its own VideoFile, the last first: no part relies on one before it."""
    with VideoFile(path) as source:
        plan = predict(source.packet_times(), fps, CHUNK)
    spans = plan.spans(parts, min_part_s=2.0)
    for seqs in reversed(spans):
        with VideoFile(path) as source:
            ingest_file(source, ingest_plan("parts", fps), store, queue, span=span_of(plan, seqs))
    return stored_frames(store, "parts", plan.frames_total), pose_jobs(queue, "parts"), spans


def stored_frames(store: FrameStore, run: str, count: int) -> dict[int, bytes | None]:
    frames = {seq: store.redis.get(keys.frame(VIDEO_ID, run, seq)) for seq in range(count + 2)}
    assert frames[count] is None and frames[count + 1] is None  # nothing past the end
    assert store.queued(VIDEO_ID, run) == count  # each frame counted once
    return frames


def pose_jobs(queue: JobQueue, run: str) -> list[tuple]:
    specs: list[ChunkJob] = [j.args[0] for j in queue.pose.get_jobs()]
    return sorted((s.chunk_idx, s.seq_from, s.seq_to) for s in specs if s.run == run)


def vfr_times(count: int) -> list[float]:
    """Frame gaps of 20-60 ms, irregular: a phone's variable frame rate."""
    times, t = [], 0.0
    for i in range(count):
        times.append(round(t, 3))
        t += (20 + (i * 37) % 41) / 1000
    return times


@pytest.mark.parametrize(
    ("name", "fps", "options"),
    [
        ("b-frames", 10.0, {"frames": 600, "fps": 30, "gop": 15, "b_frames": 2}),
        ("b-frames, every frame", 0.0, {"frames": 300, "fps": 30, "gop": 20, "b_frames": 3}),
        ("b-frames, 7 fps of 25", 7.0, {"frames": 500, "fps": 25, "gop": 12, "b_frames": 2}),
        ("vfr", 10.0, {"frames": 0, "pts_s": vfr_times(500), "gop": 25, "b_frames": 0}),
    ],
)
def test_parts_store_the_same_frames_seqs_and_chunks_as_one_ingester(
    parts, tmp_path: Path, name: str, fps: float, options: dict
) -> None:
    store, queue = parts
    path = media_gen.gop_video(tmp_path / "long.mp4", **options)
    frames_one, jobs_one = one_pass(path, store, queue, fps)
    frames_parts, jobs_parts, spans = in_parts(path, store, queue, fps, parts=4)
    assert len(spans) == 4, spans
    # A part's first chunk does not start at its keyframe's first frame (it is the one before's).
    assert any(span_of_start % CHUNK == 0 for span_of_start in (s.start for s in spans))
    assert len(frames_one) > 50 and all(frames_one[s] for s in range(len(frames_one) - 2))
    assert frames_parts == frames_one  # every payload, byte for byte, under the same seq
    assert jobs_parts == jobs_one  # (chunk, seq_from, seq_to) of every pose job


def test_a_part_starts_with_the_sampler_as_one_ingester_left_it(tmp_path: Path) -> None:
    """At 10 fps of 30, which frame after a keyframe is sampled depends on the frames before it."""
    path = media_gen.gop_video(tmp_path / "long.mp4", frames=300, fps=30, gop=16, b_frames=2)
    with VideoFile(path) as source:
        plan = predict(source.packet_times(), 10.0, CHUNK)
    offsets = set()
    for key in plan.keyframes[1:]:
        # The keyframe's own frame is the first sampled at or after it, or the one after that.
        offsets.add(round((plan.sampled_pts_s[key.first_seq] - key.pts_s) * 30))
        assert key.sampler.last_pts_s == plan.sampled_pts_s[key.first_seq - 1]
    assert offsets == {0, 1, 2}


def test_a_file_with_one_keyframe_is_one_part(parts, tmp_path: Path) -> None:
    path = media_gen.gop_video(tmp_path / "long.mp4", frames=600, fps=30, gop=1000)
    with VideoFile(path) as source:
        plan = predict(source.packet_times(), 10.0, CHUNK)
    assert len(plan.keyframes) == 1
    assert plan.spans(4, min_part_s=2.0) == [range(0, plan.frames_total)]


def test_parts_are_never_shorter_than_the_minimum(tmp_path: Path) -> None:
    path = media_gen.gop_video(tmp_path / "long.mp4", frames=600, fps=30, gop=15)  # 20 s
    with VideoFile(path) as source:
        plan = predict(source.packet_times(), 10.0, CHUNK)
    assert len(plan.spans(8, min_part_s=6.0)) == 3
    assert len(plan.spans(8, min_part_s=11.0)) == 1
    for seqs in plan.spans(8, min_part_s=6.0):
        assert plan.sampled_pts_s[seqs.stop - 1] - plan.sampled_pts_s[seqs.start] >= 5.9


def test_a_killed_part_retried_neither_doubles_nor_loses_a_frame(parts, tmp_path: Path) -> None:
    store, queue = parts
    path = media_gen.gop_video(tmp_path / "long.mp4", frames=600, fps=30, gop=15)
    frames_one, jobs_one = one_pass(path, store, queue, 10.0)
    with VideoFile(path) as source:
        plan = predict(source.packet_times(), 10.0, CHUNK)
    first, second = plan.spans(2, min_part_s=2.0)
    put = store.put
    calls = 0

    def dies_after_some_frames(video_id, run, frame):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls > CHUNK * 2 + 3:  # two chunks queued, the third half put
            raise KeyboardInterrupt("SIGKILL")
        return put(video_id, run, frame)

    store.put = dies_after_some_frames  # type: ignore[method-assign]
    with VideoFile(path) as source, pytest.raises(KeyboardInterrupt):
        ingest_file(source, ingest_plan("parts", 10.0), store, queue, span=span_of(plan, second))
    store.put = put  # type: ignore[method-assign]
    assert len(pose_jobs(queue, "parts")) == 2
    queued = {j.args[0].chunk_idx for j in queue.pose.get_jobs() if j.args[0].run == "parts"}
    for seqs in (second, first):  # the retry, then the other part
        with VideoFile(path) as source:
            ingest_file(
                source,
                ingest_plan("parts", 10.0),
                store,
                queue,
                skip_chunk=lambda idx: idx in queued,  # RQ still holds those jobs
                span=span_of(plan, seqs),
            )
    assert stored_frames(store, "parts", plan.frames_total) == frames_one
    assert pose_jobs(queue, "parts") == jobs_one


def test_a_part_on_a_worker_stops_at_a_full_window_and_goes_on_later(parts, tmp_path: Path) -> None:
    store, queue = parts
    path = media_gen.gop_video(tmp_path / "long.mp4", frames=600, fps=30, gop=15)
    frames_one, jobs_one = one_pass(path, store, queue, 10.0)
    with VideoFile(path) as source:
        plan = predict(source.packet_times(), 10.0, CHUNK)
    frame_bytes = len(frames_one[0])
    seqs = range(0, plan.frames_total)
    stops: list[int] = []
    while True:
        with VideoFile(path) as source:
            result: IngestResult = ingest_file(
                source,
                ingest_plan("parts", 10.0, window_bytes=3 * CHUNK * frame_bytes),
                store,
                queue,
                span=span_of(plan, seqs, yield_when_full=True),
            )
        if result.resume_seq is None:
            break
        stops.append(result.resume_seq)
        assert store.queued(VIDEO_ID, "parts") <= 3 * CHUNK  # never over the window
        # Workers pose what is queued: release it, as a pose job does.
        store.release(VIDEO_ID, "parts", range(seqs.start, result.resume_seq))
        seqs = range(result.resume_seq, plan.frames_total)
    assert stops and all(s % CHUNK == 0 for s in stops) and stops == sorted(stops)
    assert pose_jobs(queue, "parts") == jobs_one
    for seq in range(stops[-1], plan.frames_total):  # what is still queued is one ingester's
        assert store.redis.get(keys.frame(VIDEO_ID, "parts", seq)) == frames_one[seq]


def test_a_part_that_does_not_decode_as_its_packets_say_stores_nothing_wrong(parts, tmp_path: Path) -> None:
    """A broken packet: the decoder drops its frame, which the packets promised."""
    store, queue = parts
    good = media_gen.gop_video(tmp_path / "long.mp4", frames=900, fps=30, gop=30)
    broken = media_gen.damage_middle(good, tmp_path / "broken.mp4", fraction=0.3, length=150)
    with VideoFile(broken) as source:
        plan = predict(source.packet_times(), 0.0, CHUNK)
    assert plan.frames_total == 900
    spans = plan.spans(3, min_part_s=2.0)
    with VideoFile(broken) as source, pytest.raises(SegmentMismatch, match="packets"):
        ingest_file(source, ingest_plan("parts", 0.0), store, queue, span=span_of(plan, spans[0]))
    assert source.decode_errors == 1
    stored = [s for s in range(900) if store.redis.exists(keys.frame(VIDEO_ID, "parts", s))]
    # Only frames before the broken one, whose seqs are sure.
    assert stored == list(range(len(stored))) and len(stored) < spans[0].stop


# --- the whole pipeline -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The walking fall clip eight times over (41 s, 320 px, a keyframe every 0.5 s, B-frames)."""
    out = tmp_path_factory.mktemp("long") / "fall_x8.mp4"
    return media_gen.looped(media_dir / FALL_WHILE_WALKING, out, loops=8, gop=15)


def video_rows(services, video_id: int) -> tuple:  # type: ignore[no-untyped-def]
    with services.db.session() as s:
        video = s.get(Video, video_id)
        assert video.status is VideoStatus.DONE, video.error
        frames = s.execute(
            select(AnalysedFrame.seq, AnalysedFrame.t_s)
            .where(AnalysedFrame.video_id == video_id)
            .order_by(AnalysedFrame.seq)
        ).all()
        chunks = s.execute(
            select(Chunk.idx, Chunk.seq_from, Chunk.seq_to)
            .where(Chunk.video_id == video_id)
            .order_by(Chunk.idx)
        ).all()
        totals = (video.frames_total, video.chunks_total, video.frames_done, video.frames_with_person)
    return totals, [tuple(f) for f in frames], [tuple(c) for c in chunks], stored_rows(services, video_id)


def test_a_long_file_in_parts_gives_one_ingesters_rows_and_events(
    make_settings, open_services, long_clip: Path, tmp_path: Path
) -> None:
    results = {}
    for label, min_s in (("one ingester", 1000.0), ("parts", 8.0)):
        services = open_services(
            make_settings(
                database_url=f"sqlite:///{tmp_path / (label + '.db')}",
                segment_min_s=min_s,
                workers_per_segment=1,
            )
        )
        (target,) = analyse(services, [long_clip], workers=3)
        jobs = services.redis.smembers(keys.segment_jobs(target.video_id, target.run))
        results[label] = (
            video_rows(services, target.video_id),
            stored_analysis(services, target.video_id),
            len(jobs),
        )
    one, in_parts = results["one ingester"], results["parts"]
    assert one[2] == 0 and in_parts[2] == 2  # three parts: two queued, one by the ingester itself
    (totals, frames, chunks, rows), (_tracks, events) = one[0], one[1]
    assert totals[0] == len(frames) > 400 and totals[1] == len(chunks) > 12 and len(rows) > 300
    assert [e[0] for e in events].count("fall") >= 4  # a fall in most of the eight loops
    assert in_parts[:2] == one[:2]


def test_a_file_that_does_not_decode_as_its_packets_say_is_analysed_in_one_pass(
    make_settings, open_services, tmp_path: Path
) -> None:
    good = media_gen.gop_video(tmp_path / "long.mp4", frames=900, fps=30, gop=30)
    broken = media_gen.damage_middle(good, tmp_path / "broken.mp4", fraction=0.3, length=150)
    results = {}
    for label, min_s in (("one ingester", 1000.0), ("parts", 6.0)):
        services = open_services(
            make_settings(
                database_url=f"sqlite:///{tmp_path / (label + '.db')}",
                segment_min_s=min_s,
                workers_per_segment=1,
            )
        )
        (target,) = analyse(services, [broken], workers=2)
        with services.db.session() as s:
            run = s.get(Video, target.video_id).run_token
        results[label] = video_rows(services, target.video_id)
        off = services.redis.get(keys.segments_off(target.video_id))
        assert (off is not None) == (label == "parts")
        assert (run != target.run) == (label == "parts")  # started again as a new run
    assert results["parts"] == results["one ingester"]
    assert results["parts"][0][0] == 300  # 30 s at 10 fps: as many as one ingester finds


def second_part_queued(make_settings, open_services, long_clip: Path, redis_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """One ingester's rows and analysis of the long clip (the reference); then, on a real Redis,
    a run of it cut in two parts, part 0 ingested here and part 1's job queued, not run:
    (expected, services, opts, target, worker context, part 1's job id)."""
    reference = open_services(make_settings(segment_min_s=1000.0))
    (clean,) = analyse(reference, [long_clip], workers=2)
    expected = video_rows(reference, clean.video_id), stored_analysis(reference, clean.video_id)
    services = open_services(
        make_settings(
            redis_url=redis_url,
            database_url=f"sqlite:///{tmp_path / 'parts.db'}",
            segment_min_s=15.0,
            workers_per_segment=1,
        )
    )
    opts = analysis.AnalyzeOptions(fps=10.0, workers=0)
    target = analysis.plan(services, str(long_clip), opts)
    assert target.video_id is not None and target.run is not None
    ctx = services.worker_context()
    ingest_job.run_ingest(ctx, target.video_id, target.run, pose_workers=2)  # part 0 here, part 1 queued
    (job_id,) = [j.decode() for j in services.redis.smembers(keys.segment_jobs(target.video_id, target.run))]
    return expected, services, opts, target, ctx, job_id


def test_a_killed_segment_job_is_retried_without_loss_or_duplicates(
    make_settings, open_services, long_clip: Path, redis_url: str, tmp_path: Path, monkeypatch
) -> None:
    """On a real Redis: the ingester queues the second part and decodes the first; a worker dies in
    the second part after queueing some chunks; its retry, and the job RQ still holds, finish it."""
    expected, services, opts, target, ctx, job_id = second_part_queued(
        make_settings, open_services, long_clip, redis_url, tmp_path
    )
    job = Job.fetch(job_id, connection=services.redis)
    part: SegmentJob = job.args[0]
    seq_from, seq_to = part.seq_from, part.seq_to
    pose_before = len(ctx.queue.pose.get_job_ids())

    put = ctx.frames.put
    calls = 0

    def killed_mid_chunk(video_id, run, frame):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls > 2 * services.settings.chunk_frames + 5:
            raise KeyboardInterrupt("SIGKILL")
        return put(video_id, run, frame)

    monkeypatch.setattr(ctx.frames, "put", killed_mid_chunk)
    with pytest.raises(KeyboardInterrupt):
        ingest_job.run_segment(ctx, target.video_id, target.run, seq_from, seq_to)
    monkeypatch.setattr(ctx.frames, "put", put)
    assert len(ctx.queue.pose.get_job_ids()) == pose_before + 2
    with services.db.session() as s:
        assert s.get(Video, target.video_id).ingest_finished_at is None  # the part never finished
    ingest_job.run_segment(ctx, target.video_id, target.run, seq_from, seq_to)  # the retry
    # The pose workers now also run the segment job RQ still holds: a third pass over the part.
    workers = WorkerThreads([services.worker_context() for _ in range(2)])
    workers.start()
    try:
        analysis.run(
            services,
            [analysis.Target(str(long_clip), analysis.Action.ATTACH, target.video_id, target.run)],
            opts,
        )
    finally:
        workers.stop()
    assert Job.fetch(job_id, connection=services.redis).get_status() == "finished"
    assert (video_rows(services, target.video_id), stored_analysis(services, target.video_id)) == expected


def test_a_lost_segment_job_is_found_and_its_part_ingested_again(
    make_settings, open_services, long_clip: Path, redis_url: str, tmp_path: Path, monkeypatch
) -> None:
    """The queued part's job vanishes (its worker died before starting it, and RQ lost it): the
    run is not finished, nobody holds its lease and no part job will run, so `analyze`'s reconciler
    resumes the ingest, which queues the missing part again."""
    expected, services, opts, target, ctx, job_id = second_part_queued(
        make_settings, open_services, long_clip, redis_url, tmp_path
    )
    Job.fetch(job_id, connection=services.redis).delete()
    assert not ingest_job.segments_alive(services.redis, target.video_id, target.run)
    monkeypatch.setattr(analysis, "RECONCILE_S", 0.5)
    workers = WorkerThreads([services.worker_context() for _ in range(2)])
    workers.start()
    try:
        analysis.run(
            services,
            [analysis.Target(str(long_clip), analysis.Action.ATTACH, target.video_id, target.run)],
            opts,
        )
    finally:
        workers.stop()
    assert Job.fetch(job_id, connection=services.redis).get_status() == "finished"  # queued again, and run
    assert (video_rows(services, target.video_id), stored_analysis(services, target.video_id)) == expected


def test_a_part_on_a_worker_with_camera_chunks_waiting_stops_at_its_next_chunk(parts, tmp_path: Path) -> None:
    """Live frames go stale: a worker decoding a part hands it back after each chunk while they wait."""
    store, queue = parts
    path = media_gen.gop_video(tmp_path / "long.mp4", frames=300, fps=30, gop=15)
    frames_one, jobs_one = one_pass(path, store, queue, 10.0)
    with VideoFile(path) as source:
        plan = predict(source.packet_times(), 10.0, CHUNK)
    seqs, stops = range(0, plan.frames_total), []
    while True:
        with VideoFile(path) as source:
            result = ingest_file(
                source,
                ingest_plan("parts", 10.0),
                store,
                queue,
                span=span_of(plan, seqs, yield_when_full=True),
                other_work=lambda: True,
            )
        if result.resume_seq is None:
            break
        stops.append(result.resume_seq)
        seqs = range(result.resume_seq, plan.frames_total)
    assert stops == list(range(CHUNK, plan.frames_total, CHUNK))  # one chunk a job
    assert stored_frames(store, "parts", plan.frames_total) == frames_one
    assert pose_jobs(queue, "parts") == jobs_one

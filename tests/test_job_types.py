"""Every job is queued with one typed argument and names a function that takes it (issue 20, item 4)."""

from __future__ import annotations

import importlib
import inspect
import typing

import fakeredis
import pytest
from rq.job import Job

from pipeline import job_types
from pipeline.job_types import ChunkJob, JobResult, RunJob, SegmentJob
from pipeline.queue import JobQueue


@pytest.fixture
def queue() -> JobQueue:
    return JobQueue(fakeredis.FakeStrictRedis(), job_timeout_s=60, retries=1)


def _queued(queue: JobQueue) -> list[Job]:
    return [
        queue.enqueue_pose(7, "r1", 2, 64, 96),
        queue.enqueue_analytics(7, "r1"),
        queue.enqueue_ingest(7, "r1"),
        queue.enqueue_segment(7, "r1", 320, 640),
        queue.enqueue_live(8, "s1", 3, 9, 12),
        queue.enqueue_live_finish(8, "s1"),
    ]


def test_each_job_carries_one_typed_argument_read_back_by_name(queue: JobQueue) -> None:
    jobs = [Job.fetch(j.id, connection=queue.redis) for j in _queued(queue)]
    assert [j.args for j in jobs] == [
        (ChunkJob(7, "r1", 2, 64, 96),),
        (RunJob(7, "r1"),),
        (RunJob(7, "r1"),),
        (SegmentJob(7, "r1", 320, 640),),
        (ChunkJob(8, "s1", 3, 9, 12),),
        (RunJob(8, "s1"),),
    ]
    assert all(j.kwargs == {} for j in jobs)
    assert jobs[0].args[0].seqs == range(64, 96)


def test_each_job_function_takes_its_argument_type_and_answers_a_job_result(queue: JobQueue) -> None:
    for job in _queued(queue):
        module, name = job.func_name.rsplit(".", 1)
        func = getattr(importlib.import_module(module), name)
        hints = typing.get_type_hints(func, vars(job_types))
        (param,) = inspect.signature(func).parameters
        assert isinstance(job.args[0], hints[param]), job.func_name
        assert issubclass(hints["return"], JobResult), job.func_name

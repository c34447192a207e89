"""The typed contract of every RQ job: what it is given and what it answers.

Owns the job arguments (one frozen dataclass per job, the job's single argument) and the job
results (one frozen dataclass per job, stored by RQ as the job's return value). pipeline.queue
builds the arguments and workers' jobs take them, so neither side depends on the order of
positional arguments, and the failure callback reads a field by name, not `job.args[3]`.
RQ pickles both; a worker and the process that queued the job run the same release.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunJob:
    """A job about one run of a video (a file's analysis, or a camera session)."""

    video_id: int
    run: str


@dataclass(frozen=True)
class ChunkJob(RunJob):
    """Pose (and analyse) one chunk: frames [seq_from, seq_to) of the run."""

    chunk_idx: int
    seq_from: int
    seq_to: int

    @property
    def seqs(self) -> range:
        return range(self.seq_from, self.seq_to)


@dataclass(frozen=True)
class SegmentJob(RunJob):
    """Decode one part of a long file, frames [seq_from, seq_to), and queue its chunks."""

    seq_from: int
    seq_to: int


@dataclass(frozen=True)
class IngestResult:
    """One ingester's pass over a file or a part of it."""

    frames_total: int
    chunks_total: int
    decode_errors: int
    ingest_s: float
    wait_s: float
    payload_bytes: int
    # A span that stopped at a full window: the seq (a chunk's first) to go on from.
    resume_seq: int | None = None


@dataclass(frozen=True, kw_only=True)
class JobResult:
    """What every job answers. `skipped` says why it did nothing (None when it did its work)."""

    video_id: int
    skipped: str | None = None


@dataclass(frozen=True, kw_only=True)
class PoseChunkResult(JobResult):
    chunk_idx: int
    frames: int = 0
    frames_with_person: int = 0
    pose_s: float = 0.0
    worker: str = ""
    # Identifies the model object that posed the chunk: equal ids across jobs of one
    # worker process prove the model was built once, not once per job.
    estimator_id: str = ""
    # True when this job also analysed the chunk (analytics had reached it), so no analytics
    # job was queued for it.
    analysed_here: bool = False


@dataclass(frozen=True, kw_only=True)
class AnalyseResult(JobResult):
    chunks_analysed: int = 0
    finished: bool = False


@dataclass(frozen=True, kw_only=True)
class IngestJobResult(JobResult):
    """A file's (or a part's) decoding; `ingest` is None when another ingester had it."""

    seq_from: int = 0
    ingest: IngestResult | None = None


@dataclass(frozen=True, kw_only=True)
class LiveChunkResult(JobResult):
    chunk_idx: int
    frames: int = 0
    events: int = 0
    lag_s: float = 0.0
    # Frames not posed, and why (pipeline.live's drop causes: stale, thinned, expired).
    dropped: int = 0
    cause: str | None = None


@dataclass(frozen=True, kw_only=True)
class LiveFinishResult(JobResult):
    events_flushed: int = 0

"""Analysed frames and pose rows: idempotent chunk writes, ordered reads, track ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from pose.types import FramePoses, Hand, HandSide, Pose
from storage.models import AnalysedFrame, Chunk, PoseRow, Video, utcnow

# The mapped tables as Core tables (an ORM class's `__table__` is annotated as a FromClause):
# bulk inserts and the executemany update of track ids go through Core, by column name.
_FRAMES = cast(Table, AnalysedFrame.__table__)
_POSES = cast(Table, PoseRow.__table__)
_CHUNKS = cast(Table, Chunk.__table__)
_VIDEOS = cast(Table, Video.__table__)
# Built once (a live camera writes several chunks a second; building a statement costs about as
# much CPU as running it). The counters' UPDATE is Core: callers holding the Video object read
# no counter of it afterwards, so an ORM-enabled UPDATE keeping it in step would be pure cost.
_PREVIOUS = select(Chunk.pose_s, Chunk.attempts).where(
    Chunk.video_id == bindparam("video_id"), Chunk.idx == bindparam("idx")
)
_INSERT_CHUNK = _CHUNKS.insert()
_COUNT_CHUNK = (
    update(_VIDEOS)
    .where(_VIDEOS.c.id == bindparam("video_id_"))
    .values(
        frames_done=_VIDEOS.c.frames_done + bindparam("frames"),
        frames_with_person=_VIDEOS.c.frames_with_person + bindparam("with_person"),
        pose_s=_VIDEOS.c.pose_s + bindparam("seconds"),
    )
)


@dataclass(frozen=True)
class ChunkWrite:
    video_id: int
    chunk_idx: int
    seq_from: int
    seq_to: int
    frames: Sequence[FramePoses]
    pose_s: float
    worker: str
    # Per frame, the track id of each person (the engine's FrameOutcome.track_ids) when the
    # chunk was analysed before it is stored (a live chunk); None leaves them to set_track_ids.
    track_ids: Sequence[Sequence[int | None]] | None = None


def write_chunk(session: Session, chunk: ChunkWrite) -> None:
    """Store a posed chunk so that writing it twice leaves exactly one copy.

    The chunk's previous rows (a retried job) are replaced in the same transaction, and
    the video's counters move by the difference, not by the whole chunk.
    """
    this_chunk = (Chunk.video_id == chunk.video_id) & (Chunk.idx == chunk.chunk_idx)
    previous = session.execute(_PREVIOUS, {"video_id": chunk.video_id, "idx": chunk.chunk_idx}).one_or_none()
    old_frames = old_with_person = attempts = 0
    old_pose_s = 0.0
    # A chunk's frame and pose rows are only ever written with its Chunk row, in this function's
    # transaction, and only deleted with it: without a Chunk row there is nothing to replace, and
    # a first attempt (nearly every job; a live camera makes several a second) skips five queries.
    if previous is not None:
        old_pose_s, attempts = previous.pose_s or 0.0, previous.attempts or 0
        in_range = (AnalysedFrame.video_id == chunk.video_id) & AnalysedFrame.seq.between(
            chunk.seq_from, chunk.seq_to - 1
        )
        old_frames, old_with_person = session.execute(
            select(func.count(), func.count().filter(AnalysedFrame.persons > 0)).where(in_range)
        ).one()
        session.execute(
            delete(PoseRow).where(
                PoseRow.video_id == chunk.video_id, PoseRow.seq.between(chunk.seq_from, chunk.seq_to - 1)
            )
        )
        session.execute(delete(AnalysedFrame).where(in_range))
        session.execute(delete(Chunk).where(this_chunk))
        session.flush()

    frame_rows = [
        {"video_id": chunk.video_id, "seq": f.seq, "t_s": f.pts_s, "persons": len(f.poses)}
        for f in chunk.frames
    ]
    pose_rows = []
    no_tracks: Sequence[int | None] = ()
    for i, f in enumerate(chunk.frames):
        tracks = no_tracks if chunk.track_ids is None else chunk.track_ids[i]
        for person, pose in enumerate(f.poses):
            landmarks, world = pose.to_bytes()
            pose_rows.append(
                {
                    "video_id": chunk.video_id,
                    "seq": f.seq,
                    "person": person,
                    "t_s": f.pts_s,
                    "track_id": tracks[person] if person < len(tracks) else None,
                    "score": pose.score,
                    "landmarks": landmarks,
                    "world_landmarks": world,
                    **_hand_columns(pose),
                }
            )
    if frame_rows:
        session.execute(_FRAMES.insert(), frame_rows)
    if pose_rows:
        session.execute(_POSES.insert(), pose_rows)
    # Core, like the rows above: an ORM object would cost a unit-of-work flush for one row.
    session.execute(
        _INSERT_CHUNK,
        {
            "video_id": chunk.video_id,
            "idx": chunk.chunk_idx,
            "seq_from": chunk.seq_from,
            "seq_to": chunk.seq_to,
            "attempts": attempts + 1,
            "pose_s": chunk.pose_s,
            "worker": chunk.worker[:128],
            "finished_at": utcnow(),
        },
    )
    with_person = sum(1 for f in chunk.frames if f.poses)
    session.execute(
        _COUNT_CHUNK,
        {
            "video_id_": chunk.video_id,
            "frames": len(frame_rows) - old_frames,
            "with_person": with_person - old_with_person,
            "seconds": chunk.pose_s - old_pose_s,
        },
    )


def _hand_columns(pose: Pose) -> dict[str, bytes | float | None]:
    columns: dict[str, bytes | float | None] = {}
    for side in HandSide:
        hand = pose.hand(side)
        columns[side.value] = None if hand is None else hand.to_bytes()
        columns[f"{side.value}_score"] = None if hand is None else hand.score
    return columns


def _hand(landmarks: bytes | None, score: float | None) -> Hand | None:
    return None if landmarks is None or score is None else Hand.from_bytes(landmarks, score)


# What a Pose is built from (`pose_from_row`).
POSE_COLUMNS = (
    PoseRow.landmarks,
    PoseRow.world_landmarks,
    PoseRow.score,
    PoseRow.left_hand,
    PoseRow.left_hand_score,
    PoseRow.right_hand,
    PoseRow.right_hand_score,
)


def pose_from_row(row: Any) -> Pose:
    """A Pose from a PoseRow, or a result row holding POSE_COLUMNS."""
    return Pose.from_bytes(
        row.landmarks,
        row.world_landmarks,
        row.score,
        _hand(row.left_hand, row.left_hand_score),
        _hand(row.right_hand, row.right_hand_score),
    )


def chunk_done(session: Session, video_id: int, chunk_idx: int) -> bool:
    found = session.scalar(select(Chunk.idx).where(Chunk.video_id == video_id, Chunk.idx == chunk_idx))
    return found is not None


def chunk_range(session: Session, video_id: int, chunk_idx: int) -> tuple[int, int] | None:
    row = session.execute(
        select(Chunk.seq_from, Chunk.seq_to).where(Chunk.video_id == video_id, Chunk.idx == chunk_idx)
    ).first()
    return None if row is None else (row[0], row[1])


def read_frames(
    session: Session, video_id: int, seq_from: int, seq_to: int, resolution_wh: tuple[int, int]
) -> list[FramePoses]:
    """Frames [seq_from, seq_to) in order, each with its poses in person order."""
    frames = session.execute(
        select(AnalysedFrame.seq, AnalysedFrame.t_s)
        .where(AnalysedFrame.video_id == video_id, AnalysedFrame.seq.between(seq_from, seq_to - 1))
        .order_by(AnalysedFrame.seq)
    ).all()
    poses: dict[int, list[Pose]] = {}
    # Columns, not ORM objects: this runs for every chunk analysed, and an identity map of rows
    # read once is pure cost.
    rows = session.execute(
        select(PoseRow.seq, *POSE_COLUMNS)
        .where(PoseRow.video_id == video_id, PoseRow.seq.between(seq_from, seq_to - 1))
        .order_by(PoseRow.seq, PoseRow.person)
    )
    for row in rows:
        poses.setdefault(row.seq, []).append(pose_from_row(row))
    return [FramePoses.of(seq, t_s, resolution_wh, poses.get(seq, ())) for seq, t_s in frames]


def set_track_ids(
    session: Session, video_id: int, assignments: Iterable[tuple[int, int, int | None]]
) -> None:
    """(seq, person, track_id) triples from the tracker."""
    params = [{"v": video_id, "s": seq, "p": person, "t": track} for seq, person, track in assignments]
    if not params:
        return
    stmt = (
        update(_POSES)
        .where(
            _POSES.c.video_id == bindparam("v"),
            _POSES.c.seq == bindparam("s"),
            _POSES.c.person == bindparam("p"),
        )
        .values(track_id=bindparam("t"))
    )
    session.execute(stmt, params)


@dataclass(frozen=True)
class StoredPose:
    seq: int
    t_s: float
    person: int
    track_id: int | None
    pose: Pose


def iter_poses(
    session: Session, video_id: int, t_from: float | None = None, t_to: float | None = None, batch: int = 2000
) -> Iterator[StoredPose]:
    """Pose rows in time order, streamed in batches (an export must not load a whole video)."""
    query = select(PoseRow).where(PoseRow.video_id == video_id)
    if t_from is not None:
        query = query.where(PoseRow.t_s >= t_from)
    if t_to is not None:
        query = query.where(PoseRow.t_s <= t_to)
    query = query.order_by(PoseRow.seq, PoseRow.person).execution_options(yield_per=batch)
    for row in session.scalars(query):
        yield StoredPose(
            row.seq,
            row.t_s,
            row.person,
            row.track_id,
            pose_from_row(row),
        )


def nearest_frame(session: Session, video_id: int, t_s: float) -> tuple[int, float] | None:
    """The analysed frame closest in time to `t_s`: (seq, t_s)."""
    after = session.execute(
        select(AnalysedFrame.seq, AnalysedFrame.t_s)
        .where(AnalysedFrame.video_id == video_id, AnalysedFrame.t_s >= t_s)
        .order_by(AnalysedFrame.t_s)
        .limit(1)
    ).first()
    before = session.execute(
        select(AnalysedFrame.seq, AnalysedFrame.t_s)
        .where(AnalysedFrame.video_id == video_id, AnalysedFrame.t_s < t_s)
        .order_by(AnalysedFrame.t_s.desc())
        .limit(1)
    ).first()
    candidates = [tuple(r) for r in (after, before) if r is not None]
    if not candidates:
        return None
    return min(candidates, key=lambda r: abs(r[1] - t_s))  # type: ignore[return-value]

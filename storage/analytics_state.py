"""The analytics cursor of a video: the next chunk to analyse and the engine's saved state.

`advance` is a compare-and-set on `next_chunk`: the caller's transaction (which also holds
that chunk's events and track ids) commits only if nobody advanced the cursor meanwhile.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analytics.engine import ANALYTICS_VERSION, AnalyticsEngine
from pose import pickles
from storage.db import rows_affected
from storage.models import AnalyticsState, utcnow

log = logging.getLogger(__name__)


class CursorMoved(Exception):
    """Another analytics job advanced this video meanwhile; this one's work is discarded."""


@dataclass(frozen=True)
class Cursor:
    next_chunk: int
    finished: bool
    engine: AnalyticsEngine | None
    # False when a state exists from another analytics version (its events must be redone).
    current_version: bool


# Built once: a live camera loads and advances its cursor several times a second, and building
# a statement costs about as much CPU as running it. Columns and Core, not ORM objects and an
# ORM-enabled UPDATE, for the same reason: nothing in the session holds an AnalyticsState to
# keep in step (`advance` adds one only in a nested transaction of its own, for the first chunk).
_STATES = cast(Table, AnalyticsState.__table__)
_LOAD = select(
    AnalyticsState.next_chunk, AnalyticsState.finished, AnalyticsState.version, AnalyticsState.engine
).where(AnalyticsState.video_id == bindparam("video_id"))
_ADVANCE = (
    update(_STATES)
    .where(
        _STATES.c.video_id == bindparam("video_id_"),
        _STATES.c.next_chunk == bindparam("expected_next"),
        _STATES.c.finished.is_(False),
    )
    .values(
        next_chunk=bindparam("new_next"),
        finished=bindparam("finished_"),
        engine=bindparam("blob"),
        version=bindparam("version_"),
        updated_at=bindparam("now"),
    )
)


@dataclass(frozen=True)
class SavedEngine:
    """An engine still in memory with the state `advance` saved of it (what it returned)."""

    blob: bytes
    engine: AnalyticsEngine


def load(session: Session, video_id: int, kept: SavedEngine | None = None) -> Cursor:
    """`kept`: an engine this process saved last; when the stored state is still exactly its
    bytes, it is that engine (unpickling them would rebuild it), and it is not unpickled."""
    state = session.execute(_LOAD, {"video_id": video_id}).one_or_none()
    if state is None:
        return Cursor(next_chunk=0, finished=False, engine=None, current_version=True)
    if state.version != ANALYTICS_VERSION or state.engine is None:
        return Cursor(
            state.next_chunk, state.finished, None, current_version=state.version == ANALYTICS_VERSION
        )
    engine = kept.engine if kept is not None and kept.blob == state.engine else pickles.loads(state.engine)
    return Cursor(state.next_chunk, state.finished, engine, current_version=True)


def next_chunk(session: Session, video_id: int) -> int:
    """The cursor's next chunk alone (no engine unpickled): 0 before the first."""
    found = session.scalar(select(AnalyticsState.next_chunk).where(AnalyticsState.video_id == video_id))
    return found or 0


def advance(
    session: Session,
    video_id: int,
    expected_next: int,
    engine: AnalyticsEngine,
    *,
    finished: bool = False,
    new_next: int | None = None,
) -> SavedEngine:
    """Move the cursor from `expected_next` to `new_next` (default: the chunk after it), or
    mark it finished. A live session passes a later chunk when chunks were dropped.

    Raises CursorMoved if the cursor is no longer at `expected_next`; the caller's
    transaction must then be rolled back. Returns the state saved (valid once committed).
    """
    blob = pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL)
    if new_next is None:
        new_next = expected_next if finished else expected_next + 1
    # The update first: the state exists for every chunk but a video's first.
    result = session.execute(
        _ADVANCE,
        {
            "video_id_": video_id,
            "expected_next": expected_next,
            "new_next": new_next,
            "finished_": finished,
            "blob": blob,
            "version_": ANALYTICS_VERSION,
            "now": utcnow(),
        },
    )
    if rows_affected(result) == 1:
        return SavedEngine(blob, engine)
    exists = session.scalar(select(AnalyticsState.video_id).where(AnalyticsState.video_id == video_id))
    if exists is not None:
        raise CursorMoved(f"video {video_id}: analytics cursor is no longer at chunk {expected_next}")
    if expected_next != 0:
        raise CursorMoved(f"video {video_id}: analytics state vanished (the run was restarted)")
    try:
        with session.begin_nested():
            session.add(
                AnalyticsState(
                    video_id=video_id,
                    next_chunk=new_next,
                    finished=finished,
                    engine=blob,
                    version=ANALYTICS_VERSION,
                )
            )
    except IntegrityError as exc:
        raise CursorMoved(f"video {video_id}: another job started its analytics") from exc
    return SavedEngine(blob, engine)

"""`posepipe events --follow`: new events as JSON lines, read through storage.event_feed.

Each line is an item of `GET /api/events` (posepipe.views.EventView), so a script can
switch between the CLI and the API's stream without changing its parser. Stops on Ctrl-C or
when the reader of stdout goes away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TextIO

from analytics.events import EventType
from storage import event_feed
from storage.db import Database

log = logging.getLogger(__name__)


def parse_types(types: Sequence[str]) -> list[EventType] | None:
    known = {t.value for t in EventType}
    unknown = sorted(set(types) - known)
    if unknown:
        raise ValueError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [EventType(t) for t in types] or None


def follow_events(
    db: Database,
    out: TextIO,
    video_id: int | None,
    camera: str | None,
    types: Sequence[str],
    after_id: int | None,
) -> int:
    """Print events until interrupted; returns how many were printed."""
    from posepipe.api.events import EventFilters
    from posepipe.views import EventView

    filters = EventFilters(
        source_id=None,
        camera=camera,
        video_id=video_id,
        types=parse_types(types),
        track_id=None,
        t_from=None,
        t_to=None,
        after=None,
        before=None,
        min_confidence=None,
    )
    if after_id is None:
        feed = event_feed.EventFeed.from_now(db, filters.apply)
    else:
        feed = event_feed.EventFeed(db, after_id, narrow=filters.apply)
    log.info("following events after id %d", feed.cursor)
    printed = 0
    try:
        while True:
            rows = feed.poll()
            for row, source in rows:
                out.write(EventView.from_rows(row, source).model_dump_json() + "\n")
                printed += 1
            out.flush()
            if len(rows) < event_feed.BATCH:
                time.sleep(event_feed.POLL_S)
    except (KeyboardInterrupt, BrokenPipeError):
        # Ctrl-C, or the reader of stdout (`| head`) went away: the normal ends of following.
        return printed

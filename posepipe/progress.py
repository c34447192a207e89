"""The progress bar of `analyze` on stderr: frames analysed over frames expected, with frames/s and ETA."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import TracebackType

from tqdm import tqdm

from storage.models import Video, VideoStatus


class ProgressBar:
    def __init__(self, enabled: bool = True) -> None:
        self._enabled = enabled
        self._bar: tqdm | None = None

    def __enter__(self) -> ProgressBar:
        if self._enabled:
            self._bar = tqdm(total=0, unit="frame", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
        return self

    def update(self, videos: Sequence[Video]) -> None:
        if self._bar is None:
            return
        total = 0
        done = 0
        for v in videos:
            finished = v.status in (VideoStatus.DONE, VideoStatus.FAILED)
            expected = v.frames_total if v.frames_total is not None else (v.frames_expected or 0)
            total += v.frames_done if finished else max(expected, v.frames_done)
            done += v.frames_done
        self._bar.total = total
        self._bar.n = done
        active = sum(1 for v in videos if v.status not in (VideoStatus.DONE, VideoStatus.FAILED))
        self._bar.set_description(f"{len(videos) - active}/{len(videos)} videos", refresh=False)
        self._bar.refresh()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()

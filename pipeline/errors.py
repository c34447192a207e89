"""Typed errors for ingest: each says which input failed and why, in words a user can act on."""

from __future__ import annotations


class IngestError(Exception):
    """Base for every error that fails one video (and only that video)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class SourceOpenError(IngestError):
    """The file or stream could not be opened or is not a media container."""


class NoVideoStreamError(IngestError):
    """The container opened but holds no video stream (audio-only, subtitles, ...)."""


class CorruptVideoError(IngestError):
    """The container opened but its video could not be decoded."""


class FramesMissingError(Exception):
    """Frames a job expected in Redis are gone (expired or purged); the job cannot pose them."""

    def __init__(self, video_id: int, missing: list[int]) -> None:
        shown = ", ".join(str(s) for s in missing[:5]) + (" ..." if len(missing) > 5 else "")
        super().__init__(f"video {video_id}: {len(missing)} frame(s) no longer in Redis (seq {shown})")
        self.video_id = video_id
        self.missing = missing

"""Receiving an uploaded video or photo: the multipart body streamed to a file in the data dir, hashed.

Nothing is held in memory or in /tmp: each piece of the body is parsed as it arrives and
its file part appended to `<uploads>/.incoming/<random>.part` (written from a worker
thread, so the event loop never waits on the disk), with a running SHA-256. A body that
goes over the size limit is refused with 413 as soon as it does; a broken or abandoned
upload leaves nothing behind. The client's file name is kept for display only, never as a
path: the stored file is named by its content hash (see videos.upload_video).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from posepipe.api.common import Refusal

# The form field that carries the video.
FILE_FIELD = "file"
# Multipart framing around the file (boundaries, part headers, small fields) may add this
# much to Content-Length over the file's own size before the early 413 applies.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# A display name longer than this is cut (names are shown, not used as paths).
MAX_NAME_CHARS = 200


class UploadError(Refusal):
    """An upload refused."""


@dataclass(frozen=True)
class ReceivedFile:
    """A completely received upload, still in the incoming folder."""

    path: Path
    display_name: str
    size_bytes: int
    sha256: str


def display_name(client_name: str) -> str:
    """The last component of the client's file name (either slash), without control characters."""
    name = PureWindowsPath(PurePosixPath(client_name).name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = re.sub(r"\s+", " ", name)
    if name in ("", ".", ".."):
        return "upload"
    return name[:MAX_NAME_CHARS]


class _Receiver:
    """python-multipart callbacks: collect the `file` part's bytes; ignore every other part."""

    def __init__(self, incoming_dir: Path, max_bytes: int) -> None:
        self.incoming_dir = incoming_dir
        self.max_bytes = max_bytes
        self.path: Path | None = None
        self.client_name: str | None = None
        self.size = 0
        self.finished = False
        self._digest = hashlib.sha256()
        self._handle: BinaryIO | None = None
        self._pending: list[bytes] = []
        self._in_file = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _part_begin(self) -> None:
        self._in_file = False
        self._disposition = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != FILE_FIELD or b"filename" not in options:
            return
        if self.path is not None:
            raise UploadError(
                400, f"one file per upload (one `{FILE_FIELD}` part): send each video or photo on its own"
            )
        self.client_name = options[b"filename"].decode("utf-8", "replace")
        self.path = self.incoming_dir / f"{uuid.uuid4().hex}.part"
        self._handle = open(self.path, "wb")  # noqa: SIM115  closed by finish() or discard()
        self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        piece = data[start:end]
        self.size += len(piece)
        if self.size > self.max_bytes:
            raise UploadError(413, f"the file is larger than the upload limit of {self.max_bytes / 1e6:g} MB")
        self._digest.update(piece)
        self._pending.append(piece)

    def _part_end(self) -> None:
        if self._in_file:
            self.finished = True
        self._in_file = False

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def write_pending(self) -> None:
        if self._handle is not None and self._pending:
            self._handle.writelines(self._pending)
        self._pending.clear()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


async def receive_video(request: Request, incoming_dir: Path, max_bytes: int) -> ReceivedFile:
    """Stream the request's multipart body to disk; raises UploadError (with nothing left behind)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(415, f"send the video or photo as multipart/form-data in a `{FILE_FIELD}` field")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        raise UploadError(413, f"the file is larger than the upload limit of {max_bytes / 1e6:g} MB")
    receiver = _Receiver(incoming_dir, max_bytes)
    parser = MultipartParser(params[b"boundary"], receiver.callbacks())  # type: ignore[arg-type]
    try:
        async for piece in request.stream():
            parser.write(piece)
            if receiver.has_pending:
                await anyio.to_thread.run_sync(receiver.write_pending)
        parser.finalize()
        await anyio.to_thread.run_sync(receiver.write_pending)
    except FormParserError as exc:
        receiver.discard()
        raise UploadError(400, f"malformed multipart body: {exc}") from exc
    except ClientDisconnect as exc:
        receiver.discard()
        raise UploadError(400, "the client went away before the upload was complete") from exc
    except BaseException:
        receiver.discard()
        raise
    receiver.close()
    if receiver.path is None or receiver.client_name is None:
        raise UploadError(422, f"no file in the `{FILE_FIELD}` field")
    if not receiver.finished:
        receiver.discard()
        raise UploadError(400, "the upload ended before its file part did")
    if receiver.size == 0:
        receiver.discard()
        raise UploadError(422, "the uploaded file is empty (0 bytes)")
    return ReceivedFile(receiver.path, display_name(receiver.client_name), receiver.size, receiver.sha256)

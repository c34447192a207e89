"""Streaming a text export (written by posepipe.export into a text handle) as an HTTP response body.

The exports push text into a handle; a response pulls bytes. A producer thread runs the
export into a handle that hands batches to a bounded queue, and the response iterates the
queue: a long video's poses go out as they are read, never all in memory, and a client that
reads slowly slows the export down (the queue is bounded). If the client goes away, the
producer stops at its next write.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

log = logging.getLogger(__name__)

# Bytes gathered before a batch goes to the response (fewer, larger socket writes).
BATCH_BYTES = 64 * 1024
# Batches waiting for the client at most: bounds memory per export to ~1 MB.
QUEUE_BATCHES = 16
# A producer blocked on a full queue checks this often whether the client has gone.
PUT_TIMEOUT_S = 1.0
_DONE = object()


class _Cancelled(Exception):
    """The response was closed (client gone): the producer stops."""


class _QueueWriter(io.TextIOBase):
    def __init__(self, out: queue.Queue[object], cancelled: threading.Event) -> None:
        self._out = out
        self._cancelled = cancelled
        self._buffer: list[str] = []
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= BATCH_BYTES:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if not self._buffer:
            return
        batch = "".join(self._buffer).encode()
        self._buffer, self._size = [], 0
        while True:
            if self._cancelled.is_set():
                raise _Cancelled
            try:
                self._out.put(batch, timeout=PUT_TIMEOUT_S)
                return
            except queue.Full:
                continue


def stream_text(produce: Callable[[TextIO], object], name: str = "export") -> Iterator[bytes]:
    """Run `produce(handle)` on a thread; yield what it writes, as UTF-8 batches."""
    out: queue.Queue[object] = queue.Queue(maxsize=QUEUE_BATCHES)
    cancelled = threading.Event()

    def run() -> None:
        writer = _QueueWriter(out, cancelled)
        try:
            produce(writer)  # type: ignore[arg-type]
            writer.flush()
        except _Cancelled:
            return
        except Exception as exc:  # noqa: BLE001  handed to the response, which raises it
            _put(out, exc, cancelled)
            return
        _put(out, _DONE, cancelled)

    thread = threading.Thread(target=run, name=f"posepipe-{name}", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                log.error("%s failed mid-stream: %s", name, item)
                raise item
            yield item  # type: ignore[misc]
    finally:
        cancelled.set()


def _put(out: queue.Queue[object], item: object, cancelled: threading.Event) -> None:
    while not cancelled.is_set():
        try:
            out.put(item, timeout=PUT_TIMEOUT_S)
            return
        except queue.Full:
            continue

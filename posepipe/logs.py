"""Logging setup for every posepipe process: one format, to stderr, with secrets masked."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading

from common.redaction import mask_secrets

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SecretMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(SecretMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries' routine chatter (migrations checked, jobs picked up) is noise at INFO.
    for name in ("alembic", "rq.worker", "rq.scheduler"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))


# MediaPipe's C++ side logs through absl straight to file descriptor 2, ignoring every
# log-level setting; these lines say nothing a user can act on and repeat per chunk.
NATIVE_NOISE = (
    b"inference_feedback_manager.cc",
    b"All log messages before absl::InitializeLog() is called",
    b"Created TensorFlow Lite XNNPACK delegate",
    b"gl_context.cc",
)
_filter_installed = False
# The longest a process's exit waits for its own last words to pass the filter.
STDERR_DRAIN_TIMEOUT_S = 2.0
# Sent through the pipe at exit, after the process's last words: once the filter reads it, all
# of them have been forwarded. Worker processes this one spawned (and multiprocessing's resource
# tracker) hold the pipe open too, so the end of the pipe would come only after them: waiting
# for it cost every `analyze` with worker processes the whole 2 s timeout. NULs are not text.
_DRAIN_MARK = b"\0posepipe-stderr-drained\0"
_NOISE_PREFIXES = (b"W0000", b"I0000", b"E0000", b"INFO: ", b"WARNING: All")


def filter_native_noise() -> None:
    """Route fd 2 through a pipe and drop MediaPipe's known noise lines; everything else
    (Python logging, progress bars, real native errors) passes through unchanged."""
    global _filter_installed
    if _filter_installed:
        return
    _filter_installed = True
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    drained = threading.Event()

    def pump() -> None:
        pending = b""
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            marked = _DRAIN_MARK in pending
            rest = b""
            if marked:
                pending, rest = pending.split(_DRAIN_MARK, 1)
            *lines, pending = pending.split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not any(n in line for n in NATIVE_NOISE))
            # A partial line is forwarded at once (progress bars end lines with \r only), unless
            # it may be the start of the mark (or of a noise line), or this process is ending.
            if pending and (marked or (b"\0" not in pending and not pending.startswith(_NOISE_PREFIXES))):
                out += pending
                pending = b""
            if out:
                os.write(real_stderr, out)
            if marked:
                pending = rest
                drained.set()  # children's output goes on being forwarded while the process lives
        if pending:
            os.write(real_stderr, pending)
        drained.set()

    thread = threading.Thread(target=pump, name="posepipe-stderr-filter", daemon=True)
    thread.start()

    def drain() -> None:
        # Let the pump forward what this process wrote, or its last words are lost; then put
        # the real stderr back on fd 2 for whatever the interpreter says while it shuts down.
        sys.stderr.flush()
        try:
            os.write(2, _DRAIN_MARK)
        except OSError:
            drained.set()  # the pump is gone (its pipe closed): nothing to wait for
        drained.wait(timeout=STDERR_DRAIN_TIMEOUT_S)
        os.dup2(real_stderr, 2)

    atexit.register(drain)

"""The stderr noise filter: MediaPipe's lines dropped, a process's last words kept, and its exit not
held up by children that share its stderr (analyze's worker processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from posepipe.logs import STDERR_DRAIN_TIMEOUT_S

SCRIPT = r"""
import os, subprocess, sys
from posepipe.logs import filter_native_noise
filter_native_noise()
# A child holding the filtered stderr open past this process's end, as a worker process or
# multiprocessing's resource tracker does.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
os.write(2, b"W0000 00:00:1.0 1 gl_context.cc:357] GL version: 3.2\n")
os.write(2, b"kept line\n")
sys.stderr.write("last words, no newline")
print(child.pid, flush=True)
"""


def test_exit_forwards_last_words_without_waiting_for_children() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    grandchild = int(proc.stdout.readline())
    said_all = time.monotonic()
    try:
        proc.wait(30)
        exit_s = time.monotonic() - said_all
    finally:
        os.kill(grandchild, signal.SIGKILL)
    # The grandchild holds the pipe's other end open, so reading stderr to its end would wait
    # for it: what the process wrote is in the pipe already, read what is there.
    os.set_blocking(proc.stderr.fileno(), False)
    err = proc.stderr.read() or b""
    assert proc.returncode == 0
    assert err == b"kept line\nlast words, no newline"
    # Before the drain mark, the exit waited the whole timeout for the grandchild to go.
    assert exit_s < STDERR_DRAIN_TIMEOUT_S / 2

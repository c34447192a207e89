"""Real network peers for the live-stream tests: the GStreamer RTSP server (tests/rtsp_server.py,
run by the system Python on a free port, killable and restartable on the same port) and a
black-hole TCP listener that accepts connections and never answers. 127.0.0.1 only.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from tests.services import free_port

# The system interpreter: it has GStreamer's introspection bindings, the venv has not.
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
HOST = "127.0.0.1"
# Starting takes ~0.3 s; the bound is for a loaded 2-core machine.
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


class RtspServer:
    """One server process serving `mounts` (name -> file) on a fixed port."""

    def __init__(
        self,
        mounts: Mapping[str, Path],
        *,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        encode: bool = False,
    ) -> None:
        self.mounts = dict(mounts)
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.encode = encode
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # The server's stderr, shown when it fails to start; closed by close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115

    def url(self, mount: str, *, user: str | None = None, password: str | None = None) -> str:
        auth = ""
        if user is not None:
            auth = (
                quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "") + "@"
            )
        return f"rtsp://{auth}{HOST}:{self.port}/{mount}"

    def auth_url(self, mount: str) -> str:
        """The URL with the server's own credentials."""
        return self.url(mount, user=self.user, password=self.password)

    def command(self) -> list[str]:
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--address", HOST, "--port", str(self.port)]
        for name, path in self.mounts.items():
            cmd += ["--mount", f"{name}={path}"]
        if self.user is not None and self.password is not None:
            cmd += ["--user", self.user, "--password", self.password]
        if self.encode:
            cmd.append("--encode")
        return cmd

    def start(self) -> None:
        """Start (or start again, on the same port) and wait until it accepts connections."""
        if self.running:
            raise RuntimeError(f"RTSP server on port {self.port} is already running")
        # Just after a kill the port can still be held for a moment; retry briefly.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=self._stderr)
            self.starts += 1
            if self._wait_ready(deadline):
                return
            self.proc.wait()
            if time.monotonic() >= deadline:
                raise RuntimeError(f"RTSP server did not start on port {self.port}: {self.stderr_text()}")
            time.sleep(0.2)

    def _wait_ready(self, deadline: float) -> bool:
        """True once the READY line is printed; False if the process exited first."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buffered = b""
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.1)
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return False
                buffered += chunk
                if b"READY " in buffered:
                    return _accepts(self.port)
            elif self.proc.poll() is not None:
                return False
        self.kill()
        raise RuntimeError(f"RTSP server not ready after {READY_TIMEOUT_S:.0f} s: {self.stderr_text()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the server dies mid-stream, as a crashed camera does (no RTSP teardown)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
            self._close_stdout()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and the kernel still accepts new ones, but nothing
        is sent or answered, as with a hung camera."""
        assert self.proc is not None and self.running
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            # A frozen server must run again to handle SIGTERM.
            self.proc.send_signal(signal.SIGCONT)
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_stdout()

    def close(self) -> None:
        self.stop()
        self._stderr.close()

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:] or "(no output)"

    def _close_stdout(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2.0):
            return True
    except OSError:
        return False


@contextmanager
def rtsp_server(
    mounts: Mapping[str, Path],
    *,
    user: str | None = None,
    password: str | None = None,
    encode: bool = False,
) -> Iterator[RtspServer]:
    """A started RTSP server looping each mount's file; stopped (or killed) on exit."""
    server = RtspServer(mounts, user=user, password=password, encode=encode)
    try:
        server.start()
        yield server
    finally:
        server.close()


class BlackHole:
    """A TCP listener that accepts every connection and never sends a byte: a camera that
    takes the connection and then hangs. Connections stay open until it is closed."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="black-hole", daemon=True)
        self._thread.start()

    def url(self, mount: str = "cam") -> str:
        return f"rtsp://{HOST}:{self.port}/{mount}"

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._accepted)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                raise
            with self._lock:
                self._accepted.append(conn)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self._listener.close()
        with self._lock:
            for conn in self._accepted:
                conn.close()


@contextmanager
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()

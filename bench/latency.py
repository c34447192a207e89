"""Time to result as a user waits for it, against a bare loop measured in the same run.

Three things are timed from a fresh process each, start-up and model load included:
- the bare loop: PyAV decodes the clip, frames are kept at the analysis rate and scaled as
  the pipeline scales them, and `mp.solutions.pose` poses each one; nothing is stored;
- `posepipe analyze CLIP` on the embedded default (SQLite, in-process queue), in a data folder
  whose database already exists (the first run of a new folder also creates it: timed apart);
- an upload through the API without Redis: from the POST to the video's status `done`, with
  the API already serving (a user uploads to a running server).

Runs alternate (bare, analyze, upload, bare, ...) so a machine whose speed drifts treats all
three alike; medians and the ratios to the bare loop's median are printed. `--baseline CHECKOUT`
also times another checkout's `analyze` and upload (its code first on PYTHONPATH, this venv; a
worktree of the commit before) in each round; the code under test is the checkout this module is
in, also first on PYTHONPATH, so before and after meet the same load. The load
average is printed: on a shared machine every time grows, and only the ratios compare.

    python -m bench.latency [--clip exercise/ex_squat_side_woman.mp4] [--runs 3] [--baseline ../wt-base]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import media_dir, wait_for

README_CLIP = "exercise/ex_squat_side_woman.mp4"
VENV_BIN = Path(sys.executable).parent
CHECKOUT = Path(__file__).resolve().parents[1]

# The bare loop: what any script that poses a video has to do, and nothing else.
BARE_LOOP = r"""
import sys, av, mediapipe as mp
from pipeline.sampler import FrameSampler
from pipeline.frames import Frame
from posepipe.settings import Settings
fps = Settings.model_fields["analysis_fps"].default
max_side = Settings.model_fields["frame_max_side"].default
take = FrameSampler(fps).take
pose = mp.solutions.pose.Pose(model_complexity=1, smooth_landmarks=False,
                              min_detection_confidence=0.3, min_tracking_confidence=0.3)
n = 0
with av.open(sys.argv[1]) as container:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    for frame in container.decode(stream):
        t = float(frame.pts * stream.time_base)
        if take(t):
            rgb = Frame.from_av(frame, seq=n, pts_s=t, rotation_deg=0, max_side=max_side).rgb
            pose.process(rgb)
            n += 1
print(n)
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Api:
    """`posepipe api` on the embedded default, serving from its own data folder."""

    def __init__(self, env: dict[str, str]) -> None:
        token = subprocess.run(
            [str(VENV_BIN / "posepipe"), "token", "create", "bench", "--scope", "admin"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        self.headers = {"Authorization": f"Bearer {token}"}
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "posepipe"), "api", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._up, 60)

    def _get(self, path: str) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=self.headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def _up(self) -> bool:
        try:
            self._get("/api/health")
            return True
        except OSError:
            return False

    def upload(self, clip: Path) -> float:
        """Seconds from the POST to the analysis being done."""
        boundary = "posepipebench"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{clip.name}"\r\n'
                "Content-Type: video/mp4\r\n\r\n"
            ).encode()
            + clip.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {**self.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        start = time.perf_counter()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/videos?force=true", data=body, headers=headers, method="POST"
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            video_id = json.loads(resp.read())["video"]["id"]
        while self._get(f"/api/videos/{video_id}")["status"] not in ("done", "failed"):
            time.sleep(0.02)
        return time.perf_counter() - start

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clip", default=README_CLIP, help="relative to POSEPIPE_MEDIA")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another checkout to time in the same rounds"
    )
    args = parser.parse_args(argv)
    clip = media_dir() / args.clip
    python = str(VENV_BIN / "python")
    # The code timed is this checkout's (first on PYTHONPATH, whatever the venv's editable
    # install points at), so a worktree of a commit can be measured while another is edited.
    codes = {"": CHECKOUT}
    if args.baseline is not None:
        codes[" (baseline)"] = args.baseline.resolve()
    times: dict[str, list[float]] = {"bare loop": []}
    for label in codes:
        times[f"analyze{label}"] = []
        times[f"API upload{label}"] = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="posepipe-latency-") as tmp:
        base = {
            k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "POSEPIPE_REDIS_URL", "PYTHONPATH")
        }
        analyze = [str(VENV_BIN / "posepipe"), "-q", "analyze", "--force", str(clip)]
        cli_envs: dict[str, dict[str, str]] = {}
        apis: dict[str, Api] = {}
        try:
            for i, (label, checkout) in enumerate(codes.items()):
                code = {"PYTHONPATH": str(checkout)}
                cli_envs[label] = {**base, **code, "POSEPIPE_DATA_DIR": str(Path(tmp) / f"cli{i}")}
                apis[label] = Api({**base, **code, "POSEPIPE_DATA_DIR": str(Path(tmp) / f"api{i}")})
            first = timed(analyze, cli_envs[""])
            for _ in range(args.runs):
                times["bare loop"].append(timed([python, "-c", BARE_LOOP, str(clip)], cli_envs[""]))
                for label in codes:
                    times[f"analyze{label}"].append(timed(analyze, cli_envs[label]))
                    times[f"API upload{label}"].append(apis[label].upload(clip))
                loads.append(os.getloadavg()[0])
        finally:
            for api in apis.values():
                api.close()
        shutil.rmtree(tmp, ignore_errors=True)
    bare = statistics.median(times["bare loop"])
    print(f"clip {args.clip}, {args.runs} runs each, alternating; seconds (median, all runs)")
    print("load average (1 min) at the start and after each round: " + " ".join(f"{x:.1f}" for x in loads))
    print(f"{'analyze, new data folder':26} {first:6.2f}  ({first / bare:.2f}x the bare loop)")
    for name, values in times.items():
        med = statistics.median(values)
        runs = " / ".join(f"{v:.2f}" for v in values)
        print(f"{name:26} {med:6.2f}  ({med / bare:.2f}x)  [{runs}]")
    # On a loaded machine a round's times move together: its ratio to its own bare loop is steadier.
    print("median of each round's ratio to that round's bare loop:")
    for name, values in times.items():
        if name != "bare loop":
            ratios = [v / b for v, b in zip(values, times["bare loop"], strict=True)]
            print(f"  {name:24} {statistics.median(ratios):.2f}x  [{' / '.join(f'{r:.2f}' for r in ratios)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

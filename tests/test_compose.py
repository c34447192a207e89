"""docker-compose.yml describes a stack that works: its services' own commands, run as local
processes against the local Redis and PostgreSQL (no Docker engine here), process a queued video."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.services import stop_processes
from tests.test_cli import clean_env

REPO = Path(__file__).resolve().parent.parent
CLIP = "falls/urfall_ds04_fall_while_walking.mp4"
# Services that are not posepipe processes (the servers themselves run locally already).
INFRASTRUCTURE = {"redis", "postgres"}


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_declares_the_stack() -> None:
    services = compose()["services"]
    assert {"redis", "postgres", "ingester", "worker"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name in ("ingester", "worker"):
        env = services[name]["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:") and env["DATABASE_URL"].startswith(
            "postgresql://"
        )
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_services_process_a_queued_video(
    media_dir: Path, redis_url: str, pg_url: str, tmp_path: Path
) -> None:
    services = compose()["services"]
    env = clean_env(tmp_path)
    env.update({"REDIS_URL": redis_url, "DATABASE_URL": pg_url})
    # Services under a profile (the cli tool, the optional MQTT broker and bridge) start only on request.
    long_running = {n: s for n, s in services.items() if n not in INFRASTRUCTURE and not s.get("profiles")}
    procs = []
    try:
        for service in long_running.values():
            replicas = service.get("deploy", {}).get("replicas", 1)
            for _ in range(replicas):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "posepipe", *service["command"]],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
        cli_command = lambda *args: subprocess.run(  # noqa: E731
            [sys.executable, "-m", "posepipe", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        queued = cli_command("enqueue", str(media_dir / CLIP)).stdout.split("\t")
        video_id = queued[0]
        assert queued[1] == "ingest"
        deadline = time.monotonic() + 240
        status = {}
        while time.monotonic() < deadline:
            status = json.loads(cli_command("status", video_id, "--json").stdout)["videos"][0]
            if status["status"] in ("done", "failed"):
                break
            time.sleep(1)
        assert status["status"] == "done", status
        assert status["frames_done"] == status["frames_total"] == 51
        assert all(p.poll() is None for p in procs), "a service exited during the run"
    finally:
        stop_processes(procs)
    assert os.path.exists(REPO / "Dockerfile")

"""MQTT: `posepipe mqtt` against a real broker (Debian's mosquitto, started here on a free port with
a password): events and camera status on the documented topics, retained availability with a
last will, Home Assistant discovery, no event lost or published twice across a broker restart and
a bridge restart, the broker password never shown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.fernet import Fernet
from paho.mqtt.enums import CallbackAPIVersion

from posepipe.mqtt_link import BrokerAddress
from posepipe.settings import Settings
from storage.cameras import StatusReport, add_camera, remove_camera, report_status
from storage.db import Database
from storage.event_feed import LeaseLost, claim_cursor, cursor_backlogs, release_cursor, save_cursor
from storage.models import CameraState, utcnow
from storage.secret_box import SecretBox
from tests.services import free_port, wait_until
from tests.test_cli import clean_env
from tests.test_event_stream import LATENCY_BOUND_S, spec, store

MOSQUITTO = "/usr/sbin/mosquitto"
USER = "bridge"
PASSWORD = "Br0ker-pa55-word"
ARRIVAL_S = 30.0


@dataclass
class Mosquitto:
    """A broker with a password file and persistence (retained messages and persistent sessions
    survive its restart, as in a deployment)."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        passwords = self.directory / "passwords"
        passwords.write_text("")
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), USER, PASSWORD], check=True)
        # Started as root, mosquitto switches to its own user, who cannot read pytest's private
        # temporary directory: keep root then.
        (self.directory / "mosquitto.conf").write_text(
            ("user root\n" if os.geteuid() == 0 else "") + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {passwords}\n"
            "persistence true\n"
            f"persistence_location {self.directory}/\n"
            "autosave_interval 1\n"
            f"log_dest file {self.directory}/mosquitto.log\n"
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "mosquitto exited"
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 20, "mosquitto to listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://{USER}:{PASSWORD}@127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A client with a persistent session (clean_session false, QoS 1): the broker keeps what
    is published for it while it is disconnected, e.g. across the broker's restart."""

    def __init__(self, broker: Mosquitto, client_id: str = "test-subscriber", topic: str = "#") -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.username_pw_set(USER, PASSWORD)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self._lock:
            self.received.append(Received(message.topic, bytes(message.payload), message.retain, time.time()))

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.topic == topic]

    def on_prefix(self, prefix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.topic.startswith(prefix)]

    def event_ids(self, prefix: str = "posepipe/events/") -> list[int]:
        with self._lock:
            return [r.json()["id"] for r in self.received if r.topic.startswith(prefix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Bridge:
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._out = open(self.log, "ab")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "posepipe", "mqtt"], env=self.env, stdout=self._out, stderr=self._out
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
        self.proc = None
        self._out.close()

    def text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


@dataclass
class Setup:
    db_url: str
    db: Database
    env: dict[str, str]
    box: SecretBox
    camera_id: int


@pytest.fixture
def setup(db_url: str, tmp_path: Path, broker: Mosquitto) -> Iterator[Setup]:
    db = Database(db_url)
    db.migrate()
    key = Fernet.generate_key()
    box = SecretBox(key)
    env = clean_env(tmp_path / "data")
    env.update(
        POSEPIPE_DATABASE_URL=db_url,
        POSEPIPE_MQTT_URL=broker.url,
        POSEPIPE_SECRET_KEY=key.decode(),
        POSEPIPE_LOG_LEVEL="DEBUG",
    )
    with db.session() as session:
        camera = add_camera(
            session, box, "hall", "rtsp://cam:CamSecret9@10.0.0.5/live", 10.0, None, "mediapipe"
        )
        report_status(session, camera.id, online_report())
        camera_id = camera.id
    yield Setup(db_url, db, env, box, camera_id)
    db.dispose()


def online_report(error: str | None = None) -> StatusReport:
    return StatusReport(
        state=CameraState.ONLINE,
        session_video_id=None,
        last_frame_at=None,
        fps_in=25.0,
        fps_analyzed=10.0,
        frames_in=100,
        frames_queued=0,
        dropped={},
        reconnects=0,
        last_error=error,
    )


def test_events_survive_a_broker_restart_and_a_bridge_restart_each_published_once(
    setup: Setup, broker: Mosquitto, tmp_path: Path
) -> None:
    subscriber = Subscriber(broker)
    bridge = Bridge(setup.env, tmp_path / "bridge.log")
    history = store(setup.db_url, [spec("rep")])  # stored before any bridge: not replayed
    bridge.start()
    try:
        wait_until(lambda: subscriber.on("posepipe/available"), ARRIVAL_S, "the bridge online")
        assert subscriber.on("posepipe/available")[-1].payload == b"online"
        wait_until(lambda: subscriber.on("posepipe/cameras/hall/status"), ARRIVAL_S, "the camera's status")
        status = subscriber.on("posepipe/cameras/hall/status")[-1].json()
        assert status["state"] == "online" and status["name"] == "hall"
        # Nobody has reported the camera since the fixture did: stale after 10 s; an ingester
        # reporting again makes it fresh at the next status round.
        wait_until(lambda: subscriber.on("posepipe/cameras/hall/status")[-1].json()["stale"], 20, "stale")
        with setup.db.session() as session:
            report_status(session, setup.camera_id, online_report())
        wait_until(
            lambda: not subscriber.on("posepipe/cameras/hall/status")[-1].json()["stale"], 10, "fresh again"
        )

        types = ["fall", "exercise_set", "rep", "long_lie", "stream_gap"]
        first = store(setup.db_url, [spec(t, camera="hall", sleep_s=0.3) for t in types] + [spec("fall")])
        wait_until(lambda: len(subscriber.event_ids()) >= len(first), ARRIVAL_S, "the events")
        assert subscriber.event_ids() == [s.id for s in first]
        assert history[0].id not in subscriber.event_ids()
        per_type = [subscriber.on(f"posepipe/events/{t}")[0] for t in types]
        assert [r.json()["type"] for r in per_type] == types
        latencies = [r.at - s.committed for r, s in zip(per_type, first, strict=False)]
        print(f"MQTT latency after commit: {[round(x, 3) for x in latencies]}")
        assert max(latencies) < LATENCY_BOUND_S
        # A camera's events again under the camera; the file's fall only on the events topic.
        assert subscriber.event_ids("posepipe/cameras/hall/events/") == [s.id for s in first[:-1]]
        item = subscriber.on("posepipe/events/fall")[0].json()
        assert set(item) >= {"id", "type", "camera", "source_kind", "data", "snapshot_url", "clip_url"}
        assert item["camera"] == "hall" and item["data"] == {"n": 0}

        # The broker goes away; events stored meanwhile wait in the database.
        broker.stop()
        during = store(setup.db_url, [spec("fall", camera="hall"), spec("rep", camera="hall"), spec("rep")])
        wait_until(lambda: "reconnecting in" in bridge.text(), ARRIVAL_S, "the bridge to notice")
        time.sleep(2.0)
        with setup.db.session() as session:  # as /metrics shows it
            assert cursor_backlogs(session) == [("mqtt:posepipe", len(during))]
        broker.start()
        wait_until(
            lambda: len(subscriber.event_ids()) >= len(first + during), ARRIVAL_S * 2, "events after restart"
        )
        time.sleep(1.0)
        assert subscriber.event_ids() == [s.id for s in first + during]
        with setup.db.session() as session:
            assert cursor_backlogs(session) == [("mqtt:posepipe", 0)]

        # The bridge is stopped (offline, retained) and started again: it resumes at its cursor.
        bridge.stop()
        wait_until(
            lambda: subscriber.on("posepipe/available")[-1].payload == b"offline", ARRIVAL_S, "offline"
        )
        later = store(setup.db_url, [spec("long_lie", camera="hall"), spec("exercise_set")])
        bridge.start()
        wait_until(lambda: len(subscriber.event_ids()) >= len(first + during + later), ARRIVAL_S, "resumed")
        time.sleep(1.0)
        assert subscriber.event_ids() == [s.id for s in first + during + later]
        assert subscriber.on("posepipe/available")[-1].payload == b"online"

        # Killed outright: the broker publishes the bridge's last will.
        assert bridge.proc is not None
        bridge.proc.kill()
        bridge.proc.wait(10)
        wait_until(
            lambda: subscriber.on("posepipe/available")[-1].payload == b"offline", ARRIVAL_S, "the last will"
        )
    finally:
        bridge.stop()
        subscriber.close()
    log = bridge.text()
    assert "reconnecting in" in log and "published events" in log
    assert PASSWORD not in log and "CamSecret9" not in log
    assert f"mqtt://{USER}:***@127.0.0.1:{broker.port}" in log


def test_camera_status_retained_with_discovery_and_cleared_when_removed(
    setup: Setup, broker: Mosquitto, tmp_path: Path
) -> None:
    bridge = Bridge(setup.env, tmp_path / "bridge.log")
    bridge.start()
    try:
        # A client that connects after the status was published gets it, retained, and discovery.
        early = Subscriber(broker, "early-subscriber")
        wait_until(lambda: early.on("posepipe/cameras/hall/status"), ARRIVAL_S, "the camera's status")
        early.close()
        late = Subscriber(broker, "late-subscriber")
        wait_until(lambda: late.on("posepipe/cameras/hall/status"), ARRIVAL_S, "retained status")
        assert late.on("posepipe/cameras/hall/status")[0].retain
        wait_until(lambda: len(late.on_prefix("homeassistant/")) >= 5, ARRIVAL_S, "discovery")
        configs = {r.topic: r.json() for r in late.on_prefix("homeassistant/")}
        fall = configs["homeassistant/binary_sensor/posepipe_hall/fall/config"]
        assert fall["state_topic"] == "posepipe/cameras/hall/events/fall"
        assert fall["availability_topic"] == "posepipe/available"
        assert fall["default_entity_id"] == "binary_sensor.posepipe_hall_fall"
        assert fall["device_class"] == "safety"
        state = configs["homeassistant/sensor/posepipe_hall/state/config"]
        assert state["state_topic"] == "posepipe/cameras/hall/status"
        assert all(
            PASSWORD not in json.dumps(c) and "CamSecret9" not in json.dumps(c) for c in configs.values()
        )

        # A state change is published within a status round.
        with setup.db.session() as session:
            report_status(session, setup.camera_id, online_report("rtsp://cam:CamSecret9@10.0.0.5 timed out"))
        wait_until(
            lambda: late.on("posepipe/cameras/hall/status")[-1].json()["last_error"] is not None,
            ARRIVAL_S,
            "the new status",
        )
        error = late.on("posepipe/cameras/hall/status")[-1].json()["last_error"]
        assert "CamSecret9" not in error and "cam:***@" in error

        # The camera is removed: its retained status and discovery are cleared.
        with setup.db.session() as session:
            remove_camera(session, "hall")
        wait_until(
            lambda: late.on("posepipe/cameras/hall/status")[-1].payload == b"", ARRIVAL_S, "status cleared"
        )
        wait_until(
            lambda: late.on("homeassistant/binary_sensor/posepipe_hall/fall/config")[-1].payload == b"",
            ARRIVAL_S,
            "discovery cleared",
        )
        late.close()
    finally:
        bridge.stop()
    after = Subscriber(broker, "after-subscriber")
    time.sleep(1.5)
    assert after.on("posepipe/cameras/hall/status") == []  # nothing retained any more
    after.close()


def test_a_camera_removed_while_the_bridge_was_down_is_cleared_at_connect(
    setup: Setup, broker: Mosquitto, tmp_path: Path
) -> None:
    bridge = Bridge(setup.env, tmp_path / "bridge.log")
    watcher = Subscriber(broker, "watcher")
    bridge.start()
    try:
        wait_until(lambda: watcher.on("posepipe/cameras/hall/status"), ARRIVAL_S, "the camera's status")
        bridge.stop()
        with setup.db.session() as session:
            remove_camera(session, "hall")
        bridge.start()
        wait_until(
            lambda: watcher.on("posepipe/cameras/hall/status")[-1].payload == b"", ARRIVAL_S, "status cleared"
        )
    finally:
        bridge.stop()
        watcher.close()


def test_broker_address_is_parsed_and_never_shown_with_its_password() -> None:
    address = BrokerAddress.parse("mqtts://user:p%40ss@broker.example:8884")
    assert (address.host, address.port, address.tls, address.username, address.password) == (
        "broker.example",
        8884,
        True,
        "user",
        "p@ss",
    )
    assert "p%40ss" not in repr(address) and "p@ss" not in repr(address)
    assert address.masked == "mqtts://user:***@broker.example:8884"
    assert BrokerAddress.parse("mqtt://localhost").port == 1883
    for bad in ("http://u:secretpw@h", "mqtt://u:secretpw@h:port", "mqtt://"):
        with pytest.raises(ValueError) as caught:
            BrokerAddress.parse(bad)
        assert "secretpw" not in str(caught.value)
    settings = Settings(mqtt_url="mqtt://u:secretpw@h:1883")
    assert "secretpw" not in repr(settings) and "secretpw" not in str(settings)


def test_mqtt_command_without_a_url_says_what_to_set(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-m", "posepipe", "mqtt"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "POSEPIPE_MQTT_URL" in result.stderr


def test_a_second_bridge_stands_by_and_takes_over_each_event_published_once(
    setup: Setup, broker: Mosquitto, tmp_path: Path
) -> None:
    subscriber = Subscriber(broker)
    first = Bridge(setup.env, tmp_path / "first.log")
    second = Bridge(setup.env, tmp_path / "second.log")
    first.start()
    try:
        wait_until(lambda: "events after" in first.text(), ARRIVAL_S, "the first bridge to publish")
        second.start()
        wait_until(lambda: "standing by" in second.text(), ARRIVAL_S, "the second bridge to stand by")
        before = store(setup.db_url, [spec("fall", camera="hall"), spec("rep")])
        wait_until(lambda: len(subscriber.event_ids()) >= 2, ARRIVAL_S, "events from the first bridge")
        first.stop()  # releases the lease: the standby takes over within a couple of seconds
        after = store(setup.db_url, [spec("long_lie", camera="hall"), spec("exercise_set")])
        wait_until(lambda: len(subscriber.event_ids()) >= 4, ARRIVAL_S, "events from the second bridge")
        time.sleep(1.0)
        assert subscriber.event_ids() == [s.id for s in before + after]
        assert "published events" in second.text() and "published events" in first.text()
        assert subscriber.on("posepipe/available")[-1].payload == b"online"
    finally:
        second.stop()
        first.stop()
        subscriber.close()


def test_the_cursor_lease_admits_one_holder_and_passes_on_when_it_lapses(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    try:
        now = utcnow()
        assert claim_cursor(db, "mqtt:x", "a", 30.0, start=lambda _s: 7, now=now) == 7
        assert claim_cursor(db, "mqtt:x", "b", 30.0, now=now + timedelta(seconds=29)) is None
        save_cursor(db, "mqtt:x", "a", 9, 30.0)  # renews a's lease from now
        assert claim_cursor(db, "mqtt:x", "b", 30.0, now=now + timedelta(seconds=25)) is None
        # a stopped renewing: b takes over where a got to, and a may no longer move it.
        assert claim_cursor(db, "mqtt:x", "b", 30.0, now=utcnow() + timedelta(seconds=31)) == 9
        with pytest.raises(LeaseLost):
            save_cursor(db, "mqtt:x", "a", 12, 30.0)
        release_cursor(db, "mqtt:x", "b")
        assert claim_cursor(db, "mqtt:x", "a", 30.0) == 9
    finally:
        db.dispose()


def test_a_refused_password_is_retried_and_never_logged(
    setup: Setup, broker: Mosquitto, tmp_path: Path
) -> None:
    wrong = "Wr0ng-pa55-word"
    env = dict(setup.env, POSEPIPE_MQTT_URL=f"mqtt://{USER}:{wrong}@127.0.0.1:{broker.port}")
    bridge = Bridge(env, tmp_path / "bridge.log")
    bridge.start()
    try:
        wait_until(lambda: bridge.text().count("refused") >= 2, ARRIVAL_S, "two refused attempts")
    finally:
        bridge.stop()
    log = bridge.text()
    assert "reconnecting in" in log and f"mqtt://{USER}:***@127.0.0.1:{broker.port}" in log
    assert wrong not in log
    print(next(line for line in log.splitlines() if "refused" in line))

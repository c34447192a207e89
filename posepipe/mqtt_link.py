"""One connection to the MQTT broker (paho-mqtt 2.x): connect with a last will, publish at QoS 1
and wait for the broker's PUBACKs.

A lost connection is never repaired in place: the bridge (posepipe.mqtt_bridge) drops the link
and makes a new one, with a new paho client and a clean session, so paho never re-sends a
message on its own and the bridge's cursor in the database alone decides what is published
again. Owns the broker address (its password is never shown: `BrokerAddress.masked`), not
topics or timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from common.redaction import mask_secrets
from posepipe.mqtt_topics import Message

QOS = 1
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# The broker declares the bridge gone (and publishes its last will) after 1.5 x this without
# traffic; paho pings within it.
KEEPALIVE_S = 30
# Messages on their way at once; the broker's acknowledgements are awaited for all of them.
MAX_INFLIGHT = 100


class LinkError(Exception):
    """The broker cannot be reached, refused the connection, or did not acknowledge in time.
    The message never holds a password."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None = field(repr=False)
    masked: str

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        masked = mask_secrets(url.strip())
        parts = urlsplit(url.strip())
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"MQTT URL {masked!r}: use mqtt://[user:password@]host[:port] (or mqtts://)")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError(f"MQTT URL {masked!r}: the port is not a number") from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            masked=masked,
        )


class MqttLink:
    """A connected paho client with its network thread; `close()` ends both."""

    def __init__(self, address: BrokerAddress, client_id: str, will: Message) -> None:
        self.address = address
        self._connected = threading.Event()
        self._lost = threading.Event()
        self._refusal: str | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(MAX_INFLIGHT)
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set()
        client.will_set(will.topic, will.payload, qos=QOS, retain=will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._refusal = str(reason)
            self._lost.set()
        else:
            self._connected.set()

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, _reason: Any, _props: Any) -> None:
        self._lost.set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def connect(self, timeout_s: float) -> None:
        try:
            self._client.connect(self.address.host, self.address.port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as exc:
            raise LinkError(f"cannot reach {self.address.masked}: {exc}") from None
        self._client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not self._connected.wait(0.05):
            if self._lost.is_set() or time.monotonic() > deadline:
                self.close()
                why = f"refused: {self._refusal}" if self._refusal else "no answer to CONNECT"
                raise LinkError(f"{self.address.masked} {why}")

    def publish(self, messages: Sequence[Message], timeout_s: float) -> None:
        """Returns once the broker acknowledged every message (QoS 1 PUBACK); LinkError otherwise."""
        infos = []
        for message in messages:
            info = self._client.publish(message.topic, message.payload, qos=QOS, retain=message.retain)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
                raise LinkError(f"publish to {self.address.masked} failed: {mqtt.error_string(info.rc)}")
            infos.append(info)
        deadline = time.monotonic() + timeout_s
        for info in infos:
            while not info.is_published():
                if self._lost.is_set():
                    raise LinkError(f"connection to {self.address.masked} lost before PUBACK")
                if time.monotonic() > deadline:
                    raise LinkError(f"{self.address.masked} did not acknowledge within {timeout_s:.0f} s")
                self._lost.wait(0.01)

    def subscribe(self, topic: str, on_message: Any) -> None:
        self._client.on_message = on_message
        self._client.subscribe(topic, qos=QOS)

    def unsubscribe(self, topic: str) -> None:
        self._client.unsubscribe(topic)

    def close(self) -> None:
        """Disconnect cleanly (the broker then does not publish the last will) and stop the thread."""
        self._client.disconnect()
        self._client.loop_stop()

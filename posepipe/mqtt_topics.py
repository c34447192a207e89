"""What posepipe publishes to MQTT: topic names, payloads and Home Assistant discovery documents.

Pure functions of a topic prefix (POSEPIPE_MQTT_TOPIC_PREFIX, default `posepipe`) and the
stored rows; the broker connection is posepipe.mqtt_link, the loop posepipe.mqtt_bridge.
docs/integrations.md lists the topics for users.

    <prefix>/available                       retained  "online" / "offline" (the bridge's last will)
    <prefix>/events/<type>                   QoS 1     every event, the item of GET /api/events
    <prefix>/cameras/<camera>/events/<type>  QoS 1     the same message again, for a camera's events
    <prefix>/cameras/<camera>/status         retained  the camera's state (JSON), or empty once removed
    <discovery>/<component>/posepipe_<camera>/<object>/config   retained  Home Assistant discovery
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from posepipe import __version__
from posepipe.views import CameraView
from storage.models import Camera, CameraStatusRow

ONLINE = "online"
OFFLINE = "offline"
# Home Assistant's fall and long-lie sensors turn off again this long after the last such event
# (the events are moments, not states): long enough to be noticed on a dashboard.
FALL_ON_S = 120
LONG_LIE_ON_S = 300


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True)
class Topics:
    prefix: str
    discovery_prefix: str = ""

    @property
    def available(self) -> str:
        return f"{self.prefix}/available"

    def event(self, event_type: str) -> str:
        return f"{self.prefix}/events/{event_type}"

    def camera_event(self, camera: str, event_type: str) -> str:
        return f"{self.prefix}/cameras/{camera}/events/{event_type}"

    def camera_status(self, camera: str) -> str:
        return f"{self.prefix}/cameras/{camera}/status"

    def event_messages(self, document: dict[str, Any]) -> list[Message]:
        """An event (an item of GET /api/events, JSON-ready) as the messages that carry it."""
        payload = json.dumps(document, separators=(",", ":")).encode()
        messages = [Message(self.event(document["type"]), payload)]
        if document.get("camera"):
            messages.append(Message(self.camera_event(document["camera"], document["type"]), payload))
        return messages

    def status_message(self, camera: str, status: dict[str, Any] | None) -> Message:
        """Retained; None (a removed camera) clears the retained message."""
        payload = b"" if status is None else json.dumps(status, separators=(",", ":")).encode()
        return Message(self.camera_status(camera), payload, retain=True)

    def discovery_messages(self, camera: str, remove: bool = False) -> list[Message]:
        """Home Assistant discovery for one camera (a device with five entities); `remove` sends
        the empty retained configs that delete them."""
        if not self.discovery_prefix:
            return []
        return [
            Message(topic, b"" if remove else json.dumps(config, separators=(",", ":")).encode(), retain=True)
            for topic, config in self._discovery(camera)
        ]

    def _discovery(self, camera: str) -> list[tuple[str, dict[str, Any]]]:
        node = f"posepipe_{camera.replace('.', '_').replace('-', '_')}"
        common = {
            "availability_topic": self.available,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": {
                "identifiers": [node],
                "name": f"{camera} (posepipe)",
                "manufacturer": "posepipe",
                "sw_version": __version__,
            },
            "origin": {"name": "posepipe", "sw_version": __version__},
        }

        def entity(component: str, key: str, **config: Any) -> tuple[str, dict[str, Any]]:
            return (
                f"{self.discovery_prefix}/{component}/{node}/{key}/config",
                # default_entity_id replaced object_id in Home Assistant 2025.10 (object_id went in 2026.4).
                {
                    **common,
                    "unique_id": f"{node}_{key}",
                    "default_entity_id": f"{component}.{node}_{key}",
                    **config,
                },
            )

        def safety_sensor(event_type: str, name: str, on_s: float) -> tuple[str, dict[str, Any]]:
            # On when the event arrives; Home Assistant turns it off `on_s` later by itself.
            topic = self.camera_event(camera, event_type)
            return entity(
                "binary_sensor", event_type, name=name, device_class="safety", state_topic=topic,
                value_template="ON", payload_on="ON", off_delay=on_s, json_attributes_topic=topic,
            )  # fmt: skip

        status = self.camera_status(camera)
        return [
            entity(
                "sensor",
                "state",
                name="State",
                state_topic=status,
                value_template="{{ 'stale' if value_json.stale else value_json.state }}",
                json_attributes_topic=status,
                icon="mdi:cctv",
            ),
            safety_sensor("fall", "Fall", FALL_ON_S),
            safety_sensor("long_lie", "Long lie", LONG_LIE_ON_S),
            entity(
                "sensor",
                "rep",
                name="Rep",
                state_topic=self.camera_event(camera, "rep"),
                value_template="{{ value_json.data.rep_index }}",
                json_attributes_topic=self.camera_event(camera, "rep"),
                icon="mdi:weight-lifter",
            ),
            entity(
                "sensor",
                "last_set",
                name="Last set",
                unit_of_measurement="reps",
                state_topic=self.camera_event(camera, "exercise_set"),
                value_template="{{ value_json.data.reps }}",
                json_attributes_topic=self.camera_event(camera, "exercise_set"),
                icon="mdi:counter",
            ),
        ]


def camera_status_document(
    camera: Camera, status: CameraStatusRow | None, now: datetime | None = None
) -> dict[str, Any]:
    """A camera's status as published: its view (posepipe.views.CameraView) without the URL, which
    is not needed to act on the status."""
    return CameraView.from_rows(camera, status, now).model_dump(mode="json", exclude={"url_masked"})

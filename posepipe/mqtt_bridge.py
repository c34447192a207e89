"""`posepipe mqtt`: publishes every new event and each camera's status to an MQTT broker.

A process of its own rather than a thread in every worker: one publisher per prefix keeps the
order and the once-only promise simple. A second bridge started for the same prefix stands by
(the cursor row carries a lease) and takes over when the first stops or dies. Events are read
with storage.event_feed past that durable cursor (`event_cursors` row `mqtt:<prefix>`),
published at QoS 1, and the cursor is stored only once the broker acknowledged (PUBACK) every
message up to it: a broker that restarts, or a bridge that is restarted, loses no event, and
under normal operation publishes none twice (an event is published again only if the broker
took it but its PUBACK was lost with the connection, or a bridge stalled past its lease while
publishing: QoS 1 is at least once). While the broker is unreachable the bridge reconnects
with capped, jittered backoff (common.backoff) and events wait in the database. A new
cursor starts at the newest event: history is not replayed to a new broker.

Camera status is published retained when it changes (state, staleness, errors, session; rates
and counters at most every STATUS_REFRESH_S), with Home Assistant discovery per camera; a
removed camera's retained messages are cleared, also those of cameras removed while the
bridge was not running (found from the broker's retained status topics at connect). Topics:
posepipe.mqtt_topics and docs/integrations.md.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from common.backoff import Backoff, BackoffPolicy
from posepipe.mqtt_link import BrokerAddress, LinkError, MqttLink
from posepipe.mqtt_topics import OFFLINE, ONLINE, Message, Topics, camera_status_document
from posepipe.settings import Settings
from posepipe.views import EventView
from storage import event_feed
from storage.cameras import list_cameras
from storage.db import Database

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
# Longest wait for the broker's acknowledgements of one batch before the link is dropped.
PUBACK_TIMEOUT_S = 15.0
# Camera status is read this often (the ingester writes it every 2 s).
STATUS_POLL_S = 2.0
# Rates and counters change on every status report: republished at most this often.
STATUS_REFRESH_S = 60.0
STATUS_VOLATILE = frozenset(
    {"fps_in", "fps_analyzed", "frames_in", "frames_queued", "last_frame_at", "status_updated_at", "dropped"}
)
# After connecting, retained status messages of cameras that no longer exist arrive within
# this long (the broker sends retained messages right after SUBACK).
RETAINED_SCAN_S = 1.0
# Reconnect pacing: the first retry within a second, then doubling up to half a minute.
RECONNECT = BackoffPolicy(base_s=1.0, cap_s=30.0)
# After a database error the bridge waits this long (the database is likely restarting).
DB_ERROR_PAUSE_S = 5.0
# One bridge publishes a prefix at a time: it holds the cursor's lease, renewed this often, and
# a standby takes over this long after the holder stopped renewing (killed, or its host lost).
LEASE_S = 30.0
LEASE_RENEW_S = 10.0
# A standby asks for the lease this often (a cleanly stopped bridge releases it at once).
STANDBY_POLL_S = 2.0


class MqttBridge:
    def __init__(self, db: Database, settings: Settings, rng: random.Random | None = None) -> None:
        if settings.mqtt_url is None:
            raise ValueError("set POSEPIPE_MQTT_URL (mqtt://[user:password@]host[:port]) to use MQTT")
        self.db = db
        self.address = BrokerAddress.parse(settings.mqtt_url.get_secret_value())
        self.topics = Topics(settings.mqtt_topic_prefix, settings.mqtt_discovery_prefix)
        self.cursor_name = f"mqtt:{settings.mqtt_topic_prefix}"
        prefix_id = settings.mqtt_topic_prefix.replace("/", "-")
        self.client_id = f"posepipe-{prefix_id}-{socket.gethostname()}-{os.getpid()}"[:64]
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        # Per connection: what the broker holds for each camera, and when it was published.
        self._status: dict[str, tuple[dict[str, Any], float]] = {}
        self.events_published = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Publish until stop() (or SIGTERM/SIGINT in `posepipe mqtt`)."""
        backoff = Backoff(RECONNECT, self._rng)
        log.info("mqtt: publishing to %s under %s/", self.address.masked, self.topics.prefix)
        standby = False
        try:
            while not self._stop.is_set():
                try:
                    position = event_feed.claim_cursor(self.db, self.cursor_name, self.client_id, LEASE_S)
                except SQLAlchemyError as exc:
                    log.warning("mqtt: database error, pausing %.0f s: %s", DB_ERROR_PAUSE_S, exc)
                    self._stop.wait(DB_ERROR_PAUSE_S)
                    continue
                if position is None:
                    if not standby:
                        log.info("mqtt: another bridge publishes %s/; standing by", self.topics.prefix)
                        standby = True
                    self._stop.wait(STANDBY_POLL_S)
                    continue
                standby = False
                self._connect_and_serve(position, backoff)
        finally:
            try:
                event_feed.release_cursor(self.db, self.cursor_name, self.client_id)
            except SQLAlchemyError as exc:
                log.warning("mqtt: could not release the cursor (a standby waits out the lease): %s", exc)

    def _connect_and_serve(self, position: int, backoff: Backoff) -> None:
        link = MqttLink(self.address, self.client_id, self._offline())
        try:
            link.connect(CONNECT_TIMEOUT_S)
            log.info("mqtt: connected to %s; events after %d", self.address.masked, position)
            self._serve(link, backoff, position)
        except LinkError as exc:
            link.close()
            delay = backoff.next_delay_s()
            log.warning("mqtt: %s; reconnecting in %.1f s", exc, delay)
            self._stop.wait(delay)
        except event_feed.LeaseLost as exc:
            # Another bridge publishes now (this one stalled past its lease): leave without the
            # last will or an "offline", which would be wrong while the other is online.
            link.close()
            log.warning("mqtt: %s; standing by", exc)
        except SQLAlchemyError as exc:
            link.close()
            log.warning("mqtt: database error, pausing %.0f s: %s", DB_ERROR_PAUSE_S, exc)
            self._stop.wait(DB_ERROR_PAUSE_S)

    def _offline(self) -> Message:
        return Message(self.topics.available, OFFLINE.encode(), retain=True)

    def _serve(self, link: MqttLink, backoff: Backoff, position: int) -> None:
        link.publish([Message(self.topics.available, ONLINE.encode(), retain=True)], PUBACK_TIMEOUT_S)
        self._status = {}  # a restarted broker may have lost every retained message
        self._clear_removed_cameras(link)
        self._publish_cameras(link)
        feed = event_feed.EventFeed(self.db, position)
        saved, saved_at = position, time.monotonic()
        backoff.reset()
        next_status = time.monotonic() + STATUS_POLL_S
        while not self._stop.is_set():
            if link.lost:
                raise LinkError(f"connection to {self.address.masked} lost")
            rows = feed.poll()
            if rows:
                self._publish_events(link, rows)
            if feed.cursor != saved or time.monotonic() - saved_at >= LEASE_RENEW_S:
                event_feed.save_cursor(self.db, self.cursor_name, self.client_id, feed.cursor, LEASE_S)
                saved, saved_at = feed.cursor, time.monotonic()
            if time.monotonic() >= next_status:
                self._publish_cameras(link)
                next_status = time.monotonic() + STATUS_POLL_S
            if len(rows) < event_feed.BATCH:
                self._stop.wait(event_feed.POLL_S)
        link.publish([self._offline()], PUBACK_TIMEOUT_S)
        link.close()
        log.info("mqtt: stopped; %d events published", self.events_published)

    def _publish_events(self, link: MqttLink, rows: list[Any]) -> None:
        messages = [
            message
            for row, source in rows
            for message in self.topics.event_messages(EventView.from_rows(row, source).document())
        ]
        link.publish(messages, PUBACK_TIMEOUT_S)
        self.events_published += len(rows)
        log.info("mqtt: published events %d-%d (%d)", rows[0][0].id, rows[-1][0].id, len(rows))

    def _publish_cameras(self, link: MqttLink) -> None:
        now = time.monotonic()
        with self.db.session() as session:
            documents = {cam.name: camera_status_document(cam, st) for cam, st in list_cameras(session)}
        messages: list[Message] = []
        for name, document in documents.items():
            known = self._status.get(name)
            if known is None:
                messages += self.topics.discovery_messages(name)
            if known is None or _changed(known[0], document) or now - known[1] >= STATUS_REFRESH_S:
                messages.append(self.topics.status_message(name, document))
        removed = [name for name in self._status if name not in documents]
        for name in removed:
            messages += [self.topics.status_message(name, None), *self.topics.discovery_messages(name, True)]
        if messages:
            link.publish(messages, PUBACK_TIMEOUT_S)
        for name in removed:
            del self._status[name]
            log.info("mqtt: camera %s removed: its retained messages cleared", name)
        for name, document in documents.items():
            known = self._status.get(name)
            if known is None or _changed(known[0], document) or now - known[1] >= STATUS_REFRESH_S:
                self._status[name] = (document, now)

    def _clear_removed_cameras(self, link: MqttLink) -> None:
        """Clear retained status and discovery of cameras removed while no bridge was running."""
        retained: set[str] = set()
        head, tail = f"{self.topics.prefix}/cameras/", "/status"

        def on_message(_client: Any, _userdata: Any, message: Any) -> None:
            topic = message.topic
            if message.retain and message.payload and topic.startswith(head) and topic.endswith(tail):
                retained.add(topic[len(head) : -len(tail)])

        link.subscribe(self.topics.camera_status("+"), on_message)
        self._stop.wait(RETAINED_SCAN_S)
        link.unsubscribe(self.topics.camera_status("+"))
        with self.db.session() as session:
            existing = {cam.name for cam, _ in list_cameras(session)}
        messages: list[Message] = []
        for name in sorted(retained - existing):
            messages += [self.topics.status_message(name, None), *self.topics.discovery_messages(name, True)]
            log.info("mqtt: camera %s no longer exists: its retained messages cleared", name)
        if messages:
            link.publish(messages, PUBACK_TIMEOUT_S)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return any(before.get(k) != v for k, v in after.items() if k not in STATUS_VOLATILE)

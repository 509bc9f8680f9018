"""The server's own MQTT ingest: one connection per client id, handed between server processes by a lock.

Several uvicorn workers of one server share the client id (it is derived from the data dir and
port), and a broker lets one connection hold an id: with each worker connecting, they would take
the session from each other in a loop. Why one holder rather than a distinct id per worker with a
shared subscription: the stable id is what makes the broker keep the session (and its
unacknowledged QoS 1 messages) across a crash, and worker processes have no stable identity to
derive per-worker ids from — a random one would leave a dead worker's queued messages stranded in
a session nobody resumes. A standby that takes the lock over resumes that very session, so the
handover loses nothing. Ingest that must scale past one process runs as ``hazardloop connectors
run`` workers, each with its own id in the shared-subscription group; a server on another host has
another id (host name in it), so it takes its own lock and shares the group too. Without PostgreSQL
there is one process, and no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import urllib.parse
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hazardloop.alarms.feed import Leadership
from hazardloop.config import Settings
from hazardloop.connectors.mqtt import MqttConnector
from hazardloop.readings.sink import StoreSink

log = logging.getLogger("hazardloop.web")

LOCK_SCOPE = "hazardloop-mqtt-client"
STANDBY_POLL_S = 2.0


def server_client_id(settings: Settings) -> str:
    """A stable id + session expiry: after a crash the broker resumes the session and redelivers what
    was in flight (the store de-duplicates), instead of dropping it with a random id."""
    place = hashlib.sha256(f"{settings.data_dir.resolve()}:{settings.port}".encode()).hexdigest()[:8]
    return settings.mqtt_client_id or f"hazardloop-server-{socket.gethostname()}-{place}"


class ServerMqtt:
    """Runs the MQTT connector while this process holds the client id's lock; ``state.mqtt_connector``
    is always the connector of the current (or next) term, for the status view and tests."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], store: Any, state: Any,
                 lock_url: str | None) -> None:
        self.settings, self.sessions, self.store, self.state = settings, sessions, store, state
        self.client_id = server_client_id(settings)
        self.lock = Leadership(lock_url, self.client_id, scope=LOCK_SCOPE) if lock_url else None
        self.state.mqtt_connector = self._connector()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _connector(self) -> MqttConnector:
        broker = urllib.parse.urlsplit(self.settings.mqtt_url)
        return MqttConnector(StoreSink(self.sessions, self.store), name="server-mqtt",
                             host=broker.hostname or "127.0.0.1", port=broker.port or 1883,
                             topic=self.settings.mqtt_topic, group=self.settings.mqtt_group or None,
                             username=broker.username, password=broker.password, client_id=self.client_id,
                             session_expiry_s=self.settings.mqtt_session_expiry_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=15)

    async def _run(self) -> None:
        mqtt, task, used = self.state.mqtt_connector, None, False
        try:
            while not self._stop.is_set():
                leading = self.lock is None or await asyncio.to_thread(self.lock.hold)
                if leading and task is None:
                    if used:  # a stopped connector stays stopped: a new term gets a new one
                        mqtt = self.state.mqtt_connector = self._connector()
                    used = True
                    task = asyncio.create_task(mqtt.run())  # reconnects with back-off on its own
                elif not leading and task is not None:
                    log.warning("mqtt: lost the lock of client id %s; disconnecting", self.client_id)
                    mqtt.stop()
                    await asyncio.wait([task], timeout=10)
                    task = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), None if self.lock is None else STANDBY_POLL_S)
        finally:
            if task is not None:
                mqtt.stop()
                await asyncio.wait([task], timeout=10)
            if self.lock is not None:
                await asyncio.to_thread(self.lock.release)

"""OPC UA ingest: one subscription on a list of NodeIds, each mapped to a sensor tag.

The server pushes data changes (no polling), each with the source timestamp the device gave it,
so readings carry the plant's time, not ours. asyncua's own auto-reconnect is left off: our loop
notices the loss (``connection_lost_callback``), tears the session down, waits the back-off and
subscribes again, so every connector reconnects the same way and shows it in its status.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC
from typing import Any

import numpy as np
from asyncua import Client, ua

from hazardloop.connectors.base import (
    Backoff,
    Batcher,
    Clock,
    ConnectorStatus,
    ReadingSink,
    Stopper,
    SystemClock,
    reconnect_forever,
)


class OpcUaConnector:
    """Subscribes to `nodes` (tag → NodeId string such as ``ns=2;s=GT-101``) on `url`."""

    kind = "opcua"

    def __init__(
        self,
        sink: ReadingSink,
        *,
        url: str,
        nodes: dict[str, str],
        name: str = "opcua",
        units: dict[str, str] | None = None,
        publishing_interval_ms: float = 200.0,
        request_timeout_s: float = 4.0,
        watchdog_s: float = 1.0,
        max_readings: int = 5000,
        max_age_s: float = 0.2,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not nodes:
            raise ValueError("an OPC UA connector needs at least one node")
        self.url, self.nodes, self.units = url, dict(nodes), dict(units or {})
        self.publishing_interval_ms = publishing_interval_ms
        self.request_timeout_s, self.watchdog_s = request_timeout_s, watchdog_s
        self.backoff = backoff or Backoff()
        self.clock = clock or SystemClock()
        self.status = ConnectorStatus(name=name, kind=self.kind)
        self.batcher = Batcher(sink, self.status, max_readings=max_readings, max_age_s=max_age_s, clock=self.clock)
        self._stopper = Stopper()
        self._tag_of: dict[str, str] = {}
        self._lost: asyncio.Event | None = None
        self._client: Client | None = None

    def stop(self) -> None:
        self._stopper.set()

    async def run(self) -> None:
        await reconnect_forever(self, self._session, (OSError, TimeoutError, ua.UaError, ConnectionError),
                                after=self._flush)

    async def drop_connection(self) -> None:
        """Cut the transport under the client (tests use it to prove reconnects)."""
        if self._client is not None:
            self._client.disconnect_socket()

    async def _session(self) -> bool:
        """One connection; returns True if it got as far as subscribing (then back-off restarts at 0)."""
        lost = self._lost = asyncio.Event()
        client = Client(self.url, timeout=self.request_timeout_s, watchdog_intervall=self.watchdog_s)

        async def on_lost(exc: Exception) -> None:
            self.status.last_error = f"{type(exc).__name__}: {exc}"
            lost.set()

        client.connection_lost_callback = on_lost
        self._client = client
        await client.connect()
        try:
            subscription = await client.create_subscription(self.publishing_interval_ms, self)
            handles = [client.get_node(node_id) for node_id in self.nodes.values()]
            self._tag_of = {node.nodeid.to_string(): tag for node, tag in zip(handles, self.nodes, strict=True)}
            results = await subscription.subscribe_data_change(handles)
            for tag, result in zip(self.nodes, results, strict=True):
                if isinstance(result, ua.StatusCode):  # the node is missing or not readable
                    self.status.note_malformed(tag, f"subscription refused: {result.name}")
            self.status.mark_connected(self.clock.time())
            while not self._stopper.is_set() and not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=0.05)
                if self.batcher.due():
                    self._flush()
            if lost.is_set():
                raise ConnectionError(self.status.last_error or "connection lost")
            return True
        finally:
            self._client = None
            with contextlib.suppress(Exception):  # the transport may already be gone; closing is best effort
                await asyncio.wait_for(client.disconnect(), timeout=2)

    def _flush(self) -> None:
        # A refused write keeps the readings in the batcher; the next due() retries them.
        self.batcher.flush()

    # asyncua subscription handler interface

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        tag = self._tag_of.get(node.nodeid.to_string())
        if tag is None:
            return
        self.status.messages += 1
        received = self.clock.time()
        self.status.last_message_at = received
        try:
            value = float(val)
        except (TypeError, ValueError):
            self.status.note_malformed(tag, f"value {val!r} is not a number")
            return
        dv = data.monitored_item.Value
        stamp = dv.SourceTimestamp or dv.ServerTimestamp
        if stamp is not None and stamp.tzinfo is None:  # OPC UA DateTime is UTC by definition (Part 6 §5.2.2.5)
            stamp = stamp.replace(tzinfo=UTC)
        ts_ms = int(stamp.timestamp() * 1000) if stamp is not None else int(received * 1000)
        unit = self.units.get(tag)
        self.batcher.add(
            [tag],
            np.array([ts_ms], dtype=np.int64),
            np.array([value], dtype=np.float64),
            None if unit is None else [unit],
        )

    def status_change_notification(self, status: Any) -> None:
        self.status.last_error = f"subscription status: {status}"
        if self._lost is not None:
            self._lost.set()

"""What is connected, and which sensors went silent.

A sensor is silent when nothing arrived for it for `grace` × its expected period (3 by default:
one late sample is jitter, three missed in a row is a dead transmitter, a cut cable or a
gateway that lost its map). A tag never seen at all is silent too — that is how a wrong topic or
NodeId shows up on day one. Callers pass the expected periods (from `sensors.sample_period_s` of
the plant model, or the connector config) so this module needs no database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rich.table import Table

from hazardloop.connectors.base import Connector, ConnectorStatus


@dataclass(frozen=True)
class SilentSensor:
    tag: str
    expected_period_s: float
    last_seen: float | None  # epoch seconds; None = never seen since the connectors started
    silent_for_s: float | None


class StatusRegistry:
    """The running connectors of this process. The CLI and (later) the web status page read it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[str, ConnectorStatus] = {}

    def register(self, connector: Connector | ConnectorStatus) -> None:
        status = connector if isinstance(connector, ConnectorStatus) else connector.status
        with self._lock:
            if status.name in self._statuses and self._statuses[status.name] is not status:
                raise ValueError(f"a connector named {status.name!r} is already registered; names must be unique")
            self._statuses[status.name] = status

    def unregister(self, name: str) -> None:
        with self._lock:
            self._statuses.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._statuses.clear()

    def statuses(self) -> list[ConnectorStatus]:
        with self._lock:
            return list(self._statuses.values())

    def snapshot(self) -> list[dict]:
        return [status.snapshot() for status in self.statuses()]

    def last_seen(self) -> dict[str, float]:
        """Tag → newest time any connector received it (a tag may come over two paths)."""
        merged: dict[str, float] = {}
        for status in self.statuses():
            for tag, seen in list(status.last_seen.items()):
                if seen > merged.get(tag, 0.0):
                    merged[tag] = seen
        return merged


REGISTRY = StatusRegistry()


def silent_sensors(
    expected: dict[str, float],
    now: float,
    *,
    registry: StatusRegistry | None = None,
    grace: float = 3.0,
) -> list[SilentSensor]:
    """Tags in `expected` (tag → period in s) with nothing for longer than `grace` periods, longest first."""
    seen = (registry or REGISTRY).last_seen()
    silent: list[SilentSensor] = []
    for tag, period in expected.items():
        last = seen.get(tag)
        if last is None:
            silent.append(SilentSensor(tag, period, None, None))
        elif now - last > grace * period:
            silent.append(SilentSensor(tag, period, last, now - last))
    silent.sort(key=lambda s: (s.silent_for_s is not None, -(s.silent_for_s or 0.0), s.tag))
    return silent


def status_table(registry: StatusRegistry | None = None, *, now: float) -> Table:
    """One row per connector: the view an operator reads first when a trend goes flat."""
    table = Table(title="Connectors")
    for column in ("name", "kind", "connected", "last message", "readings", "malformed", "reconnects", "last error"):
        table.add_column(column)
    for s in (registry or REGISTRY).statuses():
        age = "never" if s.last_message_at is None else f"{now - s.last_message_at:.1f}s ago"
        table.add_row(
            s.name,
            s.kind,
            "[green]yes[/]" if s.connected else "[red]no[/]",
            age,
            str(s.readings),
            str(s.malformed),
            str(s.reconnects),
            s.last_error or "",
        )
    return table


def silent_table(silent: list[SilentSensor]) -> Table:
    table = Table(title="Silent sensors")
    for column in ("tag", "expected every", "silent for"):
        table.add_column(column)
    for s in silent:
        silent_for = "never seen" if s.silent_for_s is None else f"{s.silent_for_s:.1f}s"
        table.add_row(s.tag, f"{s.expected_period_s:g}s", silent_for)
    return table

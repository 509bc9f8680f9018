"""`hazardloop connectors ...`: check a connector file, or run it into the reading store (or CSV files).

``run`` with ``[sink] kind = "store"`` is the ingest worker: several of them, started with the same
MQTT shared-subscription group and a PostgreSQL ``readings_url``, split the sensors of a plant.

Thin on purpose: parsing and printing here, everything else in config.py and the connectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hazardloop.connectors import config as connector_config
from hazardloop.connectors.base import Connector, ReadingSink
from hazardloop.connectors.sinks import CsvSink
from hazardloop.connectors.status import REGISTRY, silent_sensors, silent_table, status_table

connectors_app = typer.Typer(help="Sensor connectors: MQTT, OPC UA, Modbus TCP.", no_args_is_help=True)
console = Console()

ConfigArg = Annotated[Path, typer.Argument(help="Connector file (TOML), see connectors/README.md")]


def _load(path: Path) -> connector_config.ConnectorsFile:
    try:
        return connector_config.load(path)
    except connector_config.ConnectorConfigError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@connectors_app.command("check")
def check_command(config: ConfigArg) -> None:
    """Validate a connector file and list what it would run."""
    parsed = _load(config)
    for source in parsed.mqtt:
        console.print(f"mqtt    {source.name}: {source.host}:{source.port} $share/{source.group}/{source.topic}")
    for source in parsed.opcua:
        console.print(f"opcua   {source.name}: {source.url} ({len(source.nodes)} nodes)")
    for source in parsed.modbus:
        console.print(f"modbus  {source.name}: {source.host}:{source.port} ({len(source.registers)} registers)")
    target = parsed.sink.folder if parsed.sink.kind == "csv" else "the reading store of the settings"
    console.print(f"[green]ok[/]: sink {parsed.sink.kind} → {target}")


@connectors_app.command("run")
def run_command(
    config: ConfigArg,
    out: Annotated[Path | None, typer.Option(help="CSV folder; overrides [sink].folder (csv sink only)")] = None,
    duration: Annotated[float, typer.Option(help="Stop after this many seconds; 0 runs until Ctrl-C")] = 0.0,
    status_every: Annotated[float, typer.Option(help="Print the status view every N seconds; 0 only at exit")] = 10.0,
) -> None:
    """Run every configured connector into the reading store (or CSV files) until Ctrl-C (or --duration)."""
    parsed = _load(config)
    with contextlib.ExitStack() as cleanup:
        sink, where = open_sink(parsed.sink, out, cleanup)
        connectors = parsed.build(sink)
        for connector in connectors:
            REGISTRY.register(connector)
            cleanup.callback(REGISTRY.unregister, connector.status.name)
        console.print(f"running {len(connectors)} connector(s) into {where}; Ctrl-C stops")
        asyncio.run(run_connectors(connectors, duration=duration, status_every=status_every, expected=parsed.expected))


def open_sink(
    config: connector_config.SinkConfig, out: Path | None, cleanup: contextlib.ExitStack
) -> tuple[ReadingSink, str]:
    """The sink the file names, and words for where it writes; what it opened is closed by `cleanup`.

    A ``store`` sink opens the reading store the settings name (``readings_url``: DuckDB under data_dir
    by default, or PostgreSQL) and the application database for the tag → sensor map.
    """
    if config.kind == "csv":
        sink = CsvSink(out or config.folder)
        return sink, str(sink.folder)
    from hazardloop import db as hl_db
    from hazardloop.config import get_settings
    from hazardloop.readings.sink import StoreSink
    from hazardloop.readings.stores import open_store

    settings = get_settings()
    engine = hl_db.make_engine(settings.resolved_database_url)
    cleanup.callback(engine.dispose)
    store = open_store(settings)
    cleanup.callback(store.close)
    sink = StoreSink(hl_db.make_session_factory(engine), store, refresh_s=config.refresh_s)
    REGISTRY.register(sink.status)
    cleanup.callback(REGISTRY.unregister, sink.status.name)
    return sink, "PostgreSQL" if settings.readings_url else f"{store.path}"


async def run_connectors(
    connectors: list[Connector],
    *,
    duration: float = 0.0,
    status_every: float = 0.0,
    expected: dict[str, float] | None = None,
) -> None:
    """Run connectors side by side until `duration` passes or SIGINT/SIGTERM; print status on the way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
            loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(c.run(), name=c.status.name) for c in connectors]
    started = time.monotonic()
    last_print = started
    up = dict.fromkeys((c.status.name for c in connectors), False)
    while not stop.is_set() and not all(t.done() for t in tasks):
        await asyncio.sleep(0.05)
        _print_transitions(connectors, up)
        now = time.monotonic()
        if duration and now - started >= duration:
            break
        if status_every and now - last_print >= status_every:
            _print_status(expected)
            last_print = now
    for connector in connectors:
        connector.stop()
    await asyncio.gather(*tasks, return_exceptions=False)
    _print_status(expected)
    for connector in connectors:
        s = connector.status
        console.print(f"{s.kind} {s.name}: {s.readings} readings from {s.messages} messages, {s.malformed} malformed")


def _print_transitions(connectors: list[Connector], up: dict[str, bool]) -> None:
    """One line when a connector comes up or goes down: what a supervisor's log (and the worker tests) wait for."""
    for connector in connectors:
        s = connector.status
        if s.connected != up[s.name]:
            up[s.name] = s.connected
            console.print(f"{s.kind} {s.name}: {'connected' if s.connected else 'disconnected'}", highlight=False)


def _print_status(expected: dict[str, float] | None) -> None:
    now = time.time()
    console.print(status_table(now=now))
    if expected:
        silent = silent_sensors(expected, now)
        if silent:
            console.print(silent_table(silent))

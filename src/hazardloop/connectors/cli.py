"""`hazardloop connectors ...`: check a connector file, or run it into the CSV sink.

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
from hazardloop.connectors.base import Connector
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
    console.print(f"[green]ok[/]: sink {parsed.sink.kind} → {parsed.sink.folder}")


@connectors_app.command("run")
def run_command(
    config: ConfigArg,
    out: Annotated[Path | None, typer.Option(help="CSV folder; overrides [sink].folder")] = None,
    duration: Annotated[float, typer.Option(help="Stop after this many seconds; 0 runs until Ctrl-C")] = 0.0,
    status_every: Annotated[float, typer.Option(help="Print the status view every N seconds; 0 only at exit")] = 10.0,
) -> None:
    """Run every configured connector into CSV files until Ctrl-C (or --duration)."""
    parsed = _load(config)
    sink = CsvSink(out or parsed.sink.folder)
    connectors = parsed.build(sink)
    for connector in connectors:
        REGISTRY.register(connector)
    console.print(f"running {len(connectors)} connector(s) into {sink.folder}; Ctrl-C stops")
    try:
        asyncio.run(run_connectors(connectors, duration=duration, status_every=status_every, expected=parsed.expected))
    finally:
        for connector in connectors:
            REGISTRY.unregister(connector.status.name)


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
    while not stop.is_set() and not all(t.done() for t in tasks):
        await asyncio.sleep(0.2)
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


def _print_status(expected: dict[str, float] | None) -> None:
    now = time.time()
    console.print(status_table(now=now))
    if expected:
        silent = silent_sensors(expected, now)
        if silent:
            console.print(silent_table(silent))

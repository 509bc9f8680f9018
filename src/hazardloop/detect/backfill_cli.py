"""``hazardloop backfill``: re-score a Parquet history, on this machine or a Dask cluster (detect/backfill.py).

Registered by the main CLI as ``app.command("backfill")(backfill_command)``. Thin: loads the sensor
list (the plant register in the configured database, or a tag-list CSV), runs ``backfill`` with a
progress bar, prints a summary.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hazardloop.detect.backfill import BackfillInputError, BackfillParams, BackfillReport, SensorSpec, backfill
from hazardloop.detect.base import DetectInputError
from hazardloop.detect.limits import AlarmLimits

console = Console(stderr=True)
SHOWN_SENSORS = 30  # the summary lists the sensors with the most episodes; the files hold them all
_LIMIT_FIELDS = {"ll": "lo_lo", "l": "lo", "h": "hi", "hh": "hi_hi", "range_min": "physical_min",
                 "range_max": "physical_max", "deadband": "deadband", "on_delay_s": "on_delay_s",
                 "off_delay_s": "off_delay_s"}


# ---- the sensor list ------------------------------------------------------------------------------

def _decode(content: bytes, path: Path) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel saves CSVs in GBK on Chinese Windows
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BackfillInputError(f"{path}: neither UTF-8 nor GBK text")


def _number(text: str) -> float | None:
    if text.strip() == "":
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def sensors_from_csv(path: Path) -> list[SensorSpec]:
    """The sensor list from a tag-list CSV (the format of ``plant.tag_import``: English or Chinese headers).

    Only ``tag`` is required; limits, range, deadband, delays, unit and sample period are read when
    present. Every bad cell is reported with its row (the header is row 1) and field.
    """
    from hazardloop.plant.reference import import_column_aliases

    if not path.is_file():
        raise BackfillInputError(f"sensor list {path} does not exist")
    text = _decode(path.read_bytes(), path)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    if not rows:
        raise BackfillInputError(f"{path}: the file is empty")
    aliases = import_column_aliases()
    header = [aliases.get(cell.strip().lower(), "") for cell in rows[0]]
    if "tag" not in header:
        raise BackfillInputError(f"{path}: no tag column (found: {', '.join(rows[0])})")
    specs, problems, first_row = [], [], {}
    for number, cells in enumerate(rows[1:], start=2):
        record = {name: cells[i].strip() for i, name in enumerate(header) if name and i < len(cells)}
        tag = record.get("tag", "")
        if not tag:
            problems.append(f"row {number}, tag: is empty")
            continue
        if tag in first_row:
            problems.append(f"row {number}, tag: '{tag}' appears again (first on row {first_row[tag]})")
            continue
        first_row[tag] = number
        fields: dict[str, float] = {}
        for name in (*_LIMIT_FIELDS, "sample_period_s"):
            try:
                value = _number(record.get(name, ""))
            except ValueError:
                problems.append(f"row {number}, {name}: '{record[name]}' is not a number")
                continue
            if value is not None:
                fields[name] = value
        try:
            limits = AlarmLimits(tag=tag, **{_LIMIT_FIELDS[k]: v for k, v in fields.items() if k in _LIMIT_FIELDS})
        except DetectInputError as exc:
            problems.append(f"row {number}, limits: {exc}")
            continue
        specs.append(SensorSpec(limits, unit=record.get("unit", ""), sample_period_s=fields.get("sample_period_s")))
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise BackfillInputError(f"{path}: {len(problems)} bad row(s): " + "; ".join(problems[:10]) + more)
    return specs


def sensors_from_register(database_url: str | None = None) -> list[SensorSpec]:
    """Every sensor of the plant register (the configured database by default), with the live path's limits.

    The command line holds the database's own credentials (as ``audit verify`` does), so it reads
    the whole register; disabled sensors are included, since they may have reported in the period.
    """
    from sqlalchemy import select

    from hazardloop.alarms.live import limits_of
    from hazardloop.config import get_settings
    from hazardloop.db import make_engine, make_session_factory
    from hazardloop.plant.models import Sensor

    engine = make_engine(database_url or get_settings().resolved_database_url)
    try:
        with make_session_factory(engine)() as db:
            sensors = list(db.scalars(select(Sensor).order_by(Sensor.tag)))
            return [SensorSpec(limits_of(s), unit=s.unit or "", sample_period_s=s.sample_period_s, sensor_id=s.id)
                    for s in sensors]
    finally:
        engine.dispose()


# ---- the command ----------------------------------------------------------------------------------

def backfill_command(
    history: Annotated[Path, typer.Argument(metavar="HISTORY_DIR", help="Hive-partitioned Parquet readings")],
    out: Annotated[Path, typer.Option("--out", help="New or empty folder for the results")],
    cluster: Annotated[str | None, typer.Option("--cluster", help="Dask scheduler, e.g. tcp://host:8786")] = None,
    sensors: Annotated[Path | None, typer.Option("--sensors", help="Tag-list CSV instead of the plant register")]
    = None,
    start: Annotated[dt.datetime | None, typer.Option("--start", help="First time to score (UTC)")] = None,
    end: Annotated[dt.datetime | None, typer.Option("--end", help="Score before this time (UTC)")] = None,
    train_hours: Annotated[float, typer.Option("--train-hours", help="Learn normal from each sensor's first N hours")]
    = BackfillParams.train_hours,
    workers: Annotated[int, typer.Option("--workers", help="Local processes (1: in this process)")] = 1,
    unit_rows: Annotated[int, typer.Option("--unit-rows", help="Readings per work unit")] = 5_000_000,
) -> None:
    """Run the live detectors over months of Parquet history; write per-reading verdicts and alarm episodes.

    Each sensor's history runs through one monitor in time order, here or on a Dask cluster: the same results.
    """
    try:
        specs = sensors_from_csv(sensors) if sensors else sensors_from_register()
        if not specs:
            raise BackfillInputError("the sensor list is empty; import the tag list or pass --sensors FILE")
        where = f"Dask cluster {cluster}" if cluster else (f"{workers} local processes" if workers > 1 else "locally")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task(f"checking {history}", total=None)
            report = backfill(
                history, out, specs, params=BackfillParams(train_hours=train_hours), start=start, end=end,
                cluster=cluster, workers=workers, unit_rows=unit_rows,
                on_plan=lambda n: progress.update(task, total=n, description=f"scoring {where}"),
                on_done=lambda _unit, _n: progress.advance(task))
    except DetectInputError as exc:
        raise typer.BadParameter(str(exc)) from exc
    print_summary(report)


def print_summary(report: BackfillReport) -> None:
    episodes = report.episodes
    per_tag = episodes.groupby("tag").size().to_dict() if len(episodes) else {}
    table = Table(title=f"backfill: {report.units} work unit(s) → {report.out_dir}")
    for column in ("sensor", "readings", "duplicates dropped", "out of order (sorted)", "alarm readings",
                   "episodes"):
        table.add_column(column, justify="left" if column == "sensor" else "right")
    tags = sorted(report.readings, key=lambda t: (-per_tag.get(t, 0), t))
    for tag in tags[:SHOWN_SENSORS]:
        table.add_row(tag, f"{report.readings[tag]:,}", f"{report.duplicates.get(tag, 0):,}",
                      f"{report.out_of_order.get(tag, 0):,}", f"{report.alarm_readings.get(tag, 0):,}",
                      f"{per_tag.get(tag, 0):,}")
    if len(tags) > SHOWN_SENSORS:
        table.add_row(f"… {len(tags) - SHOWN_SENSORS} more", "", "", "", "", "")
    table.add_section()
    table.add_row("all", f"{sum(report.readings.values()):,}", f"{sum(report.duplicates.values()):,}",
                  f"{sum(report.out_of_order.values()):,}", f"{sum(report.alarm_readings.values()):,}",
                  f"{len(episodes):,}")
    console.print(table)
    if len(episodes):
        kinds = episodes.groupby("type").size().sort_values(ascending=False)
        console.print("episodes by type: " + ", ".join(f"{t} {n}" for t, n in kinds.items()))
    if report.without_readings:
        shown = ", ".join(report.without_readings[:20])
        more = f" (and {len(report.without_readings) - 20} more)" if len(report.without_readings) > 20 else ""
        console.print(f"[yellow]no readings in the period for {len(report.without_readings)} sensor(s): "
                      f"{shown}{more}[/]")
    console.print(f"per-reading results: {report.out_dir}/readings/  episodes: {report.out_dir}/episodes.csv")

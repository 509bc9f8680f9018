"""``hazardloop detect``: score any readings CSV and write it back with score, alarm and reason.

Registered by the main CLI as ``app.command("detect")(detect_command)``. Thin: reads and checks
the file (csvio), runs ``TableDetector`` with its defaults, writes the result, prints a summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from hazardloop.detect.base import DetectInputError
from hazardloop.detect.csvio import read_table, training_rows
from hazardloop.detect.table import TableDetector

console = Console(stderr=True)


def _parse_ranges(specs: list[str], sensors: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """'TAG=MIN:MAX' options into physical-range arrays (either side may be empty)."""
    if not specs:
        return None, None
    lo = np.full(len(sensors), -np.inf)
    hi = np.full(len(sensors), np.inf)
    for spec in specs:
        tag, _, rng = spec.partition("=")
        a, sep, b = rng.partition(":")
        if not sep or tag not in sensors:
            raise typer.BadParameter(f"{spec!r}: expected TAG=MIN:MAX with TAG one of {', '.join(sensors)}",
                                     param_hint="--range")
        try:
            j = sensors.index(tag)
            lo[j] = float(a) if a.strip() else -np.inf
            hi[j] = float(b) if b.strip() else np.inf
        except ValueError as exc:
            raise typer.BadParameter(f"{spec!r}: MIN and MAX must be numbers", param_hint="--range") from exc
    return lo, hi


def detect_command(
    input: Annotated[Path, typer.Argument(metavar="INPUT.csv", help="Readings CSV (',' or ';' separated, header row)")],
    time_col: Annotated[str, typer.Option("--time-col", help="Name of the time column")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the scored CSV")],
    train_rows: Annotated[int | None, typer.Option("--train-rows", help="Learn normal from the first N rows")]
    = None,
    train_until: Annotated[str | None, typer.Option("--train-until", help="Learn normal up to this time")]
    = None,
    columns: Annotated[str | None, typer.Option("--columns", help="Comma-separated sensor columns (default: all)")]
    = None,
    range_: Annotated[list[str] | None, typer.Option("--range", help="Physical range TAG=MIN:MAX (repeatable)")]
    = None,
) -> None:
    """Find anomalies and sensor faults in a CSV; adds score, is_anomaly, reason and fault_<sensor> columns.

    Row t is judged from rows up to t only (plus the training part), exactly as a live monitor would.
    Without --train-rows/--train-until the first 20 % of rows are taken as normal.
    """
    picked = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        step = progress.add_task(f"reading {input.name}")
        try:
            table = read_table(input, time_col, picked)
            k = training_rows(table, train_rows, train_until)
            lo, hi = _parse_ranges(range_ or [], table.sensors)
            progress.update(step, description=f"learning normal from {k} rows")
            detector = TableDetector(table.sensors, physical_min=lo, physical_max=hi)
            detector.fit(table.values[:k], table.seconds[:k])
            progress.update(step, description=f"scoring {len(table.values)} rows")
            result = detector.detect(table.values, table.seconds)
        except DetectInputError as exc:
            raise typer.BadParameter(str(exc)) from exc
        progress.update(step, description=f"writing {out.name}")
        frame = table.frame.copy()
        frame["score"] = np.round(result.score, 4)
        frame["is_anomaly"] = result.is_anomaly.astype(int)
        frame["reason"] = result.reason
        for j, name in enumerate(table.sensors):
            frame[f"fault_{name}"] = result.fault_labels(j)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, sep=table.sep, index=False)
    test = result.is_anomaly[k:]
    faulty = [s for j, s in enumerate(table.sensors) if (result.faults[k:, j] > 0).any()]
    console.print(f"[bold]{input.name}[/]: {len(table.values)} rows, {len(table.sensors)} sensors, "
                  f"trained on {k}; {int(test.sum())} of {len(test)} later rows flagged"
                  + (f"; sensor faults on {', '.join(faulty)}" if faulty else "") + f" → {out}")

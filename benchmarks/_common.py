"""Shared by the benchmark scripts: where the data is, running the CLI as a user does, reporting."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
console = Console()


def data_dir() -> Path:
    """HAZARDLOOP_BENCH_DATA, else ../shared/data next to the repository (read in place, never copied)."""
    return Path(os.environ.get("HAZARDLOOP_BENCH_DATA", REPO.parent / "shared" / "data")).resolve()


def run_detect(input_csv: Path, out_csv: Path, time_col: str, train_rows: int | None) -> None:
    """``hazardloop detect`` in a subprocess, with its defaults: the figures are what a user gets."""
    cmd = [sys.executable, "-m", "hazardloop.cli", "detect", str(input_csv), "--time-col", time_col,
           "--out", str(out_csv)]
    if train_rows is not None:
        cmd += ["--train-rows", str(train_rows)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")


def command_line(time_col: str, train_rows: int) -> str:
    return f"hazardloop detect INPUT.csv --time-col {time_col} --train-rows {train_rows} --out OUT.csv"


def rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title)
    for h in header:
        t.add_column(h)
    for r in rows:
        t.add_row(*r)
    return t


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"

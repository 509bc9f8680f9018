"""Reading and checking a readings CSV for ``hazardloop detect``; every error names the row or column.

Row numbers in messages are the line numbers a user sees in an editor (the header is line 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hazardloop.detect.base import DetectInputError


@dataclass
class ReadingsTable:
    frame: pd.DataFrame  # the input as read, unchanged
    sep: str
    time_col: str
    seconds: np.ndarray  # time as float seconds (epoch for datetimes)
    sensors: list[str]
    values: np.ndarray  # (n_rows, n_sensors) float


def sniff_separator(path: Path) -> str:
    """';' or ',' — whichever splits the header line into more fields (SKAB uses ';')."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    if not header.strip():
        raise DetectInputError(f"{path}: the file is empty (no header line)")
    return ";" if header.count(";") > header.count(",") else ","


def line_of(i: int) -> int:
    """Editor line number of data row ``i`` (0-based), counting the header as line 1."""
    return i + 2


def read_table(path: Path, time_col: str, columns: list[str] | None = None) -> ReadingsTable:
    """Read, parse time, pick numeric sensor columns; raise DetectInputError naming what is wrong."""
    if not path.is_file():
        raise DetectInputError(f"{path}: no such file")
    sep = sniff_separator(path)
    try:
        frame = pd.read_csv(path, sep=sep, encoding="utf-8-sig")
    except pd.errors.ParserError as exc:
        raise DetectInputError(f"{path}: malformed CSV ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DetectInputError(f"{path}: no data rows") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise DetectInputError(f"{path}: no data rows")
    if time_col not in frame.columns:
        raise DetectInputError(f"time column {time_col!r} not found; columns are: {', '.join(frame.columns)}")
    seconds = parse_time(frame[time_col], time_col)
    sensors = columns if columns else [c for c in frame.columns if c != time_col]
    missing = [c for c in sensors if c not in frame.columns]
    if missing:
        raise DetectInputError(f"column(s) not found: {', '.join(missing)}; columns are: {', '.join(frame.columns)}")
    if not sensors:
        raise DetectInputError("no sensor columns besides the time column")
    values = np.column_stack([numeric_column(frame[c], c) for c in sensors])
    return ReadingsTable(frame, sep, time_col, seconds, sensors, values)


def numeric_column(col: pd.Series, name: str) -> np.ndarray:
    """The column as floats; empty cells become NaN (a dropout), text is an error naming the row."""
    num = pd.to_numeric(col, errors="coerce")
    bad = num.isna() & col.notna() & (col.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DetectInputError(
            f"column {name!r} is not numeric: line {line_of(i)} holds {col.iloc[i]!r} "
            f"({int(bad.sum())} non-numeric cell(s); pass --columns to pick sensor columns)")
    if num.isna().all():
        raise DetectInputError(f"column {name!r} has no values")
    return num.to_numpy(dtype=float)


def parse_time(col: pd.Series, name: str) -> np.ndarray:
    """Seconds as floats: numbers are taken as seconds, anything else is parsed as a date-time.

    Timestamps must increase strictly: a duplicate or a step back usually means two files were
    concatenated or a logger clock jumped, and a streaming detector would see time run backwards.
    """
    if col.isna().any():
        i = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise DetectInputError(f"time column {name!r} is empty on line {line_of(i)}")
    if pd.api.types.is_numeric_dtype(col):
        sec = col.to_numpy(dtype=float)
    else:
        ts = pd.to_datetime(col, errors="coerce", format="mixed")
        if ts.isna().any():
            i = int(np.flatnonzero(ts.isna().to_numpy())[0])
            raise DetectInputError(f"time column {name!r}: cannot read {col.iloc[i]!r} on line {line_of(i)} as a time")
        sec = (ts - pd.Timestamp("1970-01-01", tz=ts.dt.tz)).dt.total_seconds().to_numpy()
    step = np.diff(sec)
    if (step == 0).any():
        i = int(np.flatnonzero(step == 0)[0]) + 1
        raise DetectInputError(f"time column {name!r}: duplicate timestamp {col.iloc[i]!r} on line {line_of(i)}")
    if (step < 0).any():
        i = int(np.flatnonzero(step < 0)[0]) + 1
        raise DetectInputError(
            f"time column {name!r}: line {line_of(i)} ({col.iloc[i]!r}) is earlier than the line before; "
            "sort the file by time")
    return sec


MAX_EMPTY_TRAINING_SHARE = 0.5


def training_rows(table: ReadingsTable, train_rows: int | None, train_until: str | None,
                  default_share: float = 0.2) -> int:
    """Number of leading rows to learn from: given, up to a timestamp, or the first 20 % by default."""
    n = len(table.values)
    if train_rows is not None and train_until is not None:
        raise DetectInputError("give --train-rows or --train-until, not both")
    if train_until is not None:
        limit = parse_time(pd.Series([train_until]), "--train-until")[0] if not _is_number(train_until) \
            else float(train_until)
        k = int(np.searchsorted(table.seconds, limit, side="right"))
    elif train_rows is not None:
        k = train_rows
    else:
        k = max(1, int(n * default_share))
    if k < 1 or k > n:
        raise DetectInputError(f"training part must be 1..{n} rows, got {k}")
    train = table.values[:k]
    # Real histories have dropouts; rows with gaps are left out of fitting (TableDetector.fit), but a
    # column that is mostly empty in training has nothing to learn from and must be named.
    empty = (~np.isfinite(train)).mean(axis=0)
    if (empty > MAX_EMPTY_TRAINING_SHARE).any():
        j = int(np.argmax(empty))
        raise DetectInputError(
            f"column {table.sensors[j]!r} is empty in {100 * empty[j]:.0f} % of the training rows; "
            "choose a training part where it reports, or leave the column out with --columns")
    return k


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

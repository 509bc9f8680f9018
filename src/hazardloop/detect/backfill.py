"""Backfill: re-score a Parquet sensor history with the live detectors, here or on a Dask cluster.

After a detector changes, months of history are judged again by the very code the live path runs
(``StreamingMonitor`` with the plant register's limits, deadbands, delays and sample periods, the
same defaults as ``alarms.live.LiveDetection``), so the new verdicts can be compared with the old.

How the work is split, and why
------------------------------
The streaming detectors carry state from row to row: deadband latches and on/off delays, the time
of the last change (stuck), the last good reading and its time (spikes, gaps). Cutting the history
into day slices would restart that state at every midnight: a reading stuck since 23:50 would not
be stuck at 00:05, an HH alarm on its on-delay would never fire. So a **work unit is a group of
sensors over the whole period**: each sensor's history runs through one monitor in time order,
start to end, inside one task. Units are packed from whole sensors (sorted by tag) up to a budget
of readings, so a cluster gets many tasks of similar size and each fits in a worker's memory.

Inside a unit, sensors with exactly the same timestamps (a historian's scan grid) are judged
together in one matrix, vectorised as the live path is; a sensor with its own timing is judged
alone, so no sensor ever sees rows that are not its own readings. Every per-sensor computation of
the monitor is column-wise, hence **a sensor's result does not depend on which unit it lands in,
how the history is chunked, or where the unit runs**: local and cluster runs write the same rows.
Learning normal (median, MAD, usual jump) uses each sensor's first ``train_hours`` of readings.

Input: Parquet files under a folder, any hive layout (``date=2026-01-01/``, ``sensor=GT-101/`` …),
read with DuckDB. Columns: a sensor key (``tag``, ``sensor_tag`` or ``sensor``; or ``sensor_id``,
the store's ids, mapped through the register), ``ts`` (timestamp, or integer epoch milliseconds as
the reading store keeps them) and ``value``. Per tag, readings are sorted by time; a second
reading of the same (tag, ts) is dropped (the first in file order wins, as in the reading store)
and counted. Output under ``OUT_DIR``: ``readings/date=YYYY-MM-DD/unit-NNNNN.parquet`` (one row per
reading with z, level, alarms and fault bits) and ``episodes.parquet`` / ``episodes.csv`` (one row
per alarm episode, with the same alarm types, delays and sentences as the live alarm list).

A cluster's workers must see ``HISTORY_DIR`` and ``OUT_DIR`` at the same paths (a shared or
network file system): units read their own sensors and write their own files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from hazardloop.detect.base import DetectInputError, latch
from hazardloop.detect.health import Fault, describe
from hazardloop.detect.limits import AlarmLimits, LimitBank
from hazardloop.detect.pipeline import LEARNED, MonitorResult, StreamingMonitor

TAG_COLUMNS = ("tag", "sensor_tag", "sensor")  # in order of preference; a hive key counts as a column
ID_COLUMN = "sensor_id"
# The live alarm types (alarms.models.AlarmType, fault_type), so an episode reads like a live alarm.
LIMIT_TYPES: tuple[tuple[str, int], ...] = (("limit_hh", 2), ("limit_h", 1), ("limit_l", -1), ("limit_ll", -2))
STATISTICAL = "statistical"
SILENT = "silent"  # no good reading for the sensor's gap: the live path's dead-feed alarm
FAULT_KINDS: tuple[tuple[str, Fault], ...] = (
    ("stuck", Fault.STUCK), ("missing", Fault.MISSING), ("range", Fault.RANGE), ("spike", Fault.SPIKE))
EPISODE_COLUMNS = ["tag", "type", "start", "end", "peak", "peak_at", "readings", "unit", "reason"]
_FAULT_TEXT = np.array([describe(bits) for bits in range(256)], dtype=object)  # bit mask -> 'stuck|spike'


class BackfillInputError(DetectInputError):
    """A history or sensor list the backfill cannot use; the message says what to fix."""


@dataclass(frozen=True)
class SensorSpec:
    """What the detectors need of one register sensor: limits and range, unit, sample period."""

    limits: AlarmLimits
    unit: str = ""
    sample_period_s: float | None = None
    sensor_id: int | None = None  # the store's id, for histories keyed by sensor_id

    @property
    def tag(self) -> str:
        return self.limits.tag


@dataclass(frozen=True)
class BackfillParams:
    """Detector settings; the defaults are those of the live path (``LiveDetection.__init__``)."""

    train_hours: float = 24.0
    min_train_rows: int = 30  # fewer good readings to learn from: no statistical alarm for that sensor
    z_limit: float = 6.0
    stuck_seconds: float = 600.0
    gap_seconds: float = 60.0
    spike_factor: float = 12.0
    missing_on_delay_s: float = 30.0
    fault_off_delay_s: float = 60.0
    stat_off_delay_s: float = 60.0
    chunk_rows: int = 200_000  # rows per monitor update: bounds the temporary arrays, not the result


@dataclass(frozen=True)
class HistorySource:
    """A checked history folder: where its files are and how to read key and time from them."""

    root: str  # absolute path of the folder
    key_column: str  # column holding the tag (or the store's sensor_id)
    keyed_by_id: bool
    ts_sql: str  # SQL giving epoch milliseconds from the ts column

    @property
    def pattern(self) -> str:
        return str(Path(self.root) / "**" / "*.parquet")


@dataclass(frozen=True)
class WorkUnit:
    """One task: these sensors over the whole period. Plain data, so it pickles to any worker."""

    index: int
    source: HistorySource
    sensors: tuple[SensorSpec, ...]
    keys: tuple[str, ...]  # the history's key per sensor (the tag, or the sensor_id as text)
    start_ms: int | None
    end_ms: int | None
    out_dir: str
    params: BackfillParams


@dataclass
class UnitReport:
    """What one unit did; small, so it travels back from a worker."""

    index: int
    readings: dict[str, int]
    duplicates: dict[str, int]
    out_of_order: dict[str, int]
    alarm_readings: dict[str, int]
    episodes: pd.DataFrame
    files: int = 0


@dataclass
class BackfillReport:
    """The whole run: per-sensor counts, every episode, and the sensors of the register without readings."""

    units: int
    readings: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    out_of_order: dict[str, int] = field(default_factory=dict)
    alarm_readings: dict[str, int] = field(default_factory=dict)
    episodes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EPISODE_COLUMNS))
    without_readings: list[str] = field(default_factory=list)
    out_dir: Path | None = None


# ---- checking the history -------------------------------------------------------------------------

def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _scan(pattern: str, *, file_order: bool = False) -> str:
    """The read_parquet call for a history; hive keys stay text (a tag like 101 must not become a number)."""
    extra = ", filename=true, file_row_number=true" if file_order else ""
    path = pattern.replace("'", "''")
    return f"read_parquet('{path}', hive_partitioning=true, hive_types_autocast=false, union_by_name=true{extra})"


def inspect_history(history: Path) -> HistorySource:
    """Check the folder holds Parquet readings with a sensor key, ts and value; say exactly what is missing."""
    root = Path(history).resolve()
    if not root.exists():
        raise BackfillInputError(f"history folder {history} does not exist")
    if not root.is_dir():
        raise BackfillInputError(f"{history} is not a folder; give the folder that holds the Parquet files")
    if next(root.rglob("*.parquet"), None) is None:
        raise BackfillInputError(f"no .parquet files under {history}")
    con = duckdb.connect()
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {_scan(str(root / '**' / '*.parquet'))}").fetchall()
    except duckdb.Error as exc:
        raise BackfillInputError(f"{history}: unreadable Parquet ({exc})") from exc
    finally:
        con.close()
    types = {str(name): str(kind).upper() for name, kind, *_ in described}
    key = next((c for c in TAG_COLUMNS if c in types), ID_COLUMN if ID_COLUMN in types else None)
    missing = [name for name, ok in (("tag (or sensor, sensor_tag, sensor_id)", key is not None),
                                     ("ts", "ts" in types), ("value", "value" in types)) if not ok]
    if missing:
        raise BackfillInputError(f"{history}: missing column(s) {', '.join(missing)}; found {', '.join(types)}")
    ts_type = types["ts"]
    if "TIMESTAMP" in ts_type:
        ts_sql = "epoch_ms(ts)"
    elif ts_type in ("BIGINT", "INTEGER", "HUGEINT", "UBIGINT", "UINTEGER"):
        ts_sql = "CAST(ts AS BIGINT)"  # epoch milliseconds, as the reading store keeps time
    else:
        raise BackfillInputError(f"{history}: column ts is {ts_type}; expected a timestamp or epoch milliseconds")
    return HistorySource(str(root), str(key), key == ID_COLUMN, ts_sql)


def _time_filter(source: HistorySource, start_ms: int | None, end_ms: int | None) -> str:
    parts = []
    if start_ms is not None:
        parts.append(f"{source.ts_sql} >= {int(start_ms)}")
    if end_ms is not None:
        parts.append(f"{source.ts_sql} < {int(end_ms)}")
    return " AND ".join(parts) or "TRUE"


def count_readings(source: HistorySource, start_ms: int | None = None, end_ms: int | None = None) -> dict[str, int]:
    """Readings per key in the period (DuckDB answers from the key and ts columns only)."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT CAST({_quote(source.key_column)} AS VARCHAR) AS k, count(*) FROM {_scan(source.pattern)} "
            f"WHERE {_time_filter(source, start_ms, end_ms)} GROUP BY k ORDER BY k").fetchall()
    finally:
        con.close()
    nulls = [n for k, n in rows if k is None]
    if nulls:
        raise BackfillInputError(f"{source.root}: {nulls[0]} reading(s) without a {source.key_column}")
    return {str(k): int(n) for k, n in rows}


def match_sensors(source: HistorySource, counts: dict[str, int],
                  sensors: Sequence[SensorSpec]) -> list[tuple[str, SensorSpec]]:
    """(history key, sensor) for every key with readings; every key the register does not know is listed."""
    if source.keyed_by_id:
        by_key = {str(s.sensor_id): s for s in sensors if s.sensor_id is not None}
    else:
        by_key = {s.tag: s for s in sensors}
    unknown = sorted(k for k in counts if k not in by_key)
    if unknown:
        shown = ", ".join(unknown[:20]) + (f" (and {len(unknown) - 20} more)" if len(unknown) > 20 else "")
        what = "sensor_id(s)" if source.keyed_by_id else "tag(s)"
        raise BackfillInputError(f"{len(unknown)} {what} in the history are not in the sensor list: {shown}")
    return [(k, by_key[k]) for k in sorted(counts, key=lambda k: by_key[k].tag)]


def plan_units(matched: Sequence[tuple[str, SensorSpec]], counts: dict[str, int], unit_rows: int) -> list[list[int]]:
    """Indices into ``matched``, packed in order into units of at most ``unit_rows`` readings.

    A sensor with more readings than the budget is a unit of its own: its history is never cut.
    """
    units: list[list[int]] = []
    size = 0
    for i, (key, _) in enumerate(matched):
        n = counts[key]
        if not units or size + n > unit_rows:
            units.append([])
            size = 0
        units[-1].append(i)
        size += n
    return units


# ---- scoring: the same code for every unit, wherever it runs -------------------------------------

def gap_seconds(sensors: Sequence[SensorSpec], params: BackfillParams) -> np.ndarray:
    """Silence that makes a feed dead: at least five sample periods, as ``LiveDetection`` has it."""
    return np.array([max(params.gap_seconds, 5 * (s.sample_period_s or 0.0)) for s in sensors], dtype=float)


def monitor_for(sensors: Sequence[SensorSpec], params: BackfillParams) -> StreamingMonitor:
    """The live path's monitor for these sensors."""
    return StreamingMonitor(len(sensors), LimitBank([s.limits for s in sensors]), z_limit=params.z_limit,
                            stuck_seconds=params.stuck_seconds, gap_seconds=gap_seconds(sensors, params),
                            spike_factor=params.spike_factor)


def score_group(sensors: Sequence[SensorSpec], seconds: np.ndarray, values: np.ndarray,
                params: BackfillParams) -> tuple[MonitorResult, np.ndarray]:
    """Judge sensors sharing one time axis, start to end: (result per reading, which sensors learned normal).

    ``values`` is (n_rows, n_sensors). Normal is learned from the first ``train_hours`` of rows; a
    sensor with fewer than ``min_train_rows`` good readings there gets no z and no statistical alarm
    (as in live detection: no alarm rather than one against a made-up normal).
    """
    monitor = monitor_for(sensors, params)
    train = seconds < seconds[0] + params.train_hours * 3600.0
    fitted = np.isfinite(values[train]).sum(axis=0) >= params.min_train_rows
    if fitted.any():
        learned = StreamingMonitor(int(fitted.sum()), spike_factor=params.spike_factor).fit(values[train][:, fitted])
        for key in LEARNED:
            getattr(monitor, key)[fitted] = getattr(learned, key)
    step = max(1, params.chunk_rows)
    parts = [monitor.update(seconds[a:a + step], values[a:a + step]) for a in range(0, len(seconds), step)]
    result = MonitorResult(*(np.concatenate([getattr(p, name) for p in parts]) for name in
                             ("z", "level", "limit_alarm", "stat_alarm", "faults")))
    result.z[:, ~fitted] = np.nan
    result.stat_alarm[:, ~fitted] = False
    return result, fitted


def _delayed(cond: np.ndarray, seconds: np.ndarray, on_delay: np.ndarray, off_delay: np.ndarray) -> np.ndarray:
    """The live alarm of a per-row condition: on once it held ``on_delay`` s, off once absent ``off_delay`` s."""
    prev = np.vstack([np.zeros((1, cond.shape[1]), dtype=bool), cond[:-1]])
    idx = np.arange(len(cond), dtype=np.int64)[:, None]
    last = np.maximum.accumulate(np.where(cond != prev, idx, -1), axis=0)
    since = np.where(last >= 0, seconds[np.maximum(last, 0)], -np.inf)
    held = seconds[:, None] - since
    return latch(cond & (held >= on_delay), ~cond & (held >= off_delay), False)


def _alarm_types(result: MonitorResult, bank: LimitBank, params: BackfillParams):  # noqa: ANN202 - a generator
    """(type, condition, on_delay, off_delay, level) for each live alarm type."""
    for name, level in LIMIT_TYPES:
        cond = result.level >= level if level > 0 else result.level <= level
        yield name, cond, bank.on_delay, bank.off_delay, level
    p = result.level.shape[1]
    yield STATISTICAL, result.stat_alarm, np.zeros(p), np.full(p, params.stat_off_delay_s), 0
    for kind, bit in FAULT_KINDS:
        on = params.missing_on_delay_s if bit == Fault.MISSING else 0.0
        yield (f"sensor_fault:{kind}", (result.faults & np.uint8(bit)) > 0, np.full(p, on),
               np.full(p, params.fault_off_delay_s), 0)


def _at(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(round(seconds * 1000), unit="ms", tz="UTC")


def find_episodes(sensors: Sequence[SensorSpec], seconds: np.ndarray, values: np.ndarray, result: MonitorResult,
                  params: BackfillParams) -> pd.DataFrame:
    """One row per alarm episode: the live path's alarm types and delays, run over the whole history.

    ``end`` is when the alarm cleared (empty while still active at the end of the history); ``peak``
    is the reading furthest out (limits, statistical, range), empty for faults without a size.
    """
    bank = LimitBank([s.limits for s in sensors])
    rows: list[dict[str, Any]] = []
    for name, cond, on_delay, off_delay, level in _alarm_types(result, bank, params):
        cols = np.flatnonzero(cond.any(axis=0))
        if cols.size == 0:
            continue
        alarm = _delayed(cond[:, cols], seconds, on_delay[cols], off_delay[cols])
        for j, col in enumerate(cols):
            a = alarm[:, j]
            prev = np.concatenate([[False], a[:-1]])
            starts, ends = np.flatnonzero(a & ~prev), np.flatnonzero(~a & prev)
            for k, start in enumerate(starts):
                end = int(ends[k]) if k < len(ends) else None
                rows.append(_episode(sensors[col], name, level, col, start, end, seconds, values[:, col],
                                     result, cond[:, col], bank, params))
    rows.extend(_silences(sensors, seconds, values, gap_seconds(sensors, params)))
    return pd.DataFrame(rows, columns=EPISODE_COLUMNS)


def _silences(sensors: Sequence[SensorSpec], seconds: np.ndarray, values: np.ndarray,
              gaps: np.ndarray) -> list[dict[str, Any]]:
    """Gaps between good readings of at least the sensor's gap: raised when the feed fell silent (its
    last good reading plus the gap, as the live timer would), ended by the next good reading."""
    rows = []
    for col, sensor in enumerate(sensors):
        good = seconds[np.isfinite(values[:, col])]
        for i in np.flatnonzero(np.diff(good) >= gaps[col]):
            rows.append({"tag": sensor.tag, "type": SILENT, "start": _at(good[i] + gaps[col]), "end": _at(good[i + 1]),
                         "peak": np.nan, "peak_at": pd.NaT, "readings": 0, "unit": sensor.unit,
                         "reason": f"{sensor.tag} silent: no good reading for {gaps[col]:g} s"})
    return rows


def _episode(sensor: SensorSpec, name: str, level: int, col: int, start: int, end: int | None, seconds: np.ndarray,
             x: np.ndarray, result: MonitorResult, cond: np.ndarray, bank: LimitBank,
             params: BackfillParams) -> dict[str, Any]:
    hi = len(x) if end is None else end
    span = slice(start, hi)
    if level:
        score = x[span] if level > 0 else -x[span]
    elif name == STATISTICAL:
        score = result.z[span, col].astype(float)
    elif name == "sensor_fault:range":
        score = np.maximum(bank.physical_min[col] - x[span], x[span] - bank.physical_max[col])
    else:
        score = None
    peak, peak_at = np.nan, pd.NaT
    if score is not None:
        score = np.where(cond[span] & np.isfinite(score), score, -np.inf)
        best = start + int(np.argmax(score))
        peak, peak_at = float(x[best]), _at(seconds[best])
    held = (seconds[end] if end is not None else seconds[-1]) - seconds[start]
    if level:
        on = float(bank.on_delay[col])
        reason = bank.describe(col, level, held_s=on if on > 0 else None) + f", peak {peak:g} {sensor.unit}".rstrip()
    elif name == STATISTICAL:
        z = float(np.nanmax(np.where(cond[span], result.z[span, col], np.nan)))
        reason = f"{sensor.tag} {z:.1f} robust sigma from normal (limit {params.z_limit:g})"
    else:
        reason = f"{sensor.tag} sensor fault: {name.split(':', 1)[1]} for {held:.0f} s"
    return {"tag": sensor.tag, "type": name, "start": _at(seconds[start]),
            "end": _at(seconds[end]) if end is not None else pd.NaT, "peak": peak, "peak_at": peak_at,
            "readings": int(cond[span].sum()), "unit": sensor.unit, "reason": reason}


def _reading_frame(members: Sequence[int], ts_ms: np.ndarray, values: np.ndarray,
                   result: MonitorResult) -> pd.DataFrame:
    """Long format, one row per reading, numbers only (tag and fault text are joined in by DuckDB);
    a column-major ravel keeps each sensor's rows together."""
    n, p = values.shape
    return pd.DataFrame({
        "sensor": np.repeat(np.asarray(members, dtype=np.int32), n),
        "ts_ms": np.tile(ts_ms, p),
        "value": values.ravel(order="F"),
        "z": result.z.ravel(order="F"),
        "level": result.level.ravel(order="F"),
        "limit_alarm": result.limit_alarm.ravel(order="F"),
        "stat_alarm": result.stat_alarm.ravel(order="F"),
        "faults": result.faults.ravel(order="F"),
        "alarm": result.alarm.ravel(order="F"),
    })


def read_unit(unit: WorkUnit, con: duckdb.DuckDBPyConnection
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int], dict[str, int]]:
    """(sensor index, ts ms, value) sorted by sensor then time, first of each (sensor, ts) kept;
    and per tag the dropped duplicates and the readings found out of time order (file order)."""
    source = unit.source
    keys = ", ".join(f"('{k.replace(chr(39), chr(39) * 2)}', {i})" for i, k in enumerate(unit.keys))
    scan = _scan(source.pattern, file_order=True)
    got = con.execute(  # the sensor's position comes back instead of its key: no per-row strings in Python
        f"SELECT w.i, {source.ts_sql} AS t, CAST(value AS DOUBLE) AS v FROM {scan} "
        f"JOIN (VALUES {keys}) AS w(k, i) ON CAST({_quote(source.key_column)} AS VARCHAR) = w.k "
        f"WHERE {_time_filter(source, unit.start_ms, unit.end_ms)} ORDER BY filename, file_row_number").fetchnumpy()
    sensor = np.asarray(got["i"], dtype=np.int64)
    ts = np.asarray(got["t"], dtype=np.int64)
    value = np.ma.filled(np.ma.asarray(got["v"], dtype=float), np.nan)  # a NULL value is a missing reading
    order = np.lexsort((ts, sensor))  # stable: equal keys keep file order, so the first one wins
    by_sensor = sensor[np.argsort(sensor, kind="stable")]
    ts_file_order = ts[np.argsort(sensor, kind="stable")]
    back = np.zeros(len(ts), dtype=bool)
    back[1:] = (by_sensor[1:] == by_sensor[:-1]) & (ts_file_order[1:] < ts_file_order[:-1])
    sensor, ts, value = sensor[order], ts[order], value[order]
    repeat = np.zeros(len(ts), dtype=bool)
    repeat[1:] = (sensor[1:] == sensor[:-1]) & (ts[1:] == ts[:-1])
    tags = [s.tag for s in unit.sensors]
    duplicates = {tags[i]: int(n) for i, n in enumerate(np.bincount(sensor[repeat], minlength=len(tags)))}
    out_of_order = {tags[i]: int(n) for i, n in enumerate(np.bincount(by_sensor[back], minlength=len(tags)))}
    keep = ~repeat
    return sensor[keep], ts[keep], value[keep], duplicates, out_of_order


def _grids(sensor: np.ndarray, ts: np.ndarray) -> list[tuple[list[int], np.ndarray]]:
    """Sensors grouped by identical timestamps: (sensor indices, shared ts) per group, in sensor order."""
    cuts = np.flatnonzero(np.diff(sensor)) + 1
    starts, ends = np.concatenate(([0], cuts)), np.concatenate((cuts, [len(sensor)]))
    groups: dict[tuple[int, int], list[tuple[list[int], np.ndarray]]] = {}
    ordered: list[tuple[list[int], np.ndarray]] = []
    for a, b in zip(starts, ends, strict=True):
        t = ts[a:b]
        bucket = groups.setdefault((len(t), hash(t.tobytes())), [])
        match = next((g for g in bucket if np.array_equal(g[1], t)), None)
        if match is None:
            match = ([], t)
            bucket.append(match)
            ordered.append(match)
        match[0].append(int(sensor[a]))
    return ordered


def run_unit(unit: WorkUnit) -> UnitReport:
    """Read, judge and write one unit. The only function a local pool or a Dask worker ever calls."""
    con = duckdb.connect()  # one per unit: opening one costs more than reading a small unit
    try:
        return _score_unit(unit, con)
    finally:
        con.close()


def _score_unit(unit: WorkUnit, con: duckdb.DuckDBPyConnection) -> UnitReport:
    sensor, ts, value, duplicates, out_of_order = read_unit(unit, con)
    tags = [s.tag for s in unit.sensors]
    readings = {tag: int(n) for tag, n in zip(tags, np.bincount(sensor, minlength=len(tags)), strict=True)}
    alarm_readings = dict.fromkeys(tags, 0)
    frames, episodes = [], []
    starts = np.searchsorted(sensor, np.arange(len(tags)))
    for members, grid in _grids(sensor, ts):
        specs = [unit.sensors[i] for i in members]
        x = np.column_stack([value[starts[i]:starts[i] + len(grid)] for i in members])
        seconds = grid / 1000.0
        result, _ = score_group(specs, seconds, x, unit.params)
        for spec, n in zip(specs, result.alarm.sum(axis=0), strict=True):
            alarm_readings[spec.tag] = int(n)
        frames.append(_reading_frame(members, grid, x, result))
        episodes.append(find_episodes(specs, seconds, x, result, unit.params))
    files = _write_readings(unit, pd.concat(frames, ignore_index=True), con) if frames else 0
    found = [e for e in episodes if len(e)]
    episode_frame = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=EPISODE_COLUMNS)
    return UnitReport(unit.index, readings, duplicates, out_of_order, alarm_readings, episode_frame, files)


def _write_readings(unit: WorkUnit, frame: pd.DataFrame, con: duckdb.DuckDBPyConnection) -> int:
    """readings/date=YYYY-MM-DD/unit-NNNNN.parquet, UTC dates as the reading store exports.

    DuckDB writes the unit's days into a staging folder of its own; each file is then renamed into
    place. A unit never shares a file or a half-made folder with another, and a retried unit (a lost
    Dask worker) simply replaces its files.
    """
    out = Path(unit.out_dir)
    name = f"unit-{unit.index:05d}"
    staging = out / "_staging" / name
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    con.register("scored", frame)
    con.register("tags", pd.DataFrame({"sensor": np.arange(len(unit.sensors), dtype=np.int32),
                                       "tag": [s.tag for s in unit.sensors]}))
    con.register("fault_text", pd.DataFrame({"faults": np.arange(256, dtype=np.uint8), "fault": _FAULT_TEXT}))
    target = str(staging).replace("'", "''")
    con.execute(
        "COPY (SELECT t.tag, make_timestamptz(s.ts_ms * 1000) AS ts, s.value, s.z, s.level, s.limit_alarm, "
        "s.stat_alarm, s.faults, f.fault, s.alarm, strftime(make_timestamp(s.ts_ms * 1000), '%Y-%m-%d') AS date "
        "FROM scored s JOIN tags t USING (sensor) JOIN fault_text f USING (faults) ORDER BY t.tag, s.ts_ms) "
        f"TO '{target}' (FORMAT PARQUET, PARTITION_BY (date))")
    for table in ("scored", "tags", "fault_text"):
        con.unregister(table)
    files = sorted(staging.glob("date=*/*.parquet"))
    for day in sorted({f.parent.name for f in files}):
        (out / "readings" / day).mkdir(parents=True, exist_ok=True)
    for file in files:
        same_day = sorted(f for f in files if f.parent == file.parent)
        suffix = "" if len(same_day) == 1 else f"-{same_day.index(file)}"
        os.replace(file, out / "readings" / file.parent.name / f"{name}{suffix}.parquet")
    shutil.rmtree(staging, ignore_errors=True)
    return len(files)


# ---- running the units ----------------------------------------------------------------------------

Progress = Callable[[UnitReport, int], None]  # called with each finished unit and the number of units


def _run_local(units: list[WorkUnit], workers: int, on_done: Progress) -> list[UnitReport]:
    if workers <= 1:
        reports = []
        for unit in units:
            reports.append(run_unit(unit))
            on_done(reports[-1], len(units))
        return reports
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_unit, unit) for unit in units]
        reports = []
        for future in as_completed(futures):
            reports.append(future.result())
            on_done(reports[-1], len(units))
    return reports


def _run_on_cluster(address: str, units: list[WorkUnit], on_done: Progress) -> list[UnitReport]:
    """Submit ``run_unit`` per unit through a ``dask.distributed.Client``; dask is imported only here."""
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError as exc:
        raise BackfillInputError("--cluster needs dask: pip install 'hazardloop[cluster]'") from exc
    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except OSError as exc:
        raise BackfillInputError(f"no Dask scheduler at {address} ({exc})") from exc
    with client:
        futures = client.map(run_unit, units, pure=False)
        reports = []
        for future in dask_completed(futures, loop=client.loop):
            reports.append(future.result())
            on_done(reports[-1], len(units))
    return reports


def _epoch_ms(when: dt.datetime | None) -> int | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)  # the command line speaks UTC, as the Parquet dates do
    return int(round(when.timestamp() * 1000))


def backfill(history: Path, out_dir: Path, sensors: Sequence[SensorSpec], *,
             params: BackfillParams | None = None, start: dt.datetime | None = None, end: dt.datetime | None = None,
             cluster: str | None = None, workers: int = 1, unit_rows: int = 5_000_000,
             on_plan: Callable[[int], None] | None = None, on_done: Progress | None = None) -> BackfillReport:
    """Re-score a history folder into ``out_dir`` (which must be new or empty); see the module docstring.

    ``cluster``: a Dask scheduler address (``tcp://host:8786``); otherwise this machine, in-process or
    with ``workers`` processes. ``unit_rows`` is the reading budget of one unit.
    """
    params = params or BackfillParams()
    out = Path(out_dir).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackfillInputError(f"{out_dir} is not empty; backfill into a new folder")
    source = inspect_history(Path(history))
    if out.is_relative_to(source.root):
        raise BackfillInputError(f"{out_dir} lies inside the history {history}; write the results elsewhere")
    start_ms, end_ms = _epoch_ms(start), _epoch_ms(end)
    counts = count_readings(source, start_ms, end_ms)
    matched = match_sensors(source, counts, sensors)
    plan = plan_units(matched, counts, unit_rows)
    units = [WorkUnit(i, source, tuple(matched[j][1] for j in idx), tuple(matched[j][0] for j in idx),
                      start_ms, end_ms, str(out), params) for i, idx in enumerate(plan)]
    out.mkdir(parents=True, exist_ok=True)
    if on_plan is not None:
        on_plan(len(units))
    done = on_done or (lambda _report, _total: None)
    reports = _run_on_cluster(cluster, units, done) if cluster else _run_local(units, workers, done)
    with contextlib.suppress(OSError):
        (out / "_staging").rmdir()  # empty once every unit moved its files into place
    report = _combine(sorted(reports, key=lambda r: r.index), sensors, out)
    _write_episodes(out, report.episodes)
    return report


def _combine(reports: list[UnitReport], sensors: Sequence[SensorSpec], out: Path) -> BackfillReport:
    report = BackfillReport(units=len(reports), out_dir=out)
    for unit in reports:
        report.readings.update(unit.readings)
        report.duplicates.update(unit.duplicates)
        report.out_of_order.update(unit.out_of_order)
        report.alarm_readings.update(unit.alarm_readings)
    found = [r.episodes for r in reports if len(r.episodes)]
    if found:
        report.episodes = (pd.concat(found, ignore_index=True)
                           .sort_values(["tag", "start", "type"], kind="stable", ignore_index=True))
    report.without_readings = sorted(s.tag for s in sensors if s.tag not in report.readings)
    return report


def _write_episodes(out: Path, episodes: pd.DataFrame) -> None:
    """episodes.parquet for tools, episodes.csv (UTF-8 with BOM, so Excel shows Chinese tags) for people."""
    con = duckdb.connect()
    try:
        con.register("episodes", episodes)
        path = str(out / "episodes.parquet").replace("'", "''")
        con.execute(f"COPY episodes TO '{path}' (FORMAT PARQUET)")
    finally:
        con.close()
    episodes.to_csv(out / "episodes.csv", index=False, encoding="utf-8-sig", date_format="%Y-%m-%dT%H:%M:%S.%fZ")


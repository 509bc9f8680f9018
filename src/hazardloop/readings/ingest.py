"""Turning incoming readings (JSON, CSV, Parquet) into stored ones, with one set of checks for all three.

Policy, and why:

* **Partial acceptance.** A batch stores its good rows and lists every bad one. Readings are
  measurements, not a ledger: a gateway batching a hundred sensors must not lose ninety-nine good
  ones because one transmitter failed, and re-sending is safe because the store is idempotent on
  (sensor, ts). The answer says exactly which rows were rejected and why; the caller re-sends those.
  Nothing already stored is changed by any batch: a different value for a stored (sensor, ts) is a
  rejection, never an overwrite.
* **Never rescaled.** A unit given with a reading must be the sensor's unit. A %LEL detector sent in
  ppm is a rejection naming the row and field; guessing a conversion factor for a gas detector would
  be a safety bug.
* **Physical range with the NAMUR NE 43 allowance.** A 4–20 mA transmitter may legitimately read a
  little beyond its calibrated span: NE 43 defines valid measurement down to 3.8 mA (−1.25 % of span)
  and up to 20.5 mA (+3.125 %). Beyond that the signal means "failed", so the reading is rejected.
* **Time.** ts is an ISO 8601 string or epoch milliseconds. A string without an offset is plant time
  (``tz``, Asia/Shanghai by default: the zone of the plants we serve). Readings more than
  ``FUTURE_SKEW`` ahead of the server clock or before 2000 are rejected (a clock fault, or epoch
  seconds sent as milliseconds); late and out-of-order readings are ordinary and accepted.
* **Scope.** Tags resolve through the plant service as the actor sees them: a token scoped to area A
  cannot write a sensor of area B, and is told "unknown sensor" — the same words as for a tag that does
  not exist, so nothing about other areas leaks.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sqlalchemy.orm import Session

from hazardloop.auth import authz
from hazardloop.auth.models import User
from hazardloop.errors import InvalidInput
from hazardloop.plant import service as plant
from hazardloop.readings.store import now_ms, read_parquet

if TYPE_CHECKING:
    from hazardloop.readings.stores import AnyStore

PLANT_TZ = ZoneInfo("Asia/Shanghai")
FUTURE_SKEW = timedelta(minutes=5)  # gateway clocks drift; more than this ahead is a clock fault
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # nothing we ingest is older; catches epoch seconds sent as ms
UNDER_RANGE = 0.0125  # NAMUR NE 43: 3.8 mA on a 4–20 mA loop = −1.25 % of span
OVER_RANGE = 0.03125  # NAMUR NE 43: 20.5 mA = +3.125 % of span

_HAS_OFFSET = re.compile(r"[T ]\d.*(?:Z|z|[+-]\d{2}(?::?\d{2})?)$")
_TIME_HEADERS = ("timestamp", "ts", "time", "datetime", "时间")


class Rejection(BaseModel):
    """One reason one row was not stored. row: JSON array index (0-based), or CSV line (header = 1)."""

    row: int
    tag: str | None
    field: str
    reason: str


class IngestReport(BaseModel):
    received: int
    accepted: int  # newly stored, durable
    duplicates: int  # already stored with the same value: nothing to do
    rejected: list[Rejection]


@dataclass
class RawBatch:
    """Readings as they arrived, before any check: aligned arrays, one entry per reading."""

    row: np.ndarray  # int64, the row number reported back
    tag: np.ndarray  # object (str or None)
    ts: np.ndarray  # object, int64 epoch ms or datetime64
    value: np.ndarray  # object or float64
    unit: np.ndarray | None = None  # object (str or None); None: no unit column at all
    problems: list[Rejection] | None = None  # structural problems found while parsing

    def __len__(self) -> int:
        return len(self.row)


# ---------------------------------------------------------------- parsing the three formats


def batch_from_json(payload: Any) -> RawBatch:
    """``{"readings": [{"tag", "ts", "value", "unit"?}, ...]}``, or columnar ``{"tag", "ts": [...], "values": [...]}``.

    The columnar form is for high rates: one tag, numbers only, parsed straight into arrays.
    """
    if not isinstance(payload, dict):
        raise InvalidInput("body", 'expected {"readings": [...]} or {"tag": ..., "ts": [...], "values": [...]}')
    if "readings" in payload:
        return _rows_form(payload["readings"])
    if {"tag", "ts", "values"} <= payload.keys():
        return _columnar_form(payload)
    raise InvalidInput("body", 'expected {"readings": [...]} or {"tag": ..., "ts": [...], "values": [...]}')


def _rows_form(rows: Any) -> RawBatch:
    if not isinstance(rows, list):
        raise InvalidInput("readings", "must be a list of {tag, ts, value[, unit]} objects")
    problems: list[Rejection] = []
    good = [(i, r) for i, r in enumerate(rows) if isinstance(r, dict)]
    problems += [
        Rejection(row=i, tag=None, field="row", reason="must be an object with tag, ts, value[, unit]")
        for i, r in enumerate(rows)
        if not isinstance(r, dict)
    ]
    has_unit = any("unit" in r for _, r in good)
    return RawBatch(
        row=np.fromiter((i for i, _ in good), np.int64, len(good)),
        tag=_objects([r.get("tag") for _, r in good]),
        ts=_objects([r.get("ts") for _, r in good]),
        value=_objects([r.get("value") for _, r in good]),
        unit=_objects([r.get("unit") for _, r in good]) if has_unit else None,
        problems=problems,
    )


def _columnar_form(payload: dict) -> RawBatch:
    ts, values = payload["ts"], payload["values"]
    if not isinstance(ts, list) or not isinstance(values, list):
        raise InvalidInput("ts", "ts and values must be lists of the same length")
    if len(ts) != len(values):
        raise InvalidInput("values", f"{len(values)} values for {len(ts)} timestamps; they must pair up")
    n = len(ts)
    unit = payload.get("unit")
    return RawBatch(
        row=np.arange(n, dtype=np.int64),
        tag=np.full(n, payload["tag"], dtype=object),
        ts=_fast_array(ts),
        value=_fast_array(values),
        unit=None if unit is None else np.full(n, unit, dtype=object),
    )


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _fast_array(items: list) -> np.ndarray:
    """A numeric array when every item is a plain number (the high-rate path), else objects."""
    if all(type(v) in (int, float) for v in items):
        return np.asarray(items, dtype=np.float64 if any(type(v) is float for v in items) else np.int64)
    return _objects(items)


def batch_from_csv(text: str) -> RawBatch:
    """Long CSV (tag, ts, value[, unit]) or wide CSV (a time column, then one column per tag).

    The wide form is what the demo writes (var/demo/sensor_history.csv): an empty cell means no reading
    arrived, so it is skipped, not rejected. Rows are reported as CSV lines with the header as line 1.
    """
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput("file", f"not a readable CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    lower = {c.lower(): c for c in frame.columns}
    line = np.arange(len(frame), dtype=np.int64) + 2
    if {"tag", "value"} <= lower.keys() and ({"ts", "timestamp"} & lower.keys()):
        ts_col = lower.get("ts") or lower["timestamp"]
        unit = frame[lower["unit"]].to_numpy(dtype=object) if "unit" in lower else None
        return RawBatch(
            row=line,
            tag=frame[lower["tag"]].to_numpy(dtype=object),
            ts=frame[ts_col].to_numpy(dtype=object),
            value=frame[lower["value"]].to_numpy(dtype=object),
            unit=unit,
        )
    time_col = next((lower[h] for h in _TIME_HEADERS if h in lower), None)
    if time_col is None or len(frame.columns) < 2:
        raise InvalidInput(
            "file", "expected columns tag,ts,value[,unit], or a wide CSV: timestamp then one column per tag"
        )
    tags = [c for c in frame.columns if c != time_col]
    cells = frame[tags].to_numpy(dtype=object)  # (n_rows, n_tags)
    present = cells != ""
    r, c = np.nonzero(present)  # row-major: readings in file order
    return RawBatch(
        row=line[r],
        tag=np.asarray(tags, dtype=object)[c],
        ts=frame[time_col].to_numpy(dtype=object)[r],
        value=cells[r, c],
    )


def batch_from_frame(frame: pd.DataFrame) -> RawBatch:
    """A frame of tag, ts (epoch ms), value[, unit] — what ``store.read_parquet`` gives. Rows count from 1."""
    return RawBatch(
        row=np.arange(1, len(frame) + 1, dtype=np.int64),
        tag=frame["tag"].to_numpy(dtype=object),
        ts=frame["ts"].to_numpy(),
        value=frame["value"].to_numpy(dtype=np.float64),
        unit=frame["unit"].to_numpy(dtype=object) if "unit" in frame.columns else None,
    )


# ---------------------------------------------------------------- the checks


def parse_ts(raw: np.ndarray, tz: ZoneInfo = PLANT_TZ) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ms (int64) and an ok mask, from numbers (epoch ms), ISO 8601 strings, or datetime64."""
    n = len(raw)
    ms = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    if n == 0:
        return ms, ok
    if np.issubdtype(raw.dtype, np.datetime64):
        good = ~np.isnat(raw)
        ms[good] = raw[good].astype("datetime64[ms]").astype(np.int64)
        return ms, good
    if raw.dtype.kind in "iuf":
        numbers = raw.astype(np.float64)
        good = np.isfinite(numbers) & (np.abs(numbers) < 2**62)
        ms[good] = numbers[good].astype(np.int64)
        return ms, good
    series = pd.Series(raw, dtype=object)
    kinds = series.map(type)
    numeric = kinds.isin([int, float]).to_numpy()
    texts = kinds.eq(str).to_numpy()
    if numeric.any():
        ms[numeric], ok[numeric] = parse_ts(np.asarray(list(raw[numeric]), dtype=np.float64), tz)
    if texts.any():
        strings = series[texts].str.strip()
        digits = strings.str.fullmatch(r"-?\d+").to_numpy()
        aware = strings.str.contains(_HAS_OFFSET).to_numpy() & ~digits
        naive = ~aware & ~digits
        idx = np.flatnonzero(texts)
        if digits.any():
            ms[idx[digits]], ok[idx[digits]] = parse_ts(strings[digits].astype(np.int64).to_numpy(), tz)
        if aware.any():
            parsed = pd.to_datetime(strings[aware], utc=True, errors="coerce", format="ISO8601")
            ms[idx[aware]], ok[idx[aware]] = _ms(parsed)
        if naive.any():
            parsed = pd.to_datetime(strings[naive], errors="coerce", format="ISO8601")
            ms[idx[naive]], ok[idx[naive]] = _ms(parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT"))
    return ms, ok


def _ms(parsed: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    good = parsed.notna().to_numpy()
    out = np.zeros(len(parsed), dtype=np.int64)
    if good.any():
        out[good] = (
            parsed[good].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
        )
    return out, good


def parse_values(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Floats, a "missing" mask and a "not a number at all" mask (text, booleans, objects)."""
    if raw.dtype.kind in "iuf":
        values = raw.astype(np.float64)
        return values, np.zeros(len(values), bool), np.zeros(len(values), bool)
    series = pd.Series(raw, dtype=object)
    kinds = series.map(type)
    missing = (kinds.eq(type(None)) | series.eq("")).to_numpy()  # a float NaN is not missing: it is NaN
    is_bool = kinds.eq(bool).to_numpy()
    values = pd.to_numeric(series.where(~is_bool), errors="coerce").to_numpy(dtype=np.float64)
    text_nan = series.map(lambda v: isinstance(v, str) and v.strip().lower() in ("nan", "-nan", "+nan")).to_numpy()
    sent_nan = kinds.isin([float, np.float64]).to_numpy() & np.isnan(values)  # JSON NaN token: a NaN, not text
    not_number = (np.isnan(values) & ~missing & ~text_nan & ~sent_nan) | is_bool
    return values, missing, not_number


@dataclass(frozen=True)
class Register:
    """The sensors a writer may write, as aligned arrays: what the checks look tags up in.

    Built once per HTTP request from the actor's visible sensors, or cached by a connector sink for
    the whole plant; either way the checks see arrays, so a batch is checked without a Python loop.
    """

    tags: pd.Index  # str
    ids: np.ndarray  # int32
    units: np.ndarray  # object (str)
    range_min: np.ndarray  # float64
    range_max: np.ndarray  # float64
    positions: dict[str, int] = field(default_factory=dict)  # tag -> position; `of` fills it

    @classmethod
    def of(cls, sensors: Iterable[Any]) -> Register:
        """From anything with tag, id, unit, range_min, range_max (ORM sensors or query rows)."""
        rows = list(sensors)
        tags = [s.tag for s in rows]
        return cls(
            tags=pd.Index(tags, dtype=object),
            ids=np.array([s.id for s in rows], dtype=np.int32),
            units=np.array([s.unit for s in rows], dtype=object),
            range_min=np.array([s.range_min for s in rows], dtype=np.float64),
            range_max=np.array([s.range_max for s in rows], dtype=np.float64),
            positions={tag: k for k, tag in enumerate(tags)},
        )

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, tags: np.ndarray) -> np.ndarray:
        """Position of each tag in the register, -1 where it is not one (exact match, no stripping).

        A plain dict probe per tag: tens of thousands a batch from a connector, where a pandas indexer
        first re-infers (and converts) the dtype of the whole batch and costs several times as much.
        A batch holding something that cannot be a dict key (a JSON list sent as a tag) is looked up
        item by item, that item as not found.
        """
        if not len(self.ids):
            return np.full(len(tags), -1, dtype=np.intp)
        positions = self.positions or {tag: k for k, tag in enumerate(self.tags)}
        try:
            return np.fromiter(map(positions.get, tags, repeat(-1)), dtype=np.intp, count=len(tags))
        except TypeError:
            found = (positions.get(t, -1) if isinstance(t, str) else -1 for t in tags)
            return np.fromiter(found, dtype=np.intp, count=len(tags))

    def range_reason(self, value: float, k: int) -> str:
        lo, hi, unit = float(self.range_min[k]), float(self.range_max[k]), self.units[k]
        span = hi - lo
        return (
            f"{value:g} {unit} is outside the sensor's range {lo:g}..{hi:g} {unit} "
            f"(allowed with NAMUR NE 43 over/under-range: {lo - UNDER_RANGE * span:g}..{hi + OVER_RANGE * span:g})"
        )


@dataclass
class Finding:
    """One reason, and the readings of the batch it applies to (a reading may have several)."""

    field: str
    mask: np.ndarray  # bool, aligned with the batch
    reason: str | Callable[[int], str]  # text, or the text for reading i

    def text(self, i: int) -> str:
        return self.reason(i) if callable(self.reason) else self.reason


@dataclass
class Checked:
    """A batch after the checks: the good readings as store-ready arrays, and what was wrong with the rest."""

    good: np.ndarray  # int64 indices into the batch
    sensor_id: np.ndarray  # int32, aligned with good
    ts: np.ndarray  # int64 epoch ms, aligned with good
    value: np.ndarray  # float64, aligned with good
    findings: list[Finding]
    unknown_tags: np.ndarray  # bool mask of readings whose tag is not in the register

    def rejections(self, batch: RawBatch) -> list[Rejection]:
        """One Rejection per (reading, reason), with the row numbers the sender knows."""
        out: list[Rejection] = []
        for finding in self.findings:
            for i in np.flatnonzero(finding.mask):
                tag = batch.tag[i]
                out.append(
                    Rejection(
                        row=int(batch.row[i]),
                        tag=None if tag is None else str(tag),
                        field=finding.field,
                        reason=finding.text(int(i)),
                    )
                )
        return out


def check(batch: RawBatch, register: Register, *, tz: ZoneInfo = PLANT_TZ, now: int | None = None) -> Checked:
    """Every check a reading must pass before it is stored, for every ingest path (HTTP, files, connectors).

    Vectorised over the batch; only rejected readings ever reach Python-level code (their reason text).
    """
    n = len(batch)
    findings: list[Finding] = []
    bad = np.zeros(n, dtype=bool)

    def reject(mask: np.ndarray, field: str, reason: str | Callable[[int], str]) -> None:
        if mask.any():
            findings.append(Finding(field, mask, reason))
            bad[mask] = True

    # Exact tags first (one hash lookup each, in C); only the misses pay for stripping and the missing test.
    index = register.lookup(batch.tag)
    tag_missing = np.zeros(n, dtype=bool)
    miss = np.flatnonzero(index < 0)
    if len(miss):
        tags = pd.Series(batch.tag[miss], dtype=object)
        stripped = tags.astype(str).str.strip()
        blank = (tags.isna() | stripped.eq("")).to_numpy()
        again = register.lookup(stripped.to_numpy(dtype=object))
        again[blank] = -1
        index[miss], tag_missing[miss] = again, blank
    unknown = (index < 0) & ~tag_missing
    reject(tag_missing, "tag", "missing")
    reject(unknown, "tag", "unknown sensor, or not in your areas")
    known = index >= 0
    pos = np.where(known, index, 0)

    ts, ts_ok = parse_ts(batch.ts, tz)
    now = now_ms() if now is None else now
    reject(~ts_ok, "ts", "not a time: use ISO 8601 (2026-11-28T10:00:00+08:00) or epoch milliseconds")
    earliest = int(EARLIEST.timestamp() * 1000)
    reject(ts_ok & (ts < earliest), "ts", "before 2000-01-01: a clock fault, or epoch seconds sent as milliseconds?")
    latest = now + int(FUTURE_SKEW.total_seconds() * 1000)
    reject(
        ts_ok & (ts > latest),
        "ts",
        f"more than {FUTURE_SKEW.total_seconds() / 60:g} min ahead of the server clock: check the sender's clock",
    )

    values, missing, not_number = parse_values(batch.value)
    reject(missing, "value", "missing")
    reject(not_number, "value", "not a number")
    reject(
        np.isnan(values) & ~missing & ~not_number,
        "value",
        "NaN is not a reading: leave the reading out when the sensor gave none",
    )
    reject(np.isinf(values), "value", "infinite")

    if len(register):
        span = register.range_max - register.range_min
        lo_of = (register.range_min - UNDER_RANGE * span)[pos]
        hi_of = (register.range_max + OVER_RANGE * span)[pos]
        with np.errstate(invalid="ignore"):
            out_of_range = known & np.isfinite(values) & ((values < lo_of) | (values > hi_of))
        reject(out_of_range, "value", lambda i: register.range_reason(values[i], pos[i]))

    if batch.unit is not None and len(register):
        units = pd.Series(batch.unit, dtype=object)
        unit_text = units.astype(str).str.strip()
        given = ~(units.isna() | unit_text.eq("")).to_numpy()
        expected = register.units[pos]
        differs = known & given & (unit_text.to_numpy(dtype=object) != expected)
        reject(
            differs,
            "unit",
            lambda i: (
                f"'{str(batch.unit[i]).strip()}' is not the sensor's unit "
                f"'{register.units[pos[i]]}'; readings are never rescaled: "
                f"send them in {register.units[pos[i]]}"
            ),
        )

    good = np.flatnonzero(~bad)
    return Checked(
        good=good,
        sensor_id=register.ids[pos[good]] if len(register) else np.empty(0, np.int32),
        ts=ts[good],
        value=values[good],
        findings=findings,
        unknown_tags=unknown,
    )


def conflict_reason(value: float, stored: float) -> str:
    return (
        f"{value:g} differs from the value already stored for this sensor and time "
        f"({stored:g}); the first value is kept"
    )


def ingest(
    db: Session,
    store: AnyStore,
    *,
    actor: User,
    batch: RawBatch,
    tz: ZoneInfo = PLANT_TZ,
    now: int | None = None,
) -> IngestReport:
    """Check every reading, store the good ones durably, and report the rest row by row."""
    authz.require(actor, "readings.write")
    register = Register.of(plant.list_sensors(db, actor=actor))
    checked = check(batch, register, tz=tz, now=now)
    rejected = list(batch.problems or []) + checked.rejections(batch)
    result = store.insert(checked.sensor_id, checked.ts, checked.value)
    for k, stored in zip(result.conflicts, result.stored_values, strict=True):
        i = checked.good[k]
        rejected.append(
            Rejection(
                row=int(batch.row[i]),
                tag=str(batch.tag[i]),
                field="value",
                reason=conflict_reason(float(checked.value[k]), float(stored)),
            )
        )
    rejected.sort(key=lambda r: r.row)
    return IngestReport(
        received=len(batch) + len(batch.problems or []),
        accepted=result.inserted,
        duplicates=len(result.duplicates),
        rejected=rejected,
    )


def import_parquet(db: Session, store: AnyStore, *, actor: User, source: Path) -> IngestReport:
    """A Parquet file or hive-partitioned folder (as ``export`` writes), through the same checks."""
    try:
        frame = read_parquet(source)
    except ValueError as exc:
        raise InvalidInput("file", str(exc)) from exc
    return ingest(db, store, actor=actor, batch=batch_from_frame(frame))


def export_parquet(
    db: Session, store: AnyStore, *, actor: User, dest: Path, start: int | None = None, end: int | None = None
) -> int:
    """The readings of every sensor the actor sees, as Parquet hive-partitioned by date. Returns the count."""
    authz.require(actor, "readings.read")
    tags = {s.id: s.tag for s in plant.list_sensors(db, actor=actor)}
    return store.export_parquet(dest, tags, start=start, end=end)

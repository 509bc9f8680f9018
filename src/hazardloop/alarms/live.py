"""Live detection: the streaming detectors over every enabled sensor, turned into alarms batch by batch.

The flow per batch of rows (shared timestamps, one column per sensor):

1. ``StreamingMonitor.update`` judges every reading at once (limits with deadband, robust z, sensor
   health) — vectorised over rows and sensors.
2. Each alarm type is a per-row condition (``level >= 1`` for H, the STUCK bit for a stuck sensor …)
   put through its own on/off delay (ISA-18.2 per-alarm delays: H and HH clear separately), again
   vectorised, restricted to the sensors where something happens.
3. Only where a delayed condition starts, ends, re-occurs or reaches a new peak does Python touch an
   alarm row — so a thousand quiet sensors cost nothing beyond step 1.
4. The alarm changes and the detectors' carried state commit in one transaction: a restart resumes
   mid-episode (no re-raise, no lost clear), and a replayed batch is skipped by its timestamps.

Rows come from ``process`` (one reading per tag per row, NaN = no value: a missing-value fault) or,
from the live feed (alarms/feed.py), as sparse aligned rows (``process_rows(sparse=True)``: NaN = the
sensor had no reading at that instant, which is no fault, and its alarm conditions hold until its next
reading), so sensors reporting every second and every minute share one batch without false faults.

Feeding a stream in one batch or in ten gives the same alarms (same first/last/cleared times, peaks
and occurrence counts); the ``silent`` check is the exception by nature, as it looks at the clock
at the end of each batch (or on a timer, ``check_silent``).

Readings that come too late for the stream (a gateway's buffer uploaded after an outage) are judged
apart, by ``judge_backlog``: against the alarm limits only, on a fresh copy of the limit state, and
raised as alarms marked as from a late backlog — see there why the live state is left alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy.orm import Session

from hazardloop import __version__
from hazardloop.alarms import service
from hazardloop.alarms.models import SENSOR_FAULT_PREFIX, AlarmType, ChartWindow, DetectorState, fault_type
from hazardloop.alarms.service import SensorRef
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.detect.base import latch
from hazardloop.detect.health import Fault
from hazardloop.detect.limits import AlarmLimits, LimitBank
from hazardloop.detect.pipeline import LEARNED, MonitorResult, StreamingMonitor
from hazardloop.errors import InvalidInput

log = logging.getLogger(__name__)

STATE_VERSION = 1
FAULT_KINDS: tuple[tuple[str, Fault], ...] = (
    ("stuck", Fault.STUCK), ("missing", Fault.MISSING), ("range", Fault.RANGE), ("spike", Fault.SPIKE))
LIMIT_TYPES: tuple[tuple[str, int], ...] = (
    (AlarmType.LIMIT_HH.value, 2), (AlarmType.LIMIT_H.value, 1), (AlarmType.LIMIT_L.value, -1),
    (AlarmType.LIMIT_LL.value, -2))
ROW_TYPES: tuple[str, ...] = (*(t for t, _ in LIMIT_TYPES), AlarmType.STATISTICAL.value,
                              *(fault_type(kind) for kind, _ in FAULT_KINDS))
CALIBRATION_VERSION = 1


def calibration_name(name: str) -> str:
    """The ``DetectorState`` row holding the verdict-learned limits of detector ``name``.

    A row of its own, not part of the carried state: the running detector rewrites its state every
    batch, so a calibration written by ``alarms.learning`` in another process would be overwritten.
    """
    return f"{name}:calibration"


class SensorConfig(Protocol):
    """The plant register's sensor (ORM row or ``SensorRead``): what live detection reads of it."""

    id: int
    tag: str
    unit: str
    area_id: int
    range_min: float
    range_max: float
    ll: float | None
    l: float | None  # noqa: E741
    h: float | None
    hh: float | None
    deadband: float
    on_delay_s: float
    off_delay_s: float
    sample_period_s: float | None


def limits_of(sensor: SensorConfig) -> AlarmLimits:
    return AlarmLimits.from_config({
        "tag": sensor.tag, "LL": sensor.ll, "L": sensor.l, "H": sensor.h, "HH": sensor.hh,
        "deadband": sensor.deadband or 0.0, "on_delay_s": sensor.on_delay_s or 0.0,
        "off_delay_s": sensor.off_delay_s or 0.0, "range_min": sensor.range_min, "range_max": sensor.range_max,
    })


@dataclass
class ProcessReport:
    """What one batch did, for the ingest worker's log and metrics."""

    rows: int = 0
    skipped_rows: int = 0  # at or before the last processed timestamp (a replayed batch)
    raised: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)
    drafts: list[int] = field(default_factory=list)
    unknown_tags: list[str] = field(default_factory=list)


def _seconds(timestamps: Any) -> np.ndarray:
    """Epoch seconds from floats, numpy datetime64 or aware datetimes."""
    a = np.asarray(timestamps)
    if np.issubdtype(a.dtype, np.datetime64):
        return a.astype("datetime64[us]").astype(np.int64) / 1e6
    if a.dtype == object:
        out = []
        for t in a:
            if isinstance(t, dt.datetime):
                if t.tzinfo is None:
                    raise InvalidInput("timestamps", "naive datetime given; pass aware UTC datetimes")
                out.append(t.timestamp())
            else:
                out.append(float(t))
        return np.asarray(out, dtype=float)
    return a.astype(float)


def _pack(value: Any) -> Any:  # noqa: ANN401 - any part of a state dict
    """Arrays of more than a few numbers as {"array": dtype, "shape", "z": base64(zlib(bytes))}, the rest as is."""
    if isinstance(value, dict):
        return {k: _pack(v) for k, v in value.items()}
    if isinstance(value, list) and value and not isinstance(value[0], str):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        a = value
        if a.dtype.kind in "biuf" and a.size > 16:
            data = base64.b64encode(zlib.compress(np.ascontiguousarray(a).tobytes(), 1)).decode("ascii")
            return {"array": a.dtype.str, "shape": list(a.shape), "z": data}
        return a.tolist()
    return value


def _unpack(obj: dict[str, Any]) -> Any:  # noqa: ANN401 - a JSON object, or the array it stands for
    if set(obj) == {"array", "shape", "z"}:
        raw = zlib.decompress(base64.b64decode(obj["z"]))
        return np.frombuffer(raw, dtype=np.dtype(obj["array"])).reshape(obj["shape"]).copy()
    return obj


def dumps_state(state: dict[str, Any]) -> str:
    """A detector's carried state as JSON text, its arrays packed: at 10,000 sensors the plain JSON lists
    are 4 MB and 70 ms to write, too much for a state committed with every alarm change; packed (zlib of
    the raw bytes — mostly -inf and False) it is a few hundred kB in a few ms. NaN/inf survive either way."""
    return json.dumps(_pack(state), separators=(",", ":"))


def loads_state(blob: str) -> dict[str, Any]:
    """The inverse of ``dumps_state``; also reads states saved as plain JSON lists (before packing)."""
    return json.loads(blob, object_hook=_unpack)


def _last_index(cond: np.ndarray) -> np.ndarray:
    """Row index of the last True at or before each row, per column; -1 before the first."""
    idx = np.arange(len(cond), dtype=np.int64)[:, None]
    return np.maximum.accumulate(np.where(cond, idx, -1), axis=0)


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(seconds), dt.UTC)


class LiveDetection:
    """One ``StreamingMonitor`` over the enabled sensors, and the bookkeeping that turns it into alarms.

    Detector parameters (defaults suit 1–10 s gas and process sensors):
    ``z_limit`` robust sigmas for a statistical alarm; ``stuck_seconds`` unchanged before a sensor is
    stuck; ``gap_seconds`` without a good reading before a feed is silent (at least five sample
    periods); ``missing_on_delay_s`` of NaN readings before a missing-value fault (a single dropped
    packet is not a fault); ``fault_off_delay_s`` / ``stat_off_delay_s`` of normal readings before a
    fault or statistical alarm clears, so an intermittent fault folds into one alarm instead of fifty.
    Limit alarms use each sensor's own on/off delays from the plant register.

    ``z_limits`` holds the statistical limit per sensor: ``z_limit`` everywhere, except where people's
    verdicts recalibrated it (``alarms.learning``; loaded on ``start``/``load``, or ``apply_calibration``).
    Configured L/LL/H/HH limits are never touched by that learning.
    """

    def __init__(self, sensors: Sequence[SensorConfig], *, name: str = "live", z_limit: float = 6.0,
                 stuck_seconds: float = 600.0, gap_seconds: float = 60.0, spike_factor: float = 12.0,
                 missing_on_delay_s: float = 30.0, fault_off_delay_s: float = 60.0, stat_off_delay_s: float = 60.0,
                 draft_window_rows: int = 300, operating_states: bool = True):
        self.name = name
        self.sensors = [SensorRef(id=s.id, tag=s.tag, area_id=s.area_id, unit=s.unit or "") for s in sensors]
        self.tags = [s.tag for s in self.sensors]
        self._col = {tag: i for i, tag in enumerate(self.tags)}
        p = len(self.sensors)
        self.limits = LimitBank([limits_of(s) for s in sensors])
        gaps = np.array([max(gap_seconds, 5 * (s.sample_period_s or 0.0)) for s in sensors], dtype=float)
        self.monitor = StreamingMonitor(p, self.limits, z_limit=z_limit, stuck_seconds=stuck_seconds,
                                        gap_seconds=gaps, spike_factor=spike_factor,
                                        operating_states=operating_states)
        self.z_limit = z_limit
        self.z_limits = np.full(p, float(z_limit))  # (p,) robust sigmas; broadcast by StreamingMonitor
        self.monitor.z_limit = self.z_limits  # type: ignore[assignment]  # shared: calibration updates in place
        self.draft_window_rows = draft_window_rows
        k = len(ROW_TYPES)
        self.on_delay = np.zeros((k, p))
        self.off_delay = np.zeros((k, p))
        for i in range(len(LIMIT_TYPES)):
            self.on_delay[i], self.off_delay[i] = self.limits.on_delay, self.limits.off_delay
        stat = ROW_TYPES.index(AlarmType.STATISTICAL.value)
        self.off_delay[stat] = stat_off_delay_s
        self.off_delay[stat + 1:] = fault_off_delay_s
        self.on_delay[ROW_TYPES.index(fault_type("missing"))] = missing_on_delay_s
        self._reset()

    def _reset(self) -> None:
        k, p = len(ROW_TYPES), len(self.sensors)
        self.raw = np.zeros((k, p), dtype=bool)  # undelayed condition at the last row
        self.since = np.full((k, p), -np.inf)  # when it last changed
        self.on = np.zeros((k, p), dtype=bool)  # delayed condition = an active alarm
        self.peak_score = np.full((k, p), -np.inf)  # how far out the active alarm's peak is
        self.silent_on = np.zeros(p, dtype=bool)
        self.fitted = np.zeros(p, dtype=bool)  # statistical alarms only where normal was learned
        self.last_ts = -np.inf
        self.started_at = np.nan
        self._saved_at = -np.inf  # time.monotonic() of the last save

    # ---- construction from the plant register ---------------------------------------------------
    @classmethod
    def start(cls, db: Session, *, actor: User, **params: Any) -> LiveDetection:
        """Build over the enabled sensors ``actor`` may see (a machine user with all areas, for the worker)
        and resume from the saved state and calibration. Call again after the sensor list changes."""
        from hazardloop.plant import service as plant

        sensors = [s for s in plant.list_sensors(db, actor=actor) if s.enabled]
        live = cls(sensors, **params)
        live.load(db)
        return live

    # ---- learning normal ------------------------------------------------------------------------
    def fit(self, values_by_tag: Mapping[str, Any], min_rows: int = 30,
            recent_by_tag: Mapping[str, Any] | None = None) -> LiveDetection:
        """Learn each sensor's normal (median, MAD, operating states, usual jump) from history, for
        statistical and spike alarms.

        ``recent_by_tag``, when given, holds each sensor's latest consecutive readings and sets the usual
        jump, so ``values_by_tag`` may be an evenly thinned sample of a long span (hours of a 1 Hz sensor:
        its levels and states, without reading every value into the fit). Sensors without ``min_rows``
        good readings here keep what they had (or stay unfitted: no statistical alarm, rather than one
        against a made-up normal).
        """
        p = len(self.sensors)
        series = {self._col[t]: np.asarray(v, dtype=float) for t, v in values_by_tag.items() if t in self._col}
        if not series:
            return self
        recent_series = {self._col[t]: np.asarray(v, dtype=float) for t, v in (recent_by_tag or {}).items()
                         if t in self._col}
        wide, enough = self._wide(series, p, min_rows)
        learned = StreamingMonitor(p, spike_factor=self.monitor.spike_factor,
                                   operating_states=self.monitor.operating_states).fit(wide)
        if recent_series:
            recent, has_recent = self._wide(recent_series, p, 3)
            if has_recent.any():
                learned.learn_jumps(recent[:, has_recent], np.flatnonzero(has_recent))
        for key in LEARNED:
            getattr(self.monitor, key)[enough] = getattr(learned, key)[enough]
        self.fitted |= enough
        return self

    @staticmethod
    def _wide(series: Mapping[int, np.ndarray], p: int, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Columns of unequal length side by side (NaN-padded), and which have ``min_rows`` good values."""
        n = max((len(v) for v in series.values()), default=0)
        wide = np.zeros((n, p))
        enough = np.zeros(p, dtype=bool)
        for col, v in series.items():
            if np.isfinite(v).sum() >= min_rows:
                wide[:, col] = np.nan
                wide[: len(v), col] = v
                enough[col] = True
        return wide, enough

    # ---- the batch ------------------------------------------------------------------------------
    def process(self, db: Session, timestamps: Any, values_by_tag: Mapping[str, Any],
                now: dt.datetime | None = None) -> ProcessReport:
        """Judge one batch of rows and write the alarm changes and the carried state in one commit.

        ``timestamps``: one per row, increasing (epoch seconds, datetime64 or aware datetimes).
        ``values_by_tag``: tag -> one reading per row (NaN = no value). A tag left out of the batch is
        not a missing reading (that sensor simply did not report in these rows); the silent check
        catches a dead feed. ``now`` (default: the last row's time) is when the silent check looks.
        """
        ts = _seconds(timestamps)
        n_all = len(ts)
        x = np.full((n_all, len(self.sensors)), np.nan)
        present = np.zeros(len(self.sensors), dtype=bool)
        for tag, values in values_by_tag.items():
            col = self._col.get(tag)
            if col is None:
                continue
            v = np.asarray(values, dtype=float)
            if v.shape != (n_all,):
                raise InvalidInput(tag, f"{v.size} readings for {n_all} timestamps")
            x[:, col], present[col] = v, True
        report = self.process_rows(db, ts, x, now=now, present=present)
        report.unknown_tags = sorted(t for t in values_by_tag if t not in self._col)
        return report

    def process_rows(self, db: Session, ts: np.ndarray, x: np.ndarray, *, now: dt.datetime | None = None,
                     present: np.ndarray | None = None, sparse: bool = False,
                     save_every_s: float = 0.0) -> ProcessReport:
        """``process`` on an aligned matrix: ``ts`` (n,) epoch seconds, ``x`` (n, sensors) in ``self.tags`` order.

        ``sparse`` says what a NaN means. False (``process``): the sensor sent no usable value, a
        missing-value fault once it lasts ``missing_on_delay_s``. True (the live feed, whose rows are
        readings of sensors with different sample periods put side by side): the sensor simply had no
        reading at that instant — a 60 s analyser next to 1 s gas detectors is NaN in 59 rows of 60 —
        so NaN is no fault, and every alarm condition holds what the sensor's last reading said until
        its next one. A dead feed is still caught: by the silent check, per sensor after its own gap.
        ``present`` (default: all) marks the columns that belong to this batch at all.

        ``save_every_s`` > 0 writes the carried state only with an alarm change, or when the last save
        is that old: at thousands of sensors the state is megabytes, too much to rewrite four times a
        second. The state still commits *with* every alarm change, so a restart never re-raises or
        loses a clear; what a crash can lose is the quiet stretch since the last save, and a caller
        that uses this (the live feed) replays that stretch from the durable reading store on restart.
        """
        ts = np.asarray(ts, dtype=float)
        n_all = len(ts)
        if x.shape != (n_all, len(self.sensors)):
            raise InvalidInput("values", f"shape {x.shape} for {n_all} rows of {len(self.sensors)} sensors")
        if n_all and np.any(np.diff(ts) < 0):
            raise InvalidInput("timestamps", "rows must be in time order")
        report = ProcessReport()
        fresh = ts > self.last_ts
        report.skipped_rows = int(n_all - fresh.sum())
        if not fresh.all():
            ts, x = ts[fresh], x[fresh]
        report.rows = len(ts)
        now_s = now.timestamp() if now is not None else (float(ts[-1]) if len(ts) else None)
        drafts: list[tuple[int, ChartWindow]] = []
        try:
            if len(ts):
                result = self.monitor.update(ts, x)
                if sparse:
                    result.faults &= np.uint8(0xFF ^ Fault.MISSING)
                elif present is not None:
                    result.faults[:, ~present] &= np.uint8(0xFF ^ Fault.MISSING)
                self._alarms(db, ts, x, result, report, drafts, sparse)
                self.last_ts = float(ts[-1])
                if np.isnan(self.started_at):
                    self.started_at = float(ts[0])
            if now_s is not None:
                self._silent(db, now_s, ts, x, report)
            changed = bool(report.raised or report.updated or report.cleared)
            if changed or time.monotonic() - self._saved_at >= save_every_s:
                self.save(db)
            db.commit()
        except Exception:
            db.rollback()
            self.load(db)  # back to the last committed state: the caller may retry the batch
            raise
        _draft_hazards(db, drafts, report)
        return report

    # ---- late backlogs ---------------------------------------------------------------------------
    def judge_backlog(self, db: Session, cols: np.ndarray, ts: np.ndarray, values: np.ndarray, *,
                      received_at: dt.datetime) -> ProcessReport:
        """Judge readings that came too late for the stream against the alarm limits, and commit the alarms.

        ``cols`` are columns in ``self.tags`` order, ``ts`` epoch seconds, in any order. Why apart from
        the stream: each sensor's carried state (latches, delay timers, stuck and spike memory) has moved
        past these instants, and going back would re-judge rows already turned into alarms; judging
        them *into* that state would corrupt it. So the backlog gets its own fresh limit state, and the
        live arrays are not touched. What is judged, per sensor, over its backlog readings in time order:
        HH/H/L/LL with the sensor's deadband (a fresh ``LimitBank``, starting normal) and its on/off
        delays measured between the readings' own times, as live detection does; statistical, stuck and
        spike judgements need the carried state and are left out.

        Each episode becomes an alarm with the original reading time (``first_at``), a reason that says
        it came from a late backlog and when it was received, and ``late_backlog`` on its "raised"
        timeline entry; it is pushed like any alarm. An episode that is still on at the sensor's last
        backlog reading is cleared there (the backlog says no more; what followed is live detection's
        to judge), so a backlog never leaves an alarm active that nothing would clear. Where the
        condition's alarm is active now (live detection raised it), the episode is folded into it as an
        occurrence, as any repeat of an active condition is, and never clears it.
        """
        report = ProcessReport()
        cols, ts = np.asarray(cols, dtype=np.int64), np.asarray(ts, dtype=float)
        values = np.asarray(values, dtype=float)
        if not len(ts):
            return report
        order = np.lexsort((ts, cols))
        cols, ts, values = cols[order], ts[order], values[order]
        first = np.ones(len(ts), dtype=bool)
        first[1:] = (cols[1:] != cols[:-1]) | (ts[1:] != ts[:-1])
        cols, ts, values = cols[first], ts[first], values[first]
        sensors, start, counts = np.unique(cols, return_index=True, return_counts=True)
        # one column per sensor, its readings top-down; below its last one: NaN at its last time, which
        # holds every latch and delay timer as they were (a NaN changes no latch)
        rank = np.arange(len(ts)) - np.repeat(start, counts)
        where = np.repeat(np.arange(len(sensors)), counts)
        x = np.full((int(counts.max()), len(sensors)), np.nan)
        x[rank, where] = values
        t = np.repeat(ts[start + counts - 1][None, :], len(x), axis=0)
        t[rank, where] = ts
        # a fresh bank: the deadband arithmetic of live detection, none of its state. Its own delay output
        # assumes one time per row, so only its levels are used; the delays are applied below per cell.
        level, _ = LimitBank([self.limits.limits[c] for c in sensors]).update(t[:, 0], x)
        idx = np.arange(len(x), dtype=np.int64)[:, None]
        auto = service.auto_draft_types()
        drafts: list[tuple[int, ChartWindow]] = []
        try:
            for k, (name, lvl) in enumerate(LIMIT_TYPES):
                r = level >= lvl if lvl > 0 else level <= lvl
                if not r.any():
                    continue
                prev = np.vstack([np.zeros((1, len(sensors)), dtype=bool), r[:-1]])
                last = np.maximum.accumulate(np.where(r != prev, idx, -1), axis=0)
                since = np.where(last >= 0, np.take_along_axis(t, np.maximum(last, 0), axis=0), -np.inf)
                held = t - since
                a = latch(r & (held >= self.on_delay[k, sensors]), ~r & (held >= self.off_delay[k, sensors]))
                for j in np.flatnonzero(a.any(axis=0)):
                    n = int(counts[j])
                    self._backlog_episodes(db, k, name, int(sensors[j]), t[:n, j], x[:n, j], a[:n, j], r[:n, j],
                                           received_at, report, drafts if name in auto else None)
            db.commit()
        except Exception:
            db.rollback()
            raise
        _draft_hazards(db, drafts, report)
        return report

    def _backlog_episodes(self, db: Session, k: int, name: str, col: int, ts: np.ndarray, x: np.ndarray,
                          a: np.ndarray, r: np.ndarray, received_at: dt.datetime, report: ProcessReport,
                          drafts: list[tuple[int, ChartWindow]] | None) -> None:
        """One sensor's episodes of one limit type in a backlog: raise, mark, clear (``judge_backlog``)."""
        prev = np.concatenate([[False], a[:-1]])
        starts, ends = np.flatnonzero(a & ~prev), np.flatnonzero(~a & prev)
        score = x if LIMIT_TYPES[k][1] > 0 else -x
        sensor = self.sensors[col]
        for i, begin in enumerate(starts):
            stop = int(ends[i]) if i < len(ends) else None
            hi = stop if stop is not None else len(a)
            peak = float(x[begin + int(np.argmax(score[begin:hi]))])
            again = int(np.count_nonzero(r[begin + 1:hi] & ~r[begin:hi - 1]))  # re-occurrences inside the hold
            if service.active_alarm(db, sensor_id=sensor.id, alarm_type=name) is not None:
                alarm, _ = service._raise_or_update(db, sensor=sensor, alarm_type=name, at=_at(ts[begin]),
                                                    value=float(x[begin]), reason="", peak=peak,
                                                    occurrences=1 + again)
                report.updated.append(alarm.id)
                continue
            reason = (f"late backlog, received {received_at:%Y-%m-%d %H:%M:%S} UTC: "
                      f"{self._reason(k, col, float(x[begin]))}")
            late = {"late_backlog": {"received_at": received_at.isoformat()}}  # machine-readable, beside the reason
            alarm, _ = service._raise_or_update(db, sensor=sensor, alarm_type=name, at=_at(ts[begin]),
                                                value=float(x[begin]), reason=reason, peak=peak,
                                                occurrences=1 + again, provenance=provenance(name, **late))
            alarm.last_at = max(alarm.last_at, _at(ts[hi - 1]))
            report.raised.append(alarm.id)
            if drafts is not None:
                drafts.append((alarm.id, self._window(ts, x, int(begin))))
            if stop is not None:
                off = float(self.off_delay[k, col])
                note = f"normal again for {off:g} s (late backlog)" if off else "normal again (late backlog)"
                cleared = service._clear(db, sensor_id=sensor.id, alarm_type=name, at=_at(ts[stop]), note=note)
            else:
                cleared = service._clear(db, sensor_id=sensor.id, alarm_type=name, at=_at(ts[-1]),
                                         note="the late backlog ends here; live detection judges what followed")
            if cleared is not None:
                report.cleared.append(cleared.id)

    def check_silent(self, db: Session, now: dt.datetime | None = None) -> ProcessReport:
        """The timer's job: raise 'silent' for feeds that sent nothing at all for their gap (no rows arrive)."""
        return self.process(db, np.zeros(0), {}, now=now or utcnow())

    def _conditions(self, k: int, result: MonitorResult) -> np.ndarray:
        """Per-row condition of alarm type ROW_TYPES[k], before delays."""
        name = ROW_TYPES[k]
        if k < len(LIMIT_TYPES):
            level = LIMIT_TYPES[k][1]
            return result.level >= level if level > 0 else result.level <= level
        if name == AlarmType.STATISTICAL.value:
            return result.stat_alarm & self.fitted[None, :]
        bit = dict(FAULT_KINDS)[name.split(":", 1)[1]]
        return (result.faults & np.uint8(bit)) > 0

    def _hold(self, k: int, cond: np.ndarray, gaps: np.ndarray, last_reading: np.ndarray) -> np.ndarray:
        """Sparse rows: where a sensor had no reading, its condition is what its last reading said."""
        held = np.take_along_axis(cond[:, gaps], np.maximum(last_reading, 0), axis=0)
        out = cond.copy()
        out[:, gaps] = np.where(last_reading >= 0, held, self.raw[k, gaps][None, :])
        return out

    def _scores(self, k: int, x: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
        """How far out each reading is for this alarm type (higher = worse); None where a peak means nothing."""
        name = ROW_TYPES[k]
        if k < len(LIMIT_TYPES):
            return x if LIMIT_TYPES[k][1] > 0 else -x
        if name == AlarmType.STATISTICAL.value:
            return self.monitor.z_of(x, cols)
        if name == fault_type("range"):
            lo, hi = self.limits.physical_min[cols], self.limits.physical_max[cols]
            return np.maximum(lo - x, x - hi)
        return None

    def _alarms(self, db: Session, ts: np.ndarray, x: np.ndarray, result: MonitorResult, report: ProcessReport,
                drafts: list[tuple[int, ChartWindow]], sparse: bool = False) -> None:
        n = len(ts)
        idx = np.arange(n, dtype=np.int64)[:, None]
        auto = service.auto_draft_types()
        gaps = np.flatnonzero(np.isnan(x).any(axis=0)) if sparse else np.zeros(0, dtype=np.int64)
        last_reading = _last_index(np.isfinite(x[:, gaps])) if gaps.size else None
        for k, name in enumerate(ROW_TYPES):
            cond = self._conditions(k, result)
            if last_reading is not None and k >= len(LIMIT_TYPES):  # limit latches already hold across NaN
                cond = self._hold(k, cond, gaps, last_reading)
            cols = np.flatnonzero(cond.any(axis=0) | self.raw[k] | self.on[k])
            if cols.size == 0:
                continue
            r = cond[:, cols]
            prev_r = np.vstack([self.raw[k, cols][None, :], r[:-1]])
            last = np.maximum.accumulate(np.where(r != prev_r, idx, -1), axis=0)
            since = np.where(last >= 0, ts[np.maximum(last, 0)], self.since[k, cols][None, :])
            held = ts[:, None] - since
            on_before = self.on[k, cols].copy()
            a = latch(r & (held >= self.on_delay[k, cols]), ~r & (held >= self.off_delay[k, cols]), on_before)
            self.raw[k, cols], self.since[k, cols], self.on[k, cols] = r[-1], since[-1], a[-1]
            busy = np.flatnonzero(a.any(axis=0) | on_before)
            if busy.size == 0:
                continue
            cols, a, on_before = cols[busy], a[:, busy], on_before[busy]
            raw_rise = r[:, busy] & ~prev_r[:, busy]
            scores = self._scores(k, x[:, cols], cols)
            for j, col in enumerate(cols):
                self._episodes(db, k, name, int(col), ts, x[:, col], a[:, j], bool(on_before[j]), raw_rise[:, j],
                               None if scores is None else scores[:, j], report,
                               drafts if name in auto else None)

    def _episodes(self, db: Session, k: int, name: str, col: int, ts: np.ndarray, x: np.ndarray, a: np.ndarray,
                  on_before: bool, raw_rise: np.ndarray, score: np.ndarray | None, report: ProcessReport,
                  drafts: list[tuple[int, ChartWindow]] | None) -> None:
        """The per-alarm work for one sensor and type: only where its alarm starts, ends, re-occurs or worsens."""
        n = len(a)
        prev = np.concatenate([[on_before], a[:-1]])
        starts: list[int | None] = ([None] if on_before else []) + list(np.flatnonzero(a & ~prev))
        ends: list[int | None] = list(np.flatnonzero(~a & prev)) + ([None] if a[-1] else [])
        sensor = self.sensors[col]
        for start, end in zip(starts, ends, strict=True):
            lo, hi = (start if start is not None else 0), (end if end is not None else n)
            again = np.flatnonzero(raw_rise[lo + (start is not None):hi])  # re-occurrences inside the hold
            seen = float(ts[lo + (start is not None) + again[-1]]) if again.size else -np.inf
            peak_value: float | None = None
            if score is not None and np.isfinite(score[lo:hi]).any():
                best = lo + int(np.nanargmax(np.where(np.isfinite(score[lo:hi]), score[lo:hi], -np.inf)))
                if score[best] > self.peak_score[k, col]:
                    self.peak_score[k, col], peak_value = score[best], float(x[best])
                    seen = max(seen, float(ts[best]))
            if start is not None:
                alarm, _ = service._raise_or_update(
                    db, sensor=sensor, alarm_type=name, at=_at(ts[start]), value=float(x[start]),
                    reason=self._reason(k, col, float(x[start])), peak=peak_value, occurrences=1 + again.size,
                    provenance=provenance(name))
                if np.isfinite(seen):
                    alarm.last_at = max(alarm.last_at, _at(seen))
                report.raised.append(alarm.id)
                if drafts is not None:
                    drafts.append((alarm.id, self._window(ts, x, start)))
            elif again.size or peak_value is not None:
                alarm, _ = service._raise_or_update(
                    db, sensor=sensor, alarm_type=name, at=_at(seen), value=float(x[lo]), reason="",
                    peak=peak_value, occurrences=again.size)
                report.updated.append(alarm.id)
            if end is not None:
                off = float(self.off_delay[k, col])
                cleared = service._clear(db, sensor_id=sensor.id, alarm_type=name, at=_at(ts[end]),
                                         note=f"normal again for {off:g} s" if off else "normal again")
                self.peak_score[k, col] = -np.inf
                if cleared is not None:
                    report.cleared.append(cleared.id)

    def _reason(self, k: int, col: int, value: float) -> str:
        """The sentence on the alarm list."""
        name, tag = ROW_TYPES[k], self.tags[col]
        if k < len(LIMIT_TYPES):
            on = float(self.on_delay[k, col])
            return self.limits.describe(col, LIMIT_TYPES[k][1], held_s=on if on > 0 else None)
        if name == AlarmType.STATISTICAL.value:
            z = float(self.monitor.z_of(value, col))
            return f"{tag} {z:.1f} robust sigma from normal (limit {self.z_limits[col]:g})"
        return f"{tag} sensor fault: {name.split(':', 1)[1]}"

    def _window(self, ts: np.ndarray, x: np.ndarray, row: int) -> ChartWindow:
        lo, hi = max(0, row - self.draft_window_rows), min(len(ts), row + self.draft_window_rows + 1)
        return ChartWindow(timestamps=[_at(t) for t in ts[lo:hi]],
                           values=[float(v) if np.isfinite(v) else None for v in x[lo:hi]])

    def _silent(self, db: Session, now_s: float, ts: np.ndarray, x: np.ndarray, report: ProcessReport) -> None:
        """A feed with no good reading for its gap: raised at the moment it fell silent, cleared at its next reading."""
        start = self.started_at if np.isfinite(self.started_at) else now_s
        if np.isnan(self.started_at):
            self.started_at = now_s
        last_good = np.where(np.isnan(self.monitor.last_good_time), start, self.monitor.last_good_time)
        silent = now_s - last_good >= self.monitor.gap_seconds
        name = AlarmType.SILENT.value
        for col in np.flatnonzero(silent & ~self.silent_on):
            sensor, gap = self.sensors[col], float(self.monitor.gap_seconds[col])
            reason = f"{sensor.tag} silent: no good reading for {gap:g} s"
            alarm, _ = service._raise_or_update(db, sensor=sensor, alarm_type=name, at=_at(last_good[col] + gap),
                                                value=None, reason=reason, provenance=provenance(name))
            report.raised.append(alarm.id)
        for col in np.flatnonzero(~silent & self.silent_on):
            good = np.flatnonzero(np.isfinite(x[:, col])) if len(x) else np.zeros(0, dtype=int)
            at = _at(ts[good[0]] if good.size else now_s)
            cleared = service._clear(db, sensor_id=self.sensors[col].id, alarm_type=name, at=at, note="readings again")
            if cleared is not None:
                report.cleared.append(cleared.id)
        self.silent_on = silent

    # ---- verdict-learned statistical limits -------------------------------------------------------
    def apply_calibration(self, z_limits: Mapping[str, float]) -> None:
        """Set the statistical limit per tag (tags not given go back to the default ``z_limit``).

        Only the robust-z limit moves here; configured alarm limits are engineering settings that
        no verdict may change. Unknown tags are ignored (a sensor removed since the calibration).
        """
        limits = np.full(len(self.sensors), float(self.z_limit))
        for tag, value in z_limits.items():
            col = self._col.get(tag)
            if col is None:
                continue
            if not (np.isfinite(value) and value > 0):
                raise InvalidInput(tag, f"statistical limit must be a positive number, got {value!r}")
            limits[col] = float(value)
        self.z_limits[:] = limits

    def load_calibration(self, db: Session) -> dict[str, float]:
        """Apply the stored calibration of this detector (none stored: the default everywhere)."""
        blob = service.detector_blob(db, calibration_name(self.name))
        z_limits: dict[str, float] = {}
        if blob is not None:
            try:
                stored = json.loads(blob)
                if stored.get("version") != CALIBRATION_VERSION:
                    raise ValueError(f"calibration version {stored.get('version')}")
                z_limits = {str(tag): float(v) for tag, v in stored["z_limit"].items()}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("calibration of %r unreadable (%s); using the default limit", self.name, exc)
                z_limits = {}
        self.apply_calibration(z_limits)
        return z_limits

    # ---- state across restarts ------------------------------------------------------------------
    def state_dict(self, *, arrays: bool = False) -> dict[str, Any]:
        """Everything a restart needs, as plain lists (or, ``arrays``, this detector's own arrays as numpy)."""
        def out(a: np.ndarray) -> Any:  # noqa: ANN401 - an array or its list
            return a.copy() if arrays else a.tolist()

        return {
            "version": STATE_VERSION, "tags": self.tags, "monitor": self.monitor.state_dict(),
            "raw": out(self.raw), "since": out(self.since), "on": out(self.on),
            "peak_score": out(self.peak_score), "silent_on": out(self.silent_on),
            "fitted": out(self.fitted), "last_ts": self.last_ts, "started_at": self.started_at,
            "types": list(ROW_TYPES),
        }

    def save(self, db: Session) -> None:
        """Write the carried state in the caller's transaction (``process`` commits it with the alarms)."""
        blob = dumps_state(self.state_dict(arrays=True))
        row = db.get(DetectorState, self.name)
        if row is None:
            db.add(DetectorState(name=self.name, blob=blob, updated_at=utcnow()))
        else:
            row.blob, row.updated_at = blob, utcnow()
        self._saved_at = time.monotonic()

    def load(self, db: Session) -> bool:
        """Resume from the saved state. Sensors are matched by tag, never by position: when the sensor list
        changed, kept sensors keep their state, new ones start fresh (unfitted), removed ones are dropped.
        A state that does not fit (other version, corrupt) is discarded with a warning: a fresh start is
        safe, a mis-assigned one raises alarms on the wrong sensors. Returns whether state was loaded."""
        self._reset()
        self.monitor._reset_state()
        self.limits.reset()
        self.load_calibration(db)
        row = db.get(DetectorState, self.name)
        if row is None:
            return False
        try:
            self._load_state(loads_state(row.blob))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("detector state %r does not fit the current sensors (%s); starting fresh", self.name, exc)
            self._reset()
            self.monitor._reset_state()
            self.limits.reset()
            return False
        return True

    def _load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION or state.get("types") != list(ROW_TYPES):
            raise ValueError(f"state version {state.get('version')} with other alarm types")
        old_tags: list[str] = list(state["tags"])
        old_col = {t: i for i, t in enumerate(old_tags)}
        take = np.array([old_col.get(t, -1) for t in self.tags], dtype=np.int64)
        kept = take >= 0

        def remap(saved: Any, current: np.ndarray) -> np.ndarray:
            old = np.asarray(saved, dtype=current.dtype)
            if old.shape[:-1] != current.shape[:-1] or old.shape[-1] != len(old_tags):
                raise ValueError(f"array of shape {old.shape} for {len(old_tags)} sensors")
            out = current.copy()
            out[..., kept] = old[..., take[kept]]
            return out

        fresh = self.monitor.state_dict()
        monitor_state = {key: remap(state["monitor"][key], np.asarray(value, dtype=float))
                         for key, value in fresh.items() if key != "limits"}
        limit_state = {key: remap(state["monitor"]["limits"][key], np.asarray(value))
                       for key, value in fresh["limits"].items()}
        self.monitor.load_state({**monitor_state, "limits": limit_state})
        self.raw = remap(state["raw"], self.raw)
        self.since = remap(state["since"], self.since)
        self.on = remap(state["on"], self.on)
        self.peak_score = remap(state["peak_score"], self.peak_score)
        self.silent_on = remap(state["silent_on"], self.silent_on)
        self.fitted = remap(state["fitted"], self.fitted)
        self.last_ts, self.started_at = float(state["last_ts"]), float(state["started_at"])


def _draft_hazards(db: Session, drafts: list[tuple[int, ChartWindow]], report: ProcessReport) -> None:
    """After the alarms are committed: a draft hazard failing must not undo the alarm it is about."""
    for alarm_id, window in drafts:
        hazard_id = service.auto_hazard_draft(db, alarm_id=alarm_id, evidence=window)
        if hazard_id is not None:
            report.drafts.append(hazard_id)


def provenance(alarm_type: str, **extra: object) -> dict[str, object]:
    """Which detector raised an alarm type, and at which version (ARCHITECTURE §4: every prediction says so)."""
    if alarm_type.startswith(SENSOR_FAULT_PREFIX):
        detector = "sensor_health"
    else:
        detector = {AlarmType.STATISTICAL.value: "robust_z", AlarmType.SILENT.value: "silence"}.get(alarm_type,
                                                                                                   "limits")
    return {"detector": f"hazardloop.alarms.live:{detector}", "version": __version__, **extra}

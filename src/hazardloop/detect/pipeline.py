"""StreamingMonitor: the live univariate path — limits, robust statistics and sensor health.

Thousands of sensors, one batch of rows at a time; all per-sensor state lives in arrays and is
carried between batches, so feeding a series in one batch or in a hundred gives the same answer.
There is no Python loop over points: time-recursive parts (latches, run lengths, last good value)
are running maxima of indices along the time axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from hazardloop.detect.base import as_2d
from hazardloop.detect.health import Fault
from hazardloop.detect.limits import LimitBank
from hazardloop.detect.stats import robust_scale


@dataclass
class MonitorResult:
    """Per row and sensor: robust z, limit level (-2..2) and alarm, fault bits, and the overall alarm."""

    z: np.ndarray  # float32, NaN where the sensor is faulty (left out)
    level: np.ndarray  # int8, LL=-2 .. HH=2 after deadband
    limit_alarm: np.ndarray  # bool, after on/off delays
    stat_alarm: np.ndarray  # bool, robust z over z_limit on a healthy reading
    faults: np.ndarray  # uint8 Fault bits

    @property
    def alarm(self) -> np.ndarray:
        return self.limit_alarm | self.stat_alarm | (self.faults > 0)


def _last_index(cond: np.ndarray) -> np.ndarray:
    """Row index of the last True at or before each row, per column; -1 before the first."""
    idx = np.arange(len(cond), dtype=np.int32)[:, None]
    return np.maximum.accumulate(np.where(cond, idx, np.int32(-1)), axis=0)


def _fill_from_above(a: np.ndarray) -> None:
    """In place: each NaN takes the last number above it in its column (a sparse forward fill).

    Works on the NaN positions only. Each pass resolves the first remaining NaN of every run, so
    the set shrinks every pass unless all that is left has only NaN above it (leading dropouts).
    """
    rows, cols = np.nonzero(np.isnan(a))
    keep = rows > 0
    rows, cols = rows[keep], cols[keep]
    while rows.size:
        a[rows, cols] = a[rows - 1, cols]
        left = np.isnan(a[rows, cols])
        if left.all():
            break
        rows, cols = rows[left], cols[left]


class StreamingMonitor:
    """Vectorised monitor for many independent sensors; ``update`` takes (timestamps, values).

    * limits: ``LimitBank`` (L/LL/H/HH, deadband, on/off delays, physical range), optional;
    * robust z from ``fit`` (median/MAD of history), alarm above ``z_limit``;
    * health: stuck (unchanged for ``stuck_seconds``), missing (NaN) and gaps (no good value for
      ``gap_seconds``), spikes (a jump over ``spike_factor`` robust sigmas of the training
      differences), outside the physical range. A faulty reading gets no z and no statistical alarm.
    """

    def __init__(self, n_sensors: int, limits: LimitBank | None = None, z_limit: float = 6.0,
                 stuck_seconds: float | np.ndarray = 600.0, gap_seconds: float | np.ndarray = 60.0,
                 spike_factor: float = 12.0):
        if limits is not None and len(limits.tags) != n_sensors:
            raise ValueError(f"limits describe {len(limits.tags)} sensors, monitor has {n_sensors}")
        self.n_sensors = n_sensors
        self.limits = limits
        self.z_limit = z_limit
        self.stuck_seconds = np.broadcast_to(np.asarray(stuck_seconds, dtype=float), (n_sensors,)).copy()
        self.gap_seconds = np.broadcast_to(np.asarray(gap_seconds, dtype=float), (n_sensors,)).copy()
        self.spike_factor = spike_factor
        self.median_ = np.zeros(n_sensors)
        self.inv_scale_ = np.ones(n_sensors)
        self.jump_limit_ = np.full(n_sensors, np.inf)
        self._reset_state()

    def _reset_state(self) -> None:
        p = self.n_sensors
        self.last_value = np.full(p, np.nan)  # last finite reading
        self.last_good_time = np.full(p, np.nan)  # when it arrived
        self.changed_time = np.full(p, np.nan)  # when the reading last changed

    def fit(self, history: np.ndarray) -> Self:
        x = as_2d(history)
        self.median_, scale = robust_scale(x)
        self.inv_scale_ = 1.0 / scale
        _, jump_scale = robust_scale(np.diff(x, axis=0))
        self.jump_limit_ = self.spike_factor * jump_scale
        return self

    def update(self, timestamps: np.ndarray, values: np.ndarray) -> MonitorResult:
        """Judge one batch (rows in time order, one timestamp per row in seconds) and carry state on.

        Full-array work is a handful of elementwise passes. Recursions run only where needed: the
        last good value behind a dropout (sparse positions), the time of the last change for
        sensors that repeated a value in this batch, latches for sensors near a limit.
        """
        x = as_2d(values)
        ts = np.asarray(timestamps, dtype=float)
        n, p = x.shape
        if n == 0:
            empty = np.zeros((0, p))
            return MonitorResult(empty.astype(np.float32), empty.astype(np.int8), empty.astype(bool),
                                 empty.astype(bool), empty.astype(np.uint8))
        good = np.isfinite(x)
        prev = np.empty_like(x)
        prev[0] = self.last_value
        prev[1:] = x[:-1]
        _fill_from_above(prev)  # behind a dropout, compare with the last good reading
        same = x == prev  # NaN never equals: a dropout is not a stuck reading
        stuck = np.zeros((n, p), dtype=bool)
        repeat_cols = np.flatnonzero(same.any(axis=0))
        change_time = None
        if repeat_cols.size:
            changed = ~same[:, repeat_cols] & good[:, repeat_cols]
            last_change = _last_index(changed)
            change_time = np.where(last_change >= 0, ts[np.maximum(last_change, 0)],
                                   self.changed_time[repeat_cols])
            stuck[:, repeat_cols] = same[:, repeat_cols] & (
                ts[:, None] - change_time >= self.stuck_seconds[repeat_cols])
        jump = np.subtract(x, prev, out=prev)
        np.abs(jump, out=jump)
        faults = (~good).view(np.uint8) * np.uint8(Fault.MISSING)
        faults |= stuck.view(np.uint8) * np.uint8(Fault.STUCK)
        # A jump is a spike only against a recent reading: after a gap (a restart, a link outage) the
        # process has simply moved on, and comparing across the gap would flag every drifting sensor.
        prev_time = np.empty_like(x)
        prev_time[0] = self.last_good_time
        prev_time[1:] = np.where(good[:-1], ts[:-1, None], np.nan)
        _fill_from_above(prev_time)
        recent = (ts[:, None] - prev_time) <= self.gap_seconds
        faults |= ((jump > self.jump_limit_) & recent).view(np.uint8) * np.uint8(Fault.SPIKE)
        if self.limits is not None:
            faults |= self.limits.out_of_range(x).view(np.uint8) * np.uint8(Fault.RANGE)
            level, limit_alarm = self.limits.update(ts, x)
        else:
            level = np.zeros((n, p), dtype=np.int8)
            limit_alarm = np.zeros((n, p), dtype=bool)
        z = np.subtract(x, self.median_, out=jump)
        np.abs(z, out=z)
        z *= self.inv_scale_
        z[faults > 0] = np.nan  # a faulty reading is left out of the statistics
        stat_alarm = z > self.z_limit
        self._carry(x, ts, good, repeat_cols, change_time)
        return MonitorResult(z.astype(np.float32), level, limit_alarm, stat_alarm, faults)

    def _carry(self, x, ts, good, repeat_cols, change_time) -> None:
        """Keep what the next batch needs: last good reading and its time, time of the last change."""
        p = x.shape[1]
        last_good = len(x) - 1 - np.argmax(good[::-1], axis=0)  # last good row per sensor
        seen = good.any(axis=0)
        cols = np.arange(p)
        self.last_value = np.where(seen, x[last_good, cols], self.last_value)
        self.last_good_time = np.where(seen, ts[last_good], self.last_good_time)
        new_change = np.full(p, ts[-1])  # sensors with no repeat changed on every row
        if repeat_cols.size:
            new_change[repeat_cols] = np.where(np.isnan(change_time[-1]), ts[-1], change_time[-1])
        self.changed_time = new_change

    def silent(self, now: float) -> np.ndarray:
        """Sensors with no good reading for ``gap_seconds`` before ``now``: a dead feed raises an alarm
        even when no rows arrive at all (call this on a timer)."""
        return (now - np.nan_to_num(self.last_good_time, nan=-np.inf)) >= self.gap_seconds

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, as plain lists (JSON-serialisable)."""
        state: dict[str, Any] = {k: getattr(self, k).tolist() for k in (
            "median_", "inv_scale_", "jump_limit_", "last_value", "last_good_time", "changed_time")}
        if self.limits is not None:
            lb = self.limits
            state["limits"] = {"latched": lb.latched.tolist(), "raw_active": lb.raw_active.tolist(),
                               "since": lb.since.tolist(), "alarm": lb.alarm.tolist()}
        return state

    def load_state(self, state: dict[str, Any]) -> Self:
        for k in ("median_", "inv_scale_", "jump_limit_", "last_value", "last_good_time", "changed_time"):
            setattr(self, k, np.asarray(state[k], dtype=float))
        if self.limits is not None and "limits" in state:
            s = state["limits"]
            self.limits.latched = np.asarray(s["latched"], dtype=bool)
            self.limits.raw_active = np.asarray(s["raw_active"], dtype=bool)
            self.limits.since = np.asarray(s["since"], dtype=float)
            self.limits.alarm = np.asarray(s["alarm"], dtype=bool)
        return self


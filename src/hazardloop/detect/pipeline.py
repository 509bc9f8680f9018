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
from hazardloop.detect.stats import OperatingStates, operating_states, robust_scale

#: What ``fit`` learns per sensor; the live detector and backfill copy exactly these from a fitted monitor.
LEARNED = ("median_", "inv_scale_", "jump_limit_", "alt_median_", "alt_inv_scale_", "spike_stay_",
           "spike_state_")
#: A stay in an operating state this many readings long or shorter is a spike, at most (see ``fit``).
MAX_SPIKE_STAY = 2


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
      differences), outside the physical range. A faulty reading gets no z and no statistical alarm;
    * operating states: a sensor whose history switches between two separate states (an
      intermittent-duty pump: stopped and running) is judged against the nearer state
      (``alt_median_`` is the upper state, NaN for ordinary sensors), and a jump between its states
      is no spike — only a jump that lands outside both states is, or a stay in the other state far
      shorter than any seen in training (a spike from a stopped pump's zero to its running flow),
      recognised when the reading returns and flagged on the readings of the stay (if the stay began
      in an earlier batch, on what of it lies in this one, else on the returning reading: the one
      case where batch boundaries move an alarm, by at most ``MAX_SPIKE_STAY`` readings).
    """

    def __init__(self, n_sensors: int, limits: LimitBank | None = None, z_limit: float = 6.0,
                 stuck_seconds: float | np.ndarray = 600.0, gap_seconds: float | np.ndarray = 60.0,
                 spike_factor: float = 12.0, operating_states: bool = True):
        if limits is not None and len(limits.tags) != n_sensors:
            raise ValueError(f"limits describe {len(limits.tags)} sensors, monitor has {n_sensors}")
        self.n_sensors = n_sensors
        self.limits = limits
        self.z_limit = z_limit
        self.stuck_seconds = np.broadcast_to(np.asarray(stuck_seconds, dtype=float), (n_sensors,)).copy()
        self.gap_seconds = np.broadcast_to(np.asarray(gap_seconds, dtype=float), (n_sensors,)).copy()
        self.spike_factor = spike_factor
        self.operating_states = operating_states  # False: one normal state per sensor, as before they existed
        self.median_ = np.zeros(n_sensors)
        self.inv_scale_ = np.ones(n_sensors)
        self.jump_limit_ = np.full(n_sensors, np.inf)
        self.alt_median_ = np.full(n_sensors, np.nan)  # the upper operating state, where there is one
        self.alt_inv_scale_ = np.ones(n_sensors)
        self.spike_stay_ = np.zeros(n_sensors)  # 0: no short-stay check
        self.spike_state_ = np.full(n_sensors, np.nan)  # the rarer state (0 low, 1 high): short stays there
        self._reset_state()

    def _reset_state(self) -> None:
        p = self.n_sensors
        self.last_value = np.full(p, np.nan)  # last finite reading
        self.last_good_time = np.full(p, np.nan)  # when it arrived
        self.changed_time = np.full(p, np.nan)  # when the reading last changed
        self.state_label = np.full(p, np.nan)  # operating state of the last good reading: 0 low, 1 high
        self.state_rows = np.full(p, np.inf)  # good readings since it entered that state (inf: unknown)

    def fit(self, history: np.ndarray) -> Self:
        """Learn normal levels, operating states and the usual one-step change from consecutive readings."""
        x = as_2d(history)
        states = operating_states(x) if self.operating_states else OperatingStates.single(x)
        self.median_, self.inv_scale_ = states.low_median, 1.0 / states.low_scale
        self.alt_median_, self.alt_inv_scale_ = states.high_median, 1.0 / states.high_scale
        # a stay of under half the shortest training stay (at most MAX_SPIKE_STAY readings) is a spike
        shortest = np.where(np.isfinite(states.shortest_visit), states.shortest_visit, 1.0)  # 1: check off
        self.spike_stay_ = np.clip((shortest - 1) // 2, 0, MAX_SPIKE_STAY)
        self.spike_state_ = np.where(states.multi, states.high_is_rare.astype(float), np.nan)
        return self.learn_jumps(x)

    def learn_jumps(self, recent: np.ndarray, cols: np.ndarray | None = None) -> Self:
        """The spike limit from consecutive readings at the live sample rate (of sensors ``cols``, or
        all): when the levels were fitted on a thinned-out sample of a longer span, its steps are not
        the steps the live data will take."""
        _, jump_scale = robust_scale(np.diff(as_2d(recent), axis=0))
        if cols is None:
            self.jump_limit_ = self.spike_factor * jump_scale
        else:
            self.jump_limit_[cols] = self.spike_factor * jump_scale
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
        spike = (jump > self.jump_limit_) & recent
        multi = np.flatnonzero(np.isfinite(self.alt_median_))
        if multi.size:  # switching between operating states is no spike; leaving both is, or a short stay
            spike[:, multi] &= self._outside_states(x[:, multi], multi)
            spike[:, multi] |= self._short_stays(x[:, multi], good[:, multi], multi)
        faults |= spike.view(np.uint8) * np.uint8(Fault.SPIKE)
        if self.limits is not None:
            faults |= self.limits.out_of_range(x).view(np.uint8) * np.uint8(Fault.RANGE)
            level, limit_alarm = self.limits.update(ts, x)
        else:
            level = np.zeros((n, p), dtype=np.int8)
            limit_alarm = np.zeros((n, p), dtype=bool)
        z = np.subtract(x, self.median_, out=jump)
        np.abs(z, out=z)
        z *= self.inv_scale_
        if multi.size:
            upper = np.abs(x[:, multi] - self.alt_median_[multi]) * self.alt_inv_scale_[multi]
            z[:, multi] = np.fmin(z[:, multi], upper)
        z[faults > 0] = np.nan  # a faulty reading is left out of the statistics
        stat_alarm = z > self.z_limit
        self._carry(x, ts, good, repeat_cols, change_time)
        return MonitorResult(z.astype(np.float32), level, limit_alarm, stat_alarm, faults)

    def z_of(self, x: np.ndarray | float, cols: np.ndarray | int) -> np.ndarray:
        """Robust z of readings ``x`` of sensors ``cols`` against the nearer operating state (for reasons
        and peaks, so they say what the alarm decision used)."""
        z = np.abs(x - self.median_[cols]) * self.inv_scale_[cols]
        alt = np.abs(x - self.alt_median_[cols]) * self.alt_inv_scale_[cols]
        return np.fmin(z, alt)  # fmin: a NaN upper state (ordinary sensor) leaves z as it is

    def _outside_states(self, x: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Readings beyond ``z_limit`` sigmas below the lower state or above the upper one."""
        z_limit = np.asarray(self.z_limit, dtype=float)  # one for all, or one per sensor
        z_limit = z_limit[cols] if z_limit.ndim else z_limit
        below = x < self.median_[cols] - z_limit / self.inv_scale_[cols]
        above = x > self.alt_median_[cols] + z_limit / self.alt_inv_scale_[cols]
        return below | above

    def _short_stays(self, x: np.ndarray, good: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Readings of a stay in the rarer operating state of at most ``spike_stay_`` good readings;
        carries each sensor's state and stay length to the next batch."""
        n, k = x.shape
        near_high = np.abs(x - self.alt_median_[cols]) * self.alt_inv_scale_[cols] < (
            np.abs(x - self.median_[cols]) * self.inv_scale_[cols])
        label = np.vstack([self.state_label[cols][None, :], np.where(good, near_high, np.nan)])
        _fill_from_above(label)  # a dropout keeps the state it was in
        switch = (label[1:] != label[:-1]) & np.isfinite(label[:-1])  # NaN never equals: first reading is no switch
        seen = np.cumsum(good, axis=0)  # good readings up to and including each row
        before = np.vstack([np.zeros((1, k)), seen[:-1]])  # ... before each row
        entered = np.vstack([np.full((1, k), -1, dtype=np.int32), _last_index(switch)[:-1]])  # last switch before
        cols_k = np.arange(k)
        stay = np.where(entered >= 0, before - np.where(entered >= 0, before[np.maximum(entered, 0), cols_k], 0),
                        self.state_rows[cols][None, :] + before)
        short = switch & (stay >= 1) & (stay <= self.spike_stay_[cols]) & (label[:-1] == self.spike_state_[cols])
        for row, col in zip(*np.nonzero(short), strict=True):  # rare: mark the stay's own readings
            start = entered[row, col]
            if start >= 0:
                short[start:row, col] = good[start:row, col]
                short[row, col] = False  # the returning reading is a normal one
            # a stay begun in an earlier batch: its readings there are judged; this batch marks its
            # part of the stay and, when that is none, the reading that shows the stay was a spike
            elif row > 0 and good[:row, col].any():
                short[:row, col] = good[:row, col]
                short[row, col] = False
        last = _last_index(switch)[-1]
        self.state_rows[cols] = np.where(last >= 0, seen[-1] - before[np.maximum(last, 0), cols_k],
                                         self.state_rows[cols] + seen[-1])
        self.state_label[cols] = label[-1]
        return short

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
            *LEARNED, "last_value", "last_good_time", "changed_time", "state_label", "state_rows")}
        if self.limits is not None:
            lb = self.limits
            state["limits"] = {"latched": lb.latched.tolist(), "raw_active": lb.raw_active.tolist(),
                               "since": lb.since.tolist(), "alarm": lb.alarm.tolist()}
        return state

    def load_state(self, state: dict[str, Any]) -> Self:
        for k in ("median_", "inv_scale_", "jump_limit_", "last_value", "last_good_time", "changed_time"):
            setattr(self, k, np.asarray(state[k], dtype=float))
        # states saved before operating states existed: every sensor has one state
        p = self.n_sensors
        for k, missing in (("alt_median_", np.nan), ("alt_inv_scale_", 1.0), ("spike_stay_", 0.0),
                           ("spike_state_", np.nan), ("state_label", np.nan), ("state_rows", np.inf)):
            setattr(self, k, np.asarray(state.get(k, np.full(p, missing)), dtype=float))
        if self.limits is not None and "limits" in state:
            s = state["limits"]
            self.limits.latched = np.asarray(s["latched"], dtype=bool)
            self.limits.raw_active = np.asarray(s["raw_active"], dtype=bool)
            self.limits.since = np.asarray(s["since"], dtype=float)
            self.limits.alarm = np.asarray(s["alarm"], dtype=bool)
        return self


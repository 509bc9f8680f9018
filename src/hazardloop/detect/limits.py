"""Alarm limits LL/L/H/HH with deadband and on/off delays, vectorised over many sensors.

Gas-detector and ISA-18.2 practice: a first (L/H) and second (LL/HH) alarm level per sensor; an
alarm clears only once the reading is back past the limit by the deadband (no chattering around
the set point); the on-delay ignores excursions shorter than it, the off-delay holds the alarm
until the reading has been normal that long. State is carried between batches in arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hazardloop.detect.base import DetectInputError, as_2d, latch

_LEVEL_NAMES = {2: "HH", 1: "H", -1: "L", -2: "LL"}


@dataclass(frozen=True)
class AlarmLimits:
    """One sensor's configured limits (from the plant register: tag, unit, datasheet range)."""

    tag: str
    lo_lo: float | None = None
    lo: float | None = None
    hi: float | None = None
    hi_hi: float | None = None
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    physical_min: float | None = None
    physical_max: float | None = None

    def __post_init__(self) -> None:
        order = [v for v in (self.lo_lo, self.lo, self.hi, self.hi_hi) if v is not None]
        if order != sorted(order):
            raise DetectInputError(f"{self.tag}: limits must satisfy LL <= L <= H <= HH, got {order}")
        if self.deadband < 0 or self.on_delay_s < 0 or self.off_delay_s < 0:
            raise DetectInputError(f"{self.tag}: deadband and delays must be >= 0")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> AlarmLimits:
        """Build from a sensor-config mapping; accepts 'LL'/'L'/'H'/'HH' or the field names."""
        alias = {"LL": "lo_lo", "L": "lo", "H": "hi", "HH": "hi_hi", "range_min": "physical_min",
                 "range_max": "physical_max"}
        fields = {alias.get(k, k): v for k, v in cfg.items()}
        if "tag" not in fields:
            raise DetectInputError(f"sensor config without 'tag': {dict(cfg)}")
        return cls(**fields)


def _arr(values: Sequence[float | None], default: float) -> np.ndarray:
    return np.array([default if v is None else float(v) for v in values])


class LimitBank:
    """Evaluates many sensors' limits at once; ``update`` carries latch and delay state between batches."""

    def __init__(self, limits: Sequence[AlarmLimits]):
        self.limits = list(limits)
        self.tags = [lim.tag for lim in self.limits]
        self.lo_lo = _arr([lim.lo_lo for lim in limits], -np.inf)
        self.lo = _arr([lim.lo for lim in limits], -np.inf)
        self.hi = _arr([lim.hi for lim in limits], np.inf)
        self.hi_hi = _arr([lim.hi_hi for lim in limits], np.inf)
        self.deadband = _arr([lim.deadband for lim in limits], 0.0)
        self.on_delay = _arr([lim.on_delay_s for lim in limits], 0.0)
        self.off_delay = _arr([lim.off_delay_s for lim in limits], 0.0)
        self.physical_min = _arr([lim.physical_min for lim in limits], -np.inf)
        self.physical_max = _arr([lim.physical_max for lim in limits], np.inf)
        self.reset()

    def reset(self) -> None:
        p = len(self.limits)
        self.latched = np.zeros((4, p), dtype=bool)  # LL, L, H, HH
        self.raw_active = np.zeros(p, dtype=bool)
        self.since = np.full(p, -np.inf)  # when raw_active last changed
        self.alarm = np.zeros(p, dtype=bool)

    def update(self, timestamps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(level, alarm) per row and sensor: level -2..2 (LL..HH) after deadband, alarm after delays.

        ``timestamps`` are seconds (float, increasing), one per row, shared by all sensors. Only
        sensors that come within a deadband of a limit, or hold latch/alarm state, go through the
        latch arithmetic: in a healthy plant that is a small share, and the rest costs two compares.
        """
        x = as_2d(values)
        ts = np.asarray(timestamps, dtype=float)
        n, p = x.shape
        level = np.zeros((n, p), dtype=np.int8)
        alarm = np.zeros((n, p), dtype=bool)
        if n == 0:
            return level, alarm
        # a NaN reading leaves every latch as it was, so fmax/fmin (which skip NaN) decide activity
        top, bottom = np.fmax.reduce(x, axis=0), np.fmin.reduce(x, axis=0)
        near = (top >= self.hi - self.deadband) | (bottom <= self.lo + self.deadband)
        cols = np.flatnonzero(near | self.latched.any(axis=0) | self.raw_active | self.alarm)
        if cols.size == 0:
            return level, alarm
        lv, al = self._update_columns(ts, x[:, cols], cols)
        level[:, cols] = lv
        alarm[:, cols] = al
        return level, alarm

    def _update_columns(self, ts: np.ndarray, x: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        db = self.deadband[cols]
        lo_lo, lo, hi, hi_hi = self.lo_lo[cols], self.lo[cols], self.hi[cols], self.hi_hi[cols]
        latched = self.latched[:, cols]
        with np.errstate(invalid="ignore"):
            ll = latch(x < lo_lo, x > lo_lo + db, latched[0])
            lo_ = latch(x < lo, x > lo + db, latched[1])
            hi_ = latch(x > hi, x < hi - db, latched[2])
            hh = latch(x > hi_hi, x < hi_hi - db, latched[3])
        level = hi_.astype(np.int8) + hh - lo_ - ll
        raw = level != 0
        prev = np.vstack([self.raw_active[cols][None, :], raw[:-1]])
        changed = raw != prev
        idx = np.arange(len(x), dtype=np.int32)[:, None]
        last = np.maximum.accumulate(np.where(changed, idx, -1), axis=0)
        since = np.where(last >= 0, ts[np.maximum(last, 0)], self.since[cols][None, :])
        held = ts[:, None] - since
        alarm = latch(raw & (held >= self.on_delay[cols]), ~raw & (held >= self.off_delay[cols]), self.alarm[cols])
        self.latched[:, cols] = np.stack([ll[-1], lo_[-1], hi_[-1], hh[-1]])
        self.raw_active[cols], self.since[cols], self.alarm[cols] = raw[-1], since[-1], alarm[-1]
        return level, alarm

    def out_of_range(self, values: np.ndarray) -> np.ndarray:
        """Readings outside the sensor's physical (datasheet) range: a sensor fault, not a process alarm."""
        x = as_2d(values)
        with np.errstate(invalid="ignore"):
            return (x < self.physical_min) | (x > self.physical_max)

    def describe(self, sensor: int, level: int, held_s: float | None = None) -> str:
        """'H2S-101 above HH for 30 s' — the sentence an operator reads on the alarm list."""
        side = "above" if level > 0 else "below"
        text = f"{self.tags[sensor]} {side} {_LEVEL_NAMES[int(level)]}"
        return text + (f" for {held_s:.0f} s" if held_s is not None else "")

"""Sensor health: stuck/flatline, dropout and gaps, physical range, spikes, drift against peers.

A dead or lying sensor is its own alarm, and must not poison the process detectors: rows where a
sensor is flagged are handed to the process models with that sensor's value replaced by what its
correlated peers say it should be (``PeerModel.impute``). All limits come from training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Self

import numpy as np
from scipy.signal import lfilter

from hazardloop.detect.base import as_2d, run_length
from hazardloop.detect.stats import robust_scale


class Fault(IntFlag):
    """Per-sensor fault bits, so one small integer array carries every health verdict."""

    NONE = 0
    STUCK = 1
    MISSING = 2
    RANGE = 4
    SPIKE = 8
    DRIFT = 16


FAULT_NAMES = {Fault.STUCK: "stuck", Fault.MISSING: "missing", Fault.RANGE: "range",
               Fault.SPIKE: "spike", Fault.DRIFT: "drift"}


def describe(bits: int) -> str:
    """'stuck|spike' for a bit mask; '' when the sensor is healthy."""
    return "|".join(name for flag, name in FAULT_NAMES.items() if bits & flag)


def longest_run(x: np.ndarray) -> np.ndarray:
    """Longest run of identical consecutive values per column (quantised sensors repeat by design)."""
    a = as_2d(x)
    same = np.zeros(a.shape, dtype=bool)
    same[1:] = a[1:] == a[:-1]
    return run_length(same).max(axis=0) + 1


@dataclass
class SensorHealth:
    """Stuck, missing, out-of-range and spike checks per sensor, limits learned from training.

    * stuck: the value has not changed for more than ``stuck_factor`` times the longest constant
      run seen in training, and at least ``min_stuck_rows`` rows. Sample-and-hold analysers repeat
      values normally; the limit scales with what this sensor does when healthy.
    * spike: a one-row jump over ``spike_factor`` times the largest training jump.
    * range: outside ``physical_min``/``physical_max`` when given (sensor datasheet), never learned.
    * missing: NaN.
    """

    stuck_factor: float = 2.0
    min_stuck_rows: int = 5
    spike_factor: float = 3.0
    physical_min: np.ndarray | None = None
    physical_max: np.ndarray | None = None
    stuck_rows_: np.ndarray | None = None
    max_jump_: np.ndarray | None = None
    constant_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        x = as_2d(history)
        longest = longest_run(x)
        self.constant_ = longest >= len(x)
        self.stuck_rows_ = np.maximum(self.min_stuck_rows, np.ceil(self.stuck_factor * longest)).astype(np.int64)
        jumps = np.abs(np.diff(x, axis=0)) if len(x) > 1 else np.zeros((1, x.shape[1]))
        self.max_jump_ = np.nanmax(np.where(np.isfinite(jumps), jumps, np.nan), axis=0)
        self.max_jump_ = np.where(np.isfinite(self.max_jump_), self.max_jump_, 0.0)
        return self

    def score(self, batch: np.ndarray) -> np.ndarray:
        """Fault bit mask per row and sensor (uint8)."""
        x = as_2d(batch)
        faults = np.zeros(x.shape, dtype=np.uint8)
        missing = ~np.isfinite(x)
        faults[missing] |= np.uint8(Fault.MISSING)
        same = np.zeros(x.shape, dtype=bool)
        same[1:] = (x[1:] == x[:-1]) & ~missing[1:]
        stuck = (run_length(same) + 1 > self.stuck_rows_) & ~self.constant_
        faults[stuck] |= np.uint8(Fault.STUCK)
        jump = np.zeros(x.shape)
        jump[1:] = np.abs(np.diff(x, axis=0))
        spike = (jump > self.spike_factor * self.max_jump_) & (self.max_jump_ > 0) & np.isfinite(jump)
        faults[spike] |= np.uint8(Fault.SPIKE)
        with np.errstate(invalid="ignore"):
            if self.physical_min is not None:
                faults[x < self.physical_min] |= np.uint8(Fault.RANGE)
            if self.physical_max is not None:
                faults[x > self.physical_max] |= np.uint8(Fault.RANGE)
        return faults


@dataclass
class PeerModel:
    """Each sensor predicted from all the others (ridge regression on standardised training data).

    Two jobs: ``impute`` replaces flagged readings by what the peers say, so a faulty sensor is
    left out of the process detectors; ``drift`` tracks an EWMA of each sensor's prediction error,
    so a sensor that slowly walks away from correlated peers is found before it is far out.
    """

    ridge: float = 1.0
    lam: float = 0.05
    share: float = 0.8
    limit_factor: float = 1.5
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    coef_: np.ndarray | None = None
    resid_scale_: np.ndarray | None = None
    drift_limit_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        x = as_2d(history)
        self.mean_, self.scale_ = robust_scale(x)
        z = np.nan_to_num((x - self.mean_) / self.scale_)
        p = z.shape[1]
        cov = z.T @ z / max(len(z), 1)
        coef = np.zeros((p, p))
        for j in range(p):  # p small solves at fit time; scoring is one matrix product
            others = np.delete(np.arange(p), j)
            a = cov[np.ix_(others, others)] + self.ridge / max(len(z), 1) * np.eye(p - 1)
            coef[others, j] = np.linalg.solve(a, cov[others, j])
        self.coef_ = coef
        r = z - z @ coef
        s = r.std(axis=0)
        self.resid_scale_ = np.where(s > 1e-9, s, 1.0)
        d = self._drift_raw(r)
        warm = min(len(d) - 1, int(2 / self.lam))
        self.drift_limit_ = np.maximum(np.abs(d[warm:]).max(axis=0), 1e-9) * self.limit_factor
        return self

    def _drift_raw(self, resid: np.ndarray) -> np.ndarray:
        return lfilter([self.lam], [1, -(1 - self.lam)], resid / self.resid_scale_, axis=0)

    def impute(self, batch: np.ndarray, faulty: np.ndarray) -> np.ndarray:
        """Replace readings where ``faulty`` is true by the peers' prediction (faulty peers at normal)."""
        x = as_2d(batch).copy()
        bad = np.asarray(faulty, dtype=bool) | ~np.isfinite(x)
        if not bad.any():
            return x
        z = np.where(bad, 0.0, (x - self.mean_) / self.scale_)
        pred = (z @ self.coef_) * self.scale_ + self.mean_
        x[bad] = pred[bad]
        return x

    def drift(self, batch: np.ndarray) -> np.ndarray:
        """Drift score per row and sensor in units of its training limit (>1 = drifting).

        A drifting sensor j moves the whole error vector along one known direction (row j of
        I - C): the others' predictions use it too. The sensor blamed is the one whose direction
        best explains the smoothed error (reconstruction-based contribution, Alcala & Qin 2009), and
        only when it explains at least ``share`` of it: when a process upset moves many sensors,
        no single direction fits, and that is a process alarm, not a sensor fault.
        """
        z = np.nan_to_num((as_2d(batch) - self.mean_) / self.scale_)
        e = self._drift_raw(z - z @ self.coef_)
        p = e.shape[1]
        if p < 3:
            return np.zeros_like(e)  # with two sensors a broken correlation has no culprit
        m = (np.eye(p) - self.coef_) / self.resid_scale_[None, :]
        rbc = (e @ m.T) ** 2 / np.maximum((m**2).sum(axis=1), 1e-12)
        best = np.argmax(rbc, axis=1)
        rows = np.arange(len(e))
        share = rbc[rows, best] / np.maximum((e**2).sum(axis=1), 1e-12)
        worst = (np.abs(e) / self.drift_limit_).max(axis=1)
        out = np.zeros_like(e)
        out[rows, best] = np.where(share >= self.share, worst, 0.0)
        return out

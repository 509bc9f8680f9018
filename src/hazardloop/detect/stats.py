"""Univariate statistics per sensor, vectorised over sensors: robust z, EWMA, CUSUM, rate of change.

Each maps ``(n_rows, n_sensors)`` to the same shape; scores are in units of the sensor's own
normal variability, so one threshold object can serve every sensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
from scipy.signal import lfilter

from hazardloop.detect.base import as_2d

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def robust_scale(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD-based sigma per column; falls back to the std, then 1, for quantised sensors."""
    med = np.nanmedian(x, axis=axis)
    scale = MAD_TO_SIGMA * np.nanmedian(np.abs(x - med), axis=axis)
    std = np.nanstd(x, axis=axis)
    scale = np.where(scale > 1e-12, scale, std)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return med, scale


@dataclass
class RobustZ:
    """|x - median| / (1.4826 MAD): how many robust sigmas a reading sits from normal.

    Median and MAD are barely moved by the spikes and faults that a training window may contain.
    """

    median_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        self.median_, self.scale_ = robust_scale(as_2d(history))
        return self

    def score(self, batch: np.ndarray) -> np.ndarray:
        return np.abs(as_2d(batch) - self.median_) / self.scale_


@dataclass
class EWMA:
    """|EWMA of the standardised reading| / its own training sigma: finds small persistent shifts.

    An EWMA with weight ``lam`` averages about 2/lam rows, so a shift of one sigma that a z-score
    cannot see stands out once it persists. The sigma of the EWMA is measured on training data
    (not the i.i.d. formula), because real sensors are autocorrelated.
    """

    lam: float = 0.1
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    ewma_scale_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        x = as_2d(history)
        self.mean_, self.scale_ = robust_scale(x)
        e = self._ewma((x - self.mean_) / self.scale_)
        warm = min(len(x) - 1, int(2 / self.lam))
        s = np.std(e[warm:], axis=0)
        self.ewma_scale_ = np.where(s > 1e-12, s, np.sqrt(self.lam / (2 - self.lam)))
        return self

    def _ewma(self, z: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
        zi = None if start is None else ((1 - self.lam) * start)[None, :]
        out = lfilter([self.lam], [1, -(1 - self.lam)], z, axis=0, zi=zi)
        return out[0] if zi is not None else out

    def score(self, batch: np.ndarray) -> np.ndarray:
        z = (as_2d(batch) - self.mean_) / self.scale_
        return np.abs(self._ewma(z)) / self.ewma_scale_


@dataclass
class CUSUM:
    """Two-sided tabular CUSUM (Page 1954) on the standardised reading, allowance ``k`` sigma.

    Accumulates evidence of a sustained shift larger than ``k``; optimal for detecting a step of
    about 2k. Returns max(C+, C-) per row and sensor.
    """

    k: float = 0.5
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        self.mean_, self.scale_ = robust_scale(as_2d(history))
        return self

    def score(self, batch: np.ndarray) -> np.ndarray:
        z = (as_2d(batch) - self.mean_) / self.scale_
        hi = np.zeros(z.shape[1])
        lo = np.zeros(z.shape[1])
        out = np.empty_like(z)
        # The clamp at zero makes CUSUM a true recursion; the loop is over rows, vectorised over sensors.
        for t in range(len(z)):
            hi = np.maximum(0.0, hi + z[t] - self.k)
            lo = np.maximum(0.0, lo - z[t] - self.k)
            out[t] = np.maximum(hi, lo)
        return out


@dataclass
class RateOfChange:
    """|x_t - x_{t-lag}| in robust sigmas of the training differences: catches fast moves early."""

    lag: int = 1
    scale_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        x = as_2d(history)
        _, self.scale_ = robust_scale(x[self.lag :] - x[: -self.lag])
        return self

    def score(self, batch: np.ndarray) -> np.ndarray:
        x = as_2d(batch)
        d = np.zeros_like(x)
        d[self.lag :] = x[self.lag :] - x[: -self.lag]
        return np.abs(d) / self.scale_

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


@dataclass(frozen=True)
class OperatingStates:
    """Per sensor: a second operating state where the training history shows one (NaN where not).

    ``low_*`` is the lower state, ``high_*`` the upper; for single-state sensors ``low_*`` is the
    plain median/robust sigma and ``high_median`` is NaN. ``shortest_visit`` is the fewest readings
    any complete stay in one state lasted (inf where there is none): a stay much shorter than that in
    the rarer state (``high_is_rare``: a pump that mostly stands) is no start of the equipment but a
    spike that happened to land in that state. A short stay in the usual state is not: equipment
    pauses briefly between two runs (one tank's batch ending as the next one's begins).
    """

    low_median: np.ndarray
    low_scale: np.ndarray
    high_median: np.ndarray
    high_scale: np.ndarray
    shortest_visit: np.ndarray
    high_is_rare: np.ndarray

    @property
    def multi(self) -> np.ndarray:
        return np.isfinite(self.high_median)

    @classmethod
    def single(cls, x: np.ndarray) -> OperatingStates:
        """One state per sensor: the plain median and robust sigma of ``x``."""
        median, scale = robust_scale(x)
        p = x.shape[1]
        return cls(median, scale, np.full(p, np.nan), np.ones(p), np.full(p, np.inf), np.zeros(p, dtype=bool))


#: Width of the central 98 % of a normal distribution in sigmas (2 x 2.326).
_CENTRAL_98_SIGMAS = 4.653


def _state_scale(values: np.ndarray) -> float:
    """Sigma of one state: the larger of the MAD-based one and the central 98 % range / 4.65; 0 where
    the state reads a constant (the caller supplies a floor).

    For a normal state both agree. A state is often not one bell, though: a stopped pump's flow is
    exact zeros plus a trickle, a running pump's current depends on how many tanks it loads, and the
    MAD of such a state measures only its most common value — every trickle would be 50 sigmas out.
    The range of the middle 98 % covers the whole state and still ignores the odd outlier."""
    med = np.median(values)
    mad = MAD_TO_SIGMA * np.median(np.abs(values - med))
    lo, hi = np.percentile(values, [1.0, 99.0])
    scale = max(mad, (hi - lo) / _CENTRAL_98_SIGMAS)
    return float(scale if scale > 1e-12 else np.std(values))


def operating_states(x: np.ndarray, *, min_share: float = 0.05, min_visits: int = 4,
                     separation: float = 10.0, min_rows: int = 50) -> OperatingStates:
    """Find sensors whose normal is two separate operating states (a pump's flow, current and discharge
    pressure while it runs and while it stands), from their training history.

    Why: one median and MAD describe only the state the sensor is in most of the time, so every start
    of an intermittent-duty pump reads as dozens of sigmas "from normal" and every start and stop as a
    spike — on the demo plant six such sensors raised 95 % of all false alarms. Judged against the
    nearest of its states, such a sensor alarms on what is abnormal in either.

    A split (Otsu's threshold: the cut maximising the between-class variance of the sorted values) is
    accepted only when it describes equipment that switches: each state holds at least ``min_share``
    of the readings, the state medians lie at least ``separation`` times the larger state sigma apart,
    and the history enters the rarer state at least ``min_visits`` times. The last condition is the
    safety guard: one leak or one fault episode in the training window enters its state once, so it is
    never learned as a normal state (and configured alarm limits are never affected by any of this).
    """
    x = as_2d(x)
    states = OperatingStates.single(x)  # filled in below where a sensor has two
    low_median, low_scale, high_median, high_scale = (states.low_median, states.low_scale, states.high_median,
                                                      states.high_scale)
    shortest, high_is_rare = states.shortest_visit, states.high_is_rare
    for j in range(x.shape[1]):
        v = x[:, j][np.isfinite(x[:, j])]
        if v.size < min_rows:
            continue
        s = np.sort(v)
        k = max(1, int(np.ceil(min_share * s.size)))
        if s[k - 1] == s[-k]:
            continue  # most readings equal: nothing to split
        csum = np.cumsum(s)
        i = np.arange(k, s.size - k + 1)  # the lower state takes s[:i]
        mean_low, mean_high = csum[i - 1] / i, (csum[-1] - csum[i - 1]) / (s.size - i)
        between = i * (s.size - i) * (mean_high - mean_low) ** 2
        cut = int(i[np.argmax(between)])
        threshold = 0.5 * (s[cut - 1] + s[cut])
        upper = v > threshold
        lo_med, hi_med = float(np.median(v[~upper])), float(np.median(v[upper]))
        lo_sc, hi_sc = _state_scale(v[~upper]), _state_scale(v[upper])
        floor = max(lo_sc, hi_sc)
        if floor <= 1e-12 or hi_med - lo_med < separation * floor:
            continue
        minority = upper if upper.sum() <= (~upper).sum() else ~upper
        visits = int(minority[0]) + int(np.count_nonzero(minority[1:] & ~minority[:-1]))
        if visits < min_visits:
            continue
        stays = np.diff(np.flatnonzero(upper[1:] != upper[:-1]))  # complete stays: between two switches
        shortest[j] = stays.min() if stays.size else np.inf
        high_is_rare[j] = upper.sum() <= (~upper).sum()
        # a state that reads a constant (a stopped pump's 0.0) borrows the other state's sigma
        low_median[j], low_scale[j] = lo_med, lo_sc if lo_sc > 1e-12 else floor
        high_median[j], high_scale[j] = hi_med, hi_sc if hi_sc > 1e-12 else floor
    return states

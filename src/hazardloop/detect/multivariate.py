"""Multivariate process monitoring: PCA with Hotelling T² and SPE (Q), static or dynamic (lagged).

A process fault often moves no single sensor out of its range but breaks how sensors move
together: T² measures distance inside the normal correlation structure, SPE the part of a row the
structure cannot explain. Dynamic PCA adds lagged copies of each variable so slow,
control-compensated faults that only change the dynamics are seen too. Canonical variate analysis
(CVA) goes one step further: it keeps the combinations of the recent past that best predict the
near future (the process *states*), so a fault that a controller hides from the levels still shows
as states or residuals the normal dynamics do not produce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

from hazardloop.detect.base import as_2d, lagged
from hazardloop.detect.thresholds import ChiSquareThreshold, kde_limit, spe_limit


@dataclass
class PCAMonitor:
    """PCA on standardised (optionally lagged) data; ``score`` returns columns [T², SPE].

    ``n_components`` fixed, or chosen as the fewest components explaining ``explained`` of the
    variance (Jolliffe's cumulative-variance rule), capped below the training rank.
    """

    lags: int = 0
    explained: float = 0.95
    n_components: int | None = None
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    centre_: np.ndarray | None = None
    loadings_: np.ndarray | None = None
    eigenvalues_: np.ndarray | None = None
    residual_eigenvalues_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        x = as_2d(history)
        self.mean_ = x.mean(axis=0)
        s = x.std(axis=0)
        self.scale_ = np.where(s > 1e-12, s, 1.0)
        z = lagged((x - self.mean_) / self.scale_, self.lags)[self.lags :]
        self.centre_ = z.mean(axis=0)
        z = z - self.centre_
        _, sv, vt = np.linalg.svd(z, full_matrices=False)
        lam = sv**2 / max(len(z) - 1, 1)
        rank = int(np.sum(lam > lam[0] * 1e-10)) if lam.size and lam[0] > 0 else 1
        if self.n_components is not None:
            k = self.n_components
        else:
            share = np.cumsum(lam) / max(lam.sum(), 1e-300)
            k = int(np.searchsorted(share, self.explained) + 1)
        k = max(1, min(k, rank, len(z) - 2) if rank > 1 else 1)
        self.loadings_ = vt[:k].T
        self.eigenvalues_ = np.maximum(lam[:k], 1e-12)
        self.residual_eigenvalues_ = lam[k:rank]
        return self

    def _standardise(self, batch: np.ndarray) -> np.ndarray:
        return lagged((as_2d(batch) - self.mean_) / self.scale_, self.lags) - self.centre_

    def score(self, batch: np.ndarray) -> np.ndarray:
        z = self._standardise(batch)
        t = z @ self.loadings_
        t2 = np.sum(t**2 / self.eigenvalues_, axis=1)
        resid = z - t @ self.loadings_.T
        spe = np.sum(resid**2, axis=1)
        return np.column_stack([t2, spe])

    def contributions(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-variable share of T² and of SPE, lags folded back onto their sensor.

        T² contributions follow Westerhuis et al. (2000): z_j times the j-th element of the
        whitened-score back-projection; SPE contributions are squared residuals.
        """
        z = self._standardise(batch)
        t = z @ self.loadings_
        t2c = z * ((t / self.eigenvalues_) @ self.loadings_.T)
        spec = (z - t @ self.loadings_.T) ** 2
        p = as_2d(batch).shape[1]
        fold = lambda c: c.reshape(len(c), self.lags + 1, p).sum(axis=1)  # noqa: E731
        return np.maximum(fold(t2c), 0.0), fold(spec)

    def textbook_limits(self, n_samples: int, alpha: float = 0.99) -> tuple[float, float]:
        """F-based T² and Jackson–Mudholkar SPE limits, for comparison with published PCA figures."""
        t2 = ChiSquareThreshold(alpha).fit_params(n_samples, len(self.eigenvalues_)).limit_
        return float(t2), spe_limit(self.residual_eigenvalues_, alpha)


def _inverse_sqrt(cov: np.ndarray, ridge: float) -> np.ndarray:
    """Symmetric C^(-1/2) of a covariance, with a ridge relative to its mean variance.

    Lagged sensor vectors are strongly collinear (a slow sensor and its own lag are almost equal),
    so the covariance is near singular; the ridge keeps the whitening from amplifying noise.
    """
    d = cov.shape[0]
    c = cov + ridge * max(float(np.trace(cov)) / d, 1e-12) * np.eye(d)
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(np.maximum(w, 1e-12))) @ v.T


@dataclass
class CVAMonitor:
    """Canonical variate analysis on past/future Hankel vectors; ``score`` returns columns [T², Q].

    Past vector p_t = [x_t, x_{t-1}, ..., x_{t-past+1}] (standardised; the current row included, so
    row t is judged from rows up to t), future vector f_t = [x_{t+1}, ..., x_{t+future}] (used in
    fitting only). The SVD of Σff^(-1/2) Σfp Σpp^(-1/2) = U S Vᵀ gives the canonical correlations S;
    the first ``n_states`` directions J = V_rᵀ Σpp^(-1/2) are the states, the rest of the whitened
    past is the residual (Larimore 1990; monitoring statistics as in Russell, Chiang & Braatz 2000 and
    Odiowei & Cao 2010):

        T²_t = |J p_t|²                         (unusual state: a shift the dynamics carry forward)
        Q_t  = |(I - V_r V_rᵀ) Σpp^(-1/2) p_t|²   (a past the normal dynamics would not produce)

    ``n_states`` fixed, or the number of canonical correlations of at least ``min_correlation``
    (the states that carry real predictive information), at least one. ``textbook_limits`` gives
    kernel-density limits of the training statistics (Odiowei & Cao 2010), for use without the
    table chain's out-of-sample limits.
    """

    past: int = 3
    future: int = 3
    n_states: int | None = None
    min_correlation: float = 0.5
    ridge: float = 1e-3
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    states_: np.ndarray | None = None  # J, (n_states, m·past)
    residual_: np.ndarray | None = None  # (m·past, m·past)
    correlations_: np.ndarray | None = None
    training_scores_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        x = as_2d(history)
        if len(x) < 4 * (self.past + self.future) + 2:
            raise ValueError(f"CVA with past={self.past}, future={self.future} needs more than {len(x)} rows")
        self.mean_ = x.mean(axis=0)
        s = x.std(axis=0)
        self.scale_ = np.where(s > 1e-12, s, 1.0)
        z = (x - self.mean_) / self.scale_
        p = lagged(z, self.past - 1)[self.past - 1 : len(z) - self.future]
        ahead = np.hstack([z[self.past + i : len(z) - self.future + i + 1] for i in range(self.future)])
        ahead = ahead[: len(p)]
        n = len(p)
        spp = p.T @ p / (n - 1)
        sff = ahead.T @ ahead / (n - 1)
        sfp = ahead.T @ p / (n - 1)
        wp = _inverse_sqrt(spp, self.ridge)
        _, corr, vt = np.linalg.svd(_inverse_sqrt(sff, self.ridge) @ sfp @ wp)
        self.correlations_ = corr
        r = self.n_states or max(1, int(np.sum(corr >= self.min_correlation)))
        r = min(r, len(corr))
        v = vt[:r].T
        self.states_ = v.T @ wp
        self.residual_ = (np.eye(v.shape[0]) - v @ v.T) @ wp
        self.training_scores_ = self._statistics(p)
        return self

    def _past(self, batch: np.ndarray) -> np.ndarray:
        return lagged((as_2d(batch) - self.mean_) / self.scale_, self.past - 1)

    def _statistics(self, p: np.ndarray) -> np.ndarray:
        t2 = np.sum((p @ self.states_.T) ** 2, axis=1)
        q = np.sum((p @ self.residual_.T) ** 2, axis=1)
        return np.column_stack([t2, q])

    def score(self, batch: np.ndarray) -> np.ndarray:
        """[T², Q] per row; the first past-1 rows use the first row in place of the rows before it."""
        return self._statistics(self._past(batch))

    def contributions(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sensor share of T² and Q, lags folded back onto their sensor.

        For a statistic |M p|² the term p_j (MᵀM p)_j is variable j's part (they sum to the
        statistic; Westerhuis et al. 2000), negative parts set to zero.
        """
        p = self._past(batch)
        m = as_2d(batch).shape[1]

        def part(mat: np.ndarray) -> np.ndarray:
            c = p * ((p @ mat.T) @ mat)
            return np.maximum(c.reshape(len(c), self.past, m).sum(axis=1), 0.0)

        return part(self.states_), part(self.residual_)

    def textbook_limits(self, alpha: float = 0.99) -> tuple[float, float]:
        """Kernel-density (1 - alpha) upper limits of the training T² and Q (Odiowei & Cao 2010)."""
        assert self.training_scores_ is not None, "fit the model first"
        return kde_limit(self.training_scores_[:, 0], alpha), kde_limit(self.training_scores_[:, 1], alpha)

"""The whole detection chain over a table of readings: what ``hazardloop detect`` runs.

Order of work, every step causal (row t only sees rows up to t):
1. sensor health (stuck, missing, spikes, physical range, drift against peers, data gaps);
2. faulty readings replaced by their peers' prediction, so they cannot poison step 3;
3. process detectors: robust z and EWMA per sensor, dynamic PCA T² and SPE smoothed over a short
   trailing window — on the levels of steady sensors and the one-row changes of "slow" ones (sensors
   whose level wanders on a time scale longer than the training blocks, ``DetectConfig.slow_share``);
4. each component divided by its own limit, the largest wins, alarm hysteresis, a reason.

Every limit comes from the training rows alone, from *out-of-sample* scores (blocked cross-fitting,
``thresholds.out_of_sample_scores``) and covers the worst held-out block as well as the pooled scores,
so it allows for the block-to-block variation of normal operation, not only for the noise in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from hazardloop.detect.base import DetectInputError, as_2d, trailing_mean
from hazardloop.detect.fusion import Evidence, fuse, reasons, top_sensors
from hazardloop.detect.health import Fault, PeerModel, SensorHealth, describe
from hazardloop.detect.multivariate import PCAMonitor
from hazardloop.detect.stats import EWMA, RobustZ
from hazardloop.detect.thresholds import Hysteresis, QuantileThreshold, out_of_sample_scores


@dataclass
class DetectConfig:
    """Defaults, all in rows or quantiles so they hold at any sampling interval.

    quantile: each component's limit is this quantile of its out-of-sample training scores.
    lags: dynamic PCA lags (2 covers the first-order dynamics of most loops, Ku et al. 1995).
    smooth_rows: trailing window for T²/SPE; a few rows of delay for a large gain on steady faults.
    off_rows: an alarm clears after this many rows back under every limit (no chattering).
    components: process components that can raise an alarm. The instantaneous robust z ("z") is
      computed and reported but off by default: over many sensors its max alarms on single noisy
      readings that T²/SPE already weigh against the correlation structure.
    gap_factor: a time step longer than this many median training steps is a data gap.
    slow_share: a sensor whose training variance lies more than this share *between* the means of
      the ``folds`` contiguous training blocks (between-block variance above within-block variance
      at 0.5) is "slow": its level wanders on a time scale the training window does not cover, so
      no level limit learned from it can be trusted. Its level is left out of EWMA, T²/SPE and the
      peer-drift check (a regression between trending series is spurious, Granger & Newbold 1974);
      with ``slow_rates`` its one-row change, which is stationary, is monitored instead. Stuck,
      spike, missing and range checks still apply to it.
    block_limits: a limit must also cover the worst out-of-sample block, not only the pooled scores:
      limit = max(pooled quantile, largest per-block quantile). New data differ from the training
      rows at least as much as the training blocks differ from each other.
    """

    quantile: float = 0.995
    folds: int = 5
    lags: int = 2
    explained: float = 0.95
    smooth_rows: int = 8
    ewma_lam: float = 0.1
    on_rows: int = 1
    off_rows: int = 3
    gap_factor: float = 5.0
    drift_factor: float = 3.0
    components: tuple[str, ...] = ("ewma", "t2", "spe")
    min_train_rows: int = 30
    slow_share: float = 0.5
    slow_rates: bool = True
    block_limits: bool = True


@dataclass
class DetectResult:
    score: np.ndarray  # (n,) fused process score, 1.0 = at the limit
    is_anomaly: np.ndarray  # (n,) bool after hysteresis
    reason: list[str]  # (n,) '' where there is no alarm
    faults: np.ndarray  # (n, p) uint8 Fault bits
    gap: np.ndarray  # (n,) bool: data gap before this row
    components: dict[str, np.ndarray] = field(default_factory=dict)

    def fault_labels(self, j: int) -> list[str]:
        return [describe(int(b)) for b in self.faults[:, j]]


def between_share(x: np.ndarray, folds: int) -> np.ndarray:
    """Share of each column's variance that lies between the means of ``folds`` contiguous blocks."""
    blocks = np.array_split(np.asarray(x, dtype=float), folds)
    means = np.array([b.mean(axis=0) for b in blocks])
    return means.var(axis=0) / np.maximum(np.asarray(x).var(axis=0), 1e-300)


class TableDetector:
    """Fit on training rows, then ``detect`` over the whole table (training rows included)."""

    def __init__(self, columns: Sequence[str], config: DetectConfig | None = None,
                 physical_min: np.ndarray | None = None, physical_max: np.ndarray | None = None):
        self.columns = list(columns)
        self.config = config or DetectConfig()
        self.health = SensorHealth(physical_min=physical_min, physical_max=physical_max)

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, train: np.ndarray, timestamps: np.ndarray | None = None) -> Self:
        x = as_2d(train)
        cfg = self.config
        complete = np.isfinite(x).all(axis=1)
        if not complete.all():  # rows with a dropout teach nothing about the joint behaviour: leave them out
            x = x[complete]
            timestamps = None if timestamps is None else np.asarray(timestamps)[complete]
        self.training_rows_skipped_ = int((~complete).sum())
        if len(x) < cfg.min_train_rows:
            raise DetectInputError(f"need at least {cfg.min_train_rows} complete training rows, got {len(x)}")
        self.health.fit(x)
        self.peers = PeerModel(limit_factor=cfg.drift_factor).fit(x)
        clean = self.peers.impute(x, ~np.isfinite(x))
        live = ~self.health.constant_  # a sensor constant in training carries no information
        if not live.any():
            raise DetectInputError("every sensor is constant over the training rows; nothing to learn")
        self.slow_ = live & (between_share(clean, cfg.folds) > cfg.slow_share)
        if not (live & ~self.slow_).any():
            self.slow_ = np.zeros_like(live)  # nothing else to watch: keep the levels
        self.used = live & ~self.slow_
        steady = np.flatnonzero(self.used)
        self.drift_cols_ = steady
        self.drift_peers = PeerModel(limit_factor=cfg.drift_factor).fit(x[:, steady])
        c = self._features(clean)
        self.models = {
            "z": RobustZ().fit(c),
            "ewma": EWMA(cfg.ewma_lam).fit(c),
            "pca": PCAMonitor(lags=cfg.lags, explained=cfg.explained).fit(c),
        }
        self.limits = {name: self._limit(blocks) for name, blocks in self._oos(c).items()}
        if timestamps is not None and len(timestamps) > 1:
            steps = np.diff(np.asarray(timestamps, dtype=float))
            self.step_ = float(np.median(steps))
        else:
            self.step_ = None
        return self

    def _limit(self, blocks: list[np.ndarray]) -> QuantileThreshold:
        q = self.config.quantile
        pooled = QuantileThreshold(q).fit(np.concatenate(blocks))
        if self.config.block_limits:
            worst = max(float(QuantileThreshold(q).fit(b).limit_) for b in blocks)
            pooled.limit_ = np.maximum(pooled.limit_, worst)
        return pooled

    def _features(self, clean: np.ndarray) -> np.ndarray:
        """Levels of the steady sensors, then one-row changes of the slow ones (causal)."""
        cols = [clean[:, self.used]]
        if self.config.slow_rates and self.slow_.any():
            d = np.zeros((len(clean), int(self.slow_.sum())))
            d[1:] = np.diff(clean[:, self.slow_], axis=0)
            cols.append(d)
        return np.hstack(cols)

    def feature_names(self) -> list[str]:
        names = [c for c, u in zip(self.columns, self.used, strict=True) if u]
        if self.config.slow_rates:
            names += [f"{c} (rate)" for c, s in zip(self.columns, self.slow_, strict=True) if s]
        return names

    def _component_scores(self, models: dict, x: np.ndarray) -> dict[str, np.ndarray]:
        """Raw component scores for clean readings of the used sensors (rows in time order)."""
        w = self.config.smooth_rows
        pca = trailing_mean(models["pca"].score(x), w)
        return {
            "z": models["z"].score(x).max(axis=1),
            "ewma": models["ewma"].score(x).max(axis=1),
            "t2": pca[:, 0],
            "spe": pca[:, 1],
        }

    def _oos(self, c: np.ndarray) -> dict[str, list[np.ndarray]]:
        cfg = self.config

        def make(rest: np.ndarray):
            models = {"z": RobustZ().fit(rest), "ewma": EWMA(cfg.ewma_lam).fit(rest),
                      "pca": PCAMonitor(lags=cfg.lags, explained=cfg.explained).fit(rest)}
            return lambda block: np.column_stack(list(self._component_scores(models, block).values()))

        blocks = out_of_sample_scores(c, make, folds=cfg.folds)
        names = ["z", "ewma", "t2", "spe"]
        return {n: [b[:, i] for b in blocks] for i, n in enumerate(names)}

    # ---- detection -----------------------------------------------------------------------------
    def detect(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> DetectResult:
        x = as_2d(values)
        n = len(x)
        faults = self.health.score(x)
        drift = np.zeros(x.shape)
        drift[:, self.drift_cols_] = self.drift_peers.drift(np.where(faults > 0, np.nan, x)[:, self.drift_cols_])
        faults[drift > 1.0] |= np.uint8(Fault.DRIFT)
        gap = np.zeros(n, dtype=bool)
        if timestamps is not None and self.step_ and n > 1:
            gap[1:] = np.diff(np.asarray(timestamps, dtype=float)) > self.config.gap_factor * self.step_
        clean = self._features(self.peers.impute(x, faults > 0))
        raw = self._component_scores(self.models, clean)
        norm = {k: self.limits[k].normalise(v) for k, v in raw.items()}
        evidence = [e for e in self._evidence(norm, clean, faults, drift, gap, timestamps)
                    if e.name in ("fault", "gap") or e.name in self.config.components]
        # the score is the process evidence only; sensor faults and gaps have their own columns
        score, _ = fuse([e for e in evidence if e.name not in ("fault", "gap")])
        over = (score > 1.0) | (faults > 0).any(axis=1) | gap
        alarm = Hysteresis(self.config.on_rows, self.config.off_rows).apply(over)
        text = [""] * n
        rows = np.flatnonzero(alarm)
        for r, t in zip(rows, reasons(evidence, rows), strict=True):
            text[r] = t or "alarm held (off-delay)"
        return DetectResult(score, alarm, text, faults, gap, norm)

    def _evidence(self, norm, clean, faults, drift, gap, timestamps) -> list[Evidence]:
        names = self.feature_names()
        z = self.models["z"].score(clean)
        ew = self.models["ewma"].score(clean)
        pca: PCAMonitor = self.models["pca"]
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def contrib(r: int) -> tuple[np.ndarray, np.ndarray]:
            if r not in cache:  # contributions of the row, using the lags it was scored with
                lo = max(0, r - pca.lags)
                t2c, spec = pca.contributions(clean[lo : r + 1])
                cache[r] = (t2c[-1], spec[-1])
            return cache[r]

        sensor_fault = np.where(faults > 0, 1e6, 0.0).max(axis=1)

        def explain_fault(r: int) -> str:
            parts = []
            for j in np.flatnonzero(faults[r])[:3]:
                bits = int(faults[r, j])
                if bits == Fault.DRIFT:  # the data cannot tell a drifting sensor from a local process change
                    parts.append(f"{self.columns[j]} departs from its correlated peers "
                                 "(sensor drift or a local process change)")
                else:
                    parts.append(f"sensor fault: {self.columns[j]} {describe(bits)}")
            return ", ".join(parts)

        def explain_gap(r: int) -> str:
            dt = float(timestamps[r] - timestamps[r - 1]) if timestamps is not None else float("nan")
            return f"data gap of {dt:g} s before this row"

        return [
            Evidence("fault", sensor_fault, explain_fault),
            Evidence("gap", np.where(gap, 1e6, 0.0), explain_gap),
            Evidence("z", norm["z"], lambda r: f"{names[int(np.argmax(z[r]))]} {z[r].max():.1f} σ from normal"),
            Evidence("ewma", norm["ewma"],
                     lambda r: f"{names[int(np.argmax(ew[r]))]} shifted (EWMA {ew[r].max():.1f} σ)"),
            Evidence("t2", norm["t2"], lambda r: f"T² high, mostly {top_sensors(contrib(r)[0], names)}"),
            Evidence("spe", norm["spe"],
                     lambda r: f"SPE high (correlation broken), mostly {top_sensors(contrib(r)[1], names)}"),
        ]

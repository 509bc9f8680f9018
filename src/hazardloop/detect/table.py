"""The whole detection chain over a table of readings: what ``hazardloop detect`` runs.

Order of work, every step causal (row t only sees rows up to t):
1. sensor health (stuck, missing, spikes, physical range, drift against peers, data gaps);
2. faulty readings replaced by their peers' prediction, so they cannot poison step 3;
3. process detectors: robust z and EWMA per sensor, dynamic PCA T² and SPE smoothed over a short
   trailing window — on the levels of steady sensors and the one-row changes of "slow" ones (sensors
   whose level wanders on a time scale longer than the training blocks, ``DetectConfig.slow_share``);
4. each component divided by its own limit, the largest wins, alarm hysteresis, a reason.

Every limit comes from the training rows alone, from *out-of-sample* scores (blocked cross-fitting,
``thresholds.out_of_sample_scores``, plus one block scored forward in time: the last 30 % of the
training rows by a model of the first 70 %) and covers the worst held-out block as well as the pooled
scores, so it allows for the block-to-block variation of normal operation, not only for the noise in it.
Optional, off by default (``DetectConfig``): canonical variate analysis components and an adaptive
normal reference that follows slow healthy drift (``adaptive.ReferenceLevel``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from hazardloop.detect.adaptive import ReferenceLevel
from hazardloop.detect.base import DetectInputError, as_2d, trailing_mean
from hazardloop.detect.fusion import Evidence, fuse, reasons, top_sensors
from hazardloop.detect.health import Fault, PeerModel, SensorHealth, describe
from hazardloop.detect.multivariate import CVAMonitor, PCAMonitor
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
    forward_share: one more out-of-sample block, scored forward in time: a model fitted on the first
      rows scores the last ``forward_share`` of them (rolling-origin validation, Tashman 2000). New
      rows always come *after* the training rows, and a process that drifts is missed by more going
      forward than by leaving out a block in the middle; the limits cover that too. 0 turns it off.
    components: also "cva_t2" / "cva_q" (canonical variate analysis, ``CVAMonitor`` with
      ``cva_past`` past and future rows), off by default: on TEP it adds 0.3 points of detection at the
      same false-alarm rate, but it raises false alarms on SKAB and C-MAPSS (benchmarks/results).
    adapt_rate: > 0 turns on the adaptive normal reference (``adaptive.ReferenceLevel``): the levels
      of the steady sensors follow slow drift, learning only from blocks of ``adapt_block`` rows
      (default: training rows / 40) in which every process score stayed under ``adapt_gate`` times
      its limit, and only once the next block was normal too (hold-off). None = 1 / training rows (a
      memory as long as the training window). Off by default: it removes most false alarms of slow
      healthy drift (SKAB anomaly-free.csv 68 % -> 5 % of rows flagged, C-MAPSS early life 56 % ->
      47 %), but on SKAB's labelled files it learns a slowly building fault as normal (other/4) and
      misses more fault rows than it saves false alarms (F1 0.81 -> 0.80). ``adapt_context`` earlier
      rows are re-scored with each block so lags, EWMA and smoothing start from the same state.
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
    forward_share: float = 0.3
    cva_past: int = 3
    adapt_rate: float | None = 0.0
    adapt_gate: float = 1.0
    adapt_block: int | None = None
    adapt_context: int = 300


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
        try:
            self.models = self._make_models(c)
            self.limits = {name: self._limit(blocks) for name, blocks in self._oos(c).items()}
        except ValueError as exc:  # e.g. too few rows for CVA's past/future vectors in a training block
            raise DetectInputError(f"{len(x)} complete training rows are too few for the configured models: {exc}") \
                from exc
        self._fit_reference(x)
        if timestamps is not None and len(timestamps) > 1:
            steps = np.diff(np.asarray(timestamps, dtype=float))
            self.step_ = float(np.median(steps))
        else:
            self.step_ = None
        return self

    def _fit_reference(self, x: np.ndarray) -> None:
        """The adaptive normal level: memory and hold-off in units of the training window."""
        cfg = self.config
        rate = cfg.adapt_rate if cfg.adapt_rate is not None else 1.0 / len(x)
        self.reference = ReferenceLevel(rate=rate).fit(x)
        self.adapt_block_ = None if rate <= 0 else max(1, cfg.adapt_block or len(x) // 40)

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
        scores = {
            "z": models["z"].score(x).max(axis=1),
            "ewma": models["ewma"].score(x).max(axis=1),
            "t2": pca[:, 0],
            "spe": pca[:, 1],
        }
        if "cva" in models:
            cva = trailing_mean(models["cva"].score(x), w)
            scores["cva_t2"], scores["cva_q"] = cva[:, 0], cva[:, 1]
        return scores

    def _uses_cva(self) -> bool:
        return any(k.startswith("cva") for k in self.config.components)

    def _make_models(self, c: np.ndarray) -> dict:
        cfg = self.config
        models = {"z": RobustZ().fit(c), "ewma": EWMA(cfg.ewma_lam).fit(c),
                  "pca": PCAMonitor(lags=cfg.lags, explained=cfg.explained).fit(c)}
        if self._uses_cva():  # computed only when asked for: it is the costliest model to fit
            models["cva"] = CVAMonitor(past=cfg.cva_past, future=cfg.cva_past).fit(c)
        return models

    def _oos(self, c: np.ndarray) -> dict[str, list[np.ndarray]]:
        def make(rest: np.ndarray):
            models = self._make_models(rest)
            return lambda block: self._component_scores(models, block)

        blocks = out_of_sample_scores(c, make, folds=self.config.folds)
        if self.config.forward_share > 0:
            cut = int(len(c) * (1 - self.config.forward_share))
            blocks.append(make(c[:cut])(c[cut:]))
        return {n: [b[n] for b in blocks] for n in blocks[0]}

    # ---- detection -----------------------------------------------------------------------------
    def detect(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> DetectResult:
        x = as_2d(values)
        n = len(x)
        faults = self.health.score(x)
        gap = np.zeros(n, dtype=bool)
        if timestamps is not None and self.step_ and n > 1:
            gap[1:] = np.diff(np.asarray(timestamps, dtype=float)) > self.config.gap_factor * self.step_
        if self.adapt_block_ is None:
            faults, drift, clean, norm = self._judge(x, faults)
        else:
            faults, drift, clean, norm = self._judge_adapting(x, faults, gap)
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

    def _judge(self, x: np.ndarray, health: np.ndarray):
        """Peer drift, imputation, features and normalised component scores for rows in time order."""
        faults = health.copy()
        drift = np.zeros(x.shape)
        drift[:, self.drift_cols_] = self.drift_peers.drift(np.where(faults > 0, np.nan, x)[:, self.drift_cols_])
        faults[drift > 1.0] |= np.uint8(Fault.DRIFT)
        clean = self._features(self.peers.impute(x, faults > 0))
        raw = self._component_scores(self.models, clean)
        norm = {k: self.limits[k].normalise(v) for k, v in raw.items()}
        return faults, drift, clean, norm

    def _judge_adapting(self, x: np.ndarray, health: np.ndarray, gap: np.ndarray):
        """``_judge`` with the steady sensors' levels moved back by the adaptive reference offset.

        Rows go in blocks of ``adapt_block_``; block b is judged with the offset learned from the
        normal rows of blocks before it, recomputed over ``adapt_context`` earlier rows so that every
        recursive part (lags, EWMA, smoothing) starts from the same state. Row t therefore depends on
        rows up to t only, and cutting the table anywhere gives a prefix of the same answer.
        """
        cfg = self.config
        n, block, context = len(x), self.adapt_block_, cfg.adapt_context
        self.reference.reset()
        moved = x.copy()
        faults = health.copy()
        drift = np.zeros(x.shape)
        clean = np.zeros((n, len(self.feature_names())))
        norm = {k: np.zeros(n) for k in self.limits}
        gate_on = [k for k in self.config.components if k in norm]
        pending = None
        for start in range(0, n, block):
            stop = min(n, start + block)
            moved[start:stop, self.used] -= self.reference.offset_[self.used]
            lo = max(0, start - context)
            f, d, c, nm = self._judge(moved[lo:stop], health[lo:stop])
            part = slice(start - lo, stop - lo)
            faults[start:stop], drift[start:stop], clean[start:stop] = f[part], d[part], c[part]
            for k in norm:
                norm[k][start:stop] = nm[k][part]
            worst = np.max([nm[k][part] for k in gate_on] + [d[part].max(axis=1)], axis=0)
            sound = ((f[part] & ~np.uint8(Fault.DRIFT)) == 0).all(axis=1) & ~gap[start:stop]
            normal = (worst <= cfg.adapt_gate) & sound
            # hold-off: a block is learned only once the block after it was judged normal too, so
            # the quiet first rows of a fault that is building up are not learned as normal
            if pending is not None and normal.all():
                self.reference.update(*pending)
            pending = (x[start:stop], normal) if normal.all() else None
        return faults, drift, clean, norm

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

        def cva_contrib(r: int) -> tuple[np.ndarray, np.ndarray]:
            cva: CVAMonitor = self.models["cva"]
            t2c, qc = cva.contributions(clean[max(0, r - cva.past + 1) : r + 1])
            return t2c[-1], qc[-1]

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
        ] + ([
            Evidence("cva_t2", norm["cva_t2"],
                     lambda r: f"CVA states unusual, mostly {top_sensors(cva_contrib(r)[0], names)}"),
            Evidence("cva_q", norm["cva_q"],
                     lambda r: f"CVA residual high (dynamics changed), mostly {top_sensors(cva_contrib(r)[1], names)}"),
        ] if "cva_t2" in norm else [])

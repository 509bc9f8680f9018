"""Canonical variate analysis: known answers on small simulated control loops."""

import numpy as np
import pytest

from hazardloop.detect.base import DetectInputError
from hazardloop.detect.multivariate import CVAMonitor, PCAMonitor
from hazardloop.detect.table import DetectConfig, TableDetector
from hazardloop.detect.thresholds import kde_limit


def control_loop(rng: np.random.Generator, n: int, step_at: int | None = None, step: float = 0.0,
                 ramp_at: int | None = None, ramp: float = 0.0) -> np.ndarray:
    """A level y held at 0 by a PI controller moving valve u, disturbed by a measured feed w.

    Columns [y, u, w]. ``step`` is an unmeasured disturbance from ``step_at`` on, which the
    controller compensates (y goes back to its set point, u carries the change); ``ramp`` is a slow
    bias on the feed sensor from ``ramp_at`` on.
    """
    y, u, w = np.zeros(n), np.zeros(n), np.zeros(n)
    integral = 0.0
    for t in range(1, n):
        w[t] = 0.9 * w[t - 1] + 0.3 * rng.standard_normal()
        d = step if step_at is not None and t >= step_at else 0.0
        y[t] = 0.7 * y[t - 1] + 0.5 * u[t - 1] + 0.4 * w[t] + d + 0.1 * rng.standard_normal()
        integral += y[t]
        u[t] = -0.8 * y[t] - 0.2 * integral
    x = np.column_stack([y, u, w + 0.05 * rng.standard_normal(n)])
    if ramp_at is not None:
        x[ramp_at:, 2] += ramp * np.arange(n - ramp_at)
    return x


@pytest.fixture
def trained(rng):
    train = control_loop(rng, 3000)
    cva = CVAMonitor(past=3, future=3).fit(train)
    return cva, cva.textbook_limits(0.99)


def alarms(cva: CVAMonitor, limits: tuple[float, float], x: np.ndarray) -> np.ndarray:
    s = cva.score(x)
    return (s[:, 0] > limits[0]) | (s[:, 1] > limits[1])


def test_cva_keeps_the_loop_states_and_rarely_alarms_on_normal_operation(rng, trained):
    cva, limits = trained
    assert cva.states_.shape[0] >= 1 and cva.correlations_[0] > 0.9  # the integrator is a strong state
    rate = alarms(cva, limits, control_loop(rng, 2000)).mean()
    assert rate < 0.03  # two 99 % limits: about 2 % expected


def test_cva_finds_a_fault_the_controller_hides_from_the_controlled_variable(rng, trained):
    cva, limits = trained
    x = control_loop(rng, 1000, step_at=300, step=1.0)
    assert abs(x[350:, 0].mean()) < 0.1  # the level is back at its set point: a level alarm sees nothing
    flagged = alarms(cva, limits, x)
    assert flagged[:300].mean() < 0.05 and flagged[320:].mean() > 0.9


def test_cva_finds_a_slow_ramp_before_it_reaches_one_standard_deviation(rng, trained):
    cva, limits = trained
    sd = control_loop(rng, 3000)[:, 2].std()
    x = control_loop(rng, 1200, ramp_at=300, ramp=0.002)
    flagged = alarms(cva, limits, x)
    runs = [t for t in range(300, 1195) if flagged[t : t + 5].all()]  # five alarms in a row: not noise
    assert runs and (runs[0] - 300) * 0.002 < sd


def test_cva_sees_a_change_in_dynamics_that_static_pca_misses(rng):
    def ar(n: int, phi: float) -> np.ndarray:
        x = np.zeros(n)
        for t in range(1, n):
            x[t] = phi * x[t - 1] + rng.standard_normal()
        return np.column_stack([x, x + 0.1 * rng.standard_normal(n)])

    train, fault = ar(3000, 0.9), ar(600, -0.9)
    fault *= train.std() / fault.std()  # same variance, opposite dynamics
    cva = CVAMonitor(past=3, future=3).fit(train)
    static = PCAMonitor(lags=0, explained=0.99).fit(train)
    cva_rate = (cva.score(fault) > np.quantile(cva.score(train), 0.995, axis=0)).any(axis=1).mean()
    pca_rate = (static.score(fault) > np.quantile(static.score(train), 0.995, axis=0)).any(axis=1).mean()
    assert cva_rate > 0.4 > pca_rate + 0.2  # the default past=3 sees it in over half the rows here


def test_cva_score_of_a_row_uses_no_later_row(rng, trained):
    cva, _ = trained
    x = control_loop(rng, 400, step_at=200, step=1.0)
    assert np.allclose(cva.score(x)[:250], cva.score(x[:250]))


def test_cva_contributions_name_the_sensor_that_moved(rng, trained):
    cva, _ = trained
    x = control_loop(rng, 50)
    x[-1, 2] += 3.0  # the feed reading jumps: a past the normal dynamics do not produce
    _, q_parts = cva.contributions(x)
    assert int(np.argmax(q_parts[-1])) == 2


def test_cva_refuses_a_history_too_short_for_its_hankel_vectors():
    with pytest.raises(ValueError, match="needs more than"):
        CVAMonitor(past=5, future=5).fit(np.zeros((20, 2)))


def test_kde_limit_sits_near_the_matching_quantile_of_a_known_distribution(rng):
    s = rng.chisquare(3, 20000)
    lim = kde_limit(s, 0.99)
    assert abs(lim - 11.34) < 0.6  # chi-square(3) 99 % point
    assert kde_limit(np.full(10, 2.0), 0.99) == 2.0  # a constant score has its value as the limit


def test_the_table_chain_says_when_training_is_too_short_for_cva(correlated):
    cfg = DetectConfig(components=("t2", "spe", "cva_t2", "cva_q"), cva_past=5)
    with pytest.raises(DetectInputError, match="too few"):
        TableDetector(["A", "B", "C", "D"], cfg).fit(correlated(40))

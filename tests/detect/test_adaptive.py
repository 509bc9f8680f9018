"""The adaptive normal reference: follows slow healthy drift, never learns a fault as normal."""

import numpy as np

from hazardloop.detect.adaptive import ReferenceLevel
from hazardloop.detect.table import DetectConfig, TableDetector

NAMES = ["FIC-201", "TI-205", "PI-300", "LI-400"]
ADAPTING = DetectConfig(adapt_rate=None)  # memory = the training length, updates from normal rows only


def test_reference_moves_towards_the_mean_of_normal_rows_only():
    ref = ReferenceLevel(rate=0.01).fit(np.zeros((100, 2)))
    block = np.array([[1.0, 10.0], [1.0, 10.0], [50.0, 50.0]])
    offset = ref.update(block, normal=np.array([True, True, False]))
    weight = 1 - 0.99**2  # two normal rows, each one EWMA step
    assert np.allclose(offset, [weight * 1.0, weight * 10.0])


def test_reference_stays_put_when_no_row_of_the_block_is_normal():
    ref = ReferenceLevel(rate=0.01).fit(np.zeros((100, 2)))
    assert np.array_equal(ref.update(np.ones((5, 2)) * 9, np.zeros(5, dtype=bool)), [0.0, 0.0])


def slow_plant_drift(correlated, n: int, per_row: float) -> np.ndarray:
    """Healthy operation whose levels all creep together (fouling, ambient): correlations unchanged."""
    return correlated(n) + per_row * np.arange(n)[:, None]


def run(det: TableDetector, train: np.ndarray, test: np.ndarray):
    x = np.vstack([train, test])
    return det.detect(x, np.arange(len(x), dtype=float)), len(train)


def test_slow_healthy_drift_stops_raising_alarms_once_the_reference_follows_it(correlated):
    # The reference lags a ramp by slope / rate (here 0.0005 x 600 = 0.3, well inside the limits);
    # a drift fast enough to cross a limit before the reference catches up stays an alarm by design.
    train = correlated(600)
    test = slow_plant_drift(correlated, 4000, per_row=0.0005)  # 2 units by the end: outside training
    fixed, k = run(TableDetector(NAMES).fit(train), train, test)
    adapting, _ = run(TableDetector(NAMES, ADAPTING).fit(train), train, test)
    assert fixed.is_anomaly[k + 2000 :].mean() > 0.5
    assert adapting.is_anomaly[k:].mean() < 0.1


def test_a_lasting_fault_is_not_learned_as_the_new_normal(correlated):
    det = TableDetector(NAMES, ADAPTING)
    train = correlated(600)
    det.fit(train)
    test = correlated(3000)
    test[500:, 2] += 6.0  # a step that stays: five times the training memory
    res, k = run(det, train, test)
    assert res.is_anomaly[k : k + 500].mean() < 0.05
    assert res.is_anomaly[k + 510 :].mean() > 0.95


def test_a_slow_ramp_is_still_found_with_the_adaptive_reference(correlated):
    det = TableDetector(NAMES, ADAPTING)
    train = correlated(600)
    det.fit(train)
    test = correlated(600)
    test[100:, 2] += np.linspace(0, 3, 500)
    res, k = run(det, train, test)
    assert res.is_anomaly[k + 100 :].any() and int(np.argmax(res.is_anomaly[k + 100 :])) < 350


def test_with_the_adaptive_reference_a_row_still_depends_on_earlier_rows_only(correlated):
    det = TableDetector(NAMES, ADAPTING)
    train = correlated(600)
    det.fit(train)
    test = slow_plant_drift(correlated, 900, per_row=0.002)
    test[600:, 1] += 4.0
    full, k = run(det, train, test)
    for cut in (k + 7, k + 333, k + 701):  # inside blocks, not on their edges
        part = det.detect(np.vstack([train, test])[:cut], np.arange(cut, dtype=float))
        assert np.array_equal(full.score[:cut], part.score)
        assert np.array_equal(full.is_anomaly[:cut], part.is_anomaly)

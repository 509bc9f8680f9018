import numpy as np

from hazardloop.detect.learned import IsolationForestDetector
from hazardloop.detect.multivariate import PCAMonitor


def test_spe_flags_a_broken_correlation_that_stays_inside_each_sensor_range(correlated):
    train, test = correlated(2000), correlated(400)
    pca = PCAMonitor(explained=0.9).fit(train)
    limit = np.quantile(pca.score(train)[:, 1], 0.999)
    broken = test.copy()
    broken[200:, 3] = 50 + (broken[200:, 3] - 50) * -1.0  # same range, sign of the relation flipped
    assert (broken[200:, 3].std() - test[200:, 3].std()) < 1  # nothing a range check would see
    spe = pca.score(broken)[:, 1]
    assert (spe[200:] > limit).mean() > 0.5 and (spe[:200] > limit).mean() < 0.05


def test_contributions_name_the_sensor_that_broke(correlated):
    train = correlated(2000)
    pca = PCAMonitor(explained=0.9).fit(train)
    row = train[-1:].copy()
    row[0, 2] += 5.0
    _, spe_c = pca.contributions(row)
    assert int(np.argmax(spe_c[-1])) == 2


def test_dynamic_pca_sees_a_change_in_dynamics_static_pca_misses(rng):
    def ar(n, phi):
        x = np.zeros(n)
        for t in range(1, n):
            x[t] = phi * x[t - 1] + rng.standard_normal()
        return np.column_stack([x, x + 0.1 * rng.standard_normal(n)])

    train, fault = ar(3000, 0.9), ar(600, -0.9)  # same variance family, opposite dynamics
    fault *= train.std() / fault.std()
    static = PCAMonitor(lags=0, explained=0.99).fit(train)
    dynamic = PCAMonitor(lags=2, explained=0.99).fit(train)

    def rate(model):
        lim = np.quantile(model.score(train), 0.995, axis=0)  # T² and SPE limits
        return (model.score(fault) > lim).any(axis=1).mean()

    assert rate(dynamic) > 0.5 > rate(static) + 0.2


def test_isolation_forest_scores_far_points_higher(correlated):
    train = correlated(1000)
    model = IsolationForestDetector(lags=0, n_estimators=50).fit(train)
    far = train[-1:] + 20
    assert model.score(far)[0] > np.quantile(model.score(train), 0.99)

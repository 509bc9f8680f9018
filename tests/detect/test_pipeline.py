import json

import numpy as np

from hazardloop.detect.health import Fault
from hazardloop.detect.limits import AlarmLimits, LimitBank
from hazardloop.detect.pipeline import StreamingMonitor


def make_monitor(p: int) -> StreamingMonitor:
    limits = LimitBank([AlarmLimits(f"S{i}", hi=4, hi_hi=6, deadband=0.5, on_delay_s=2, physical_max=50)
                        for i in range(p)])
    return StreamingMonitor(p, limits, stuck_seconds=20, gap_seconds=5)


def stream(rng, n=600, p=6):
    x = rng.standard_normal((n, p))
    x[100:, 0] = 0.777  # stuck
    x[200, 1] = 30.0  # spike
    x[300:305, 2] = np.nan  # dropout
    x[400:, 3] += 7  # process goes above HH
    x[450, 4] = 99.0  # outside the physical range
    return np.arange(n, dtype=float), x


def test_each_fault_is_flagged_on_the_right_sensor(rng):
    mon = make_monitor(6).fit(rng.standard_normal((500, 6)))
    ts, x = stream(rng)
    res = mon.update(ts, x)
    assert (res.faults[121:, 0] & Fault.STUCK).all() and not (res.faults[:119, 0] & Fault.STUCK).any()
    assert res.faults[200, 1] & Fault.SPIKE
    assert (res.faults[300:305, 2] & Fault.MISSING).all()
    assert res.faults[450, 4] & Fault.RANGE
    assert res.limit_alarm[402:, 3].all() and res.level[400:, 3].max() == 2
    assert np.isnan(res.z[300, 2]) and res.stat_alarm[400:, 3].any()
    assert not res.alarm[:, 5].any()


def test_batches_give_the_same_result_as_one_pass(rng):
    history = rng.standard_normal((500, 6))
    ts, x = stream(rng)
    whole = make_monitor(6).fit(history).update(ts, x)
    mon = make_monitor(6).fit(history)
    parts = [mon.update(ts[i : i + 64], x[i : i + 64]) for i in range(0, len(ts), 64)]
    for name in ("faults", "level", "limit_alarm", "stat_alarm"):
        assert np.array_equal(np.vstack([getattr(p, name) for p in parts]), getattr(whole, name)), name


def test_state_survives_a_json_round_trip(rng):
    history = rng.standard_normal((500, 6))
    ts, x = stream(rng)
    a = make_monitor(6).fit(history)
    a.update(ts[:350], x[:350])
    b = make_monitor(6).load_state(json.loads(json.dumps(a.state_dict())))
    assert np.array_equal(a.update(ts[350:], x[350:]).faults, b.update(ts[350:], x[350:]).faults)


def test_a_silent_feed_is_reported(rng):
    mon = make_monitor(2).fit(rng.standard_normal((100, 2)))
    mon.update(np.arange(10.0), rng.standard_normal((10, 2)))
    assert mon.silent(now=12.0).tolist() == [False, False]
    assert mon.silent(now=20.0).tolist() == [True, True]


def test_a_jump_across_a_gap_is_not_a_spike():
    from hazardloop.detect.health import Fault
    from hazardloop.detect.pipeline import StreamingMonitor

    rng = np.random.default_rng(3)
    history = np.cumsum(rng.normal(0, 0.01, size=(500, 1)), axis=0) + 50
    monitor = StreamingMonitor(1, gap_seconds=60.0).fit(history)
    monitor.update(np.arange(10.0), np.full((10, 1), 50.0) + rng.normal(0, 0.01, (10, 1)))
    after_gap = monitor.update(np.array([10.0 + 3600]), np.array([[58.0]]))  # an hour later, moved on
    assert not (after_gap.faults & np.uint8(Fault.SPIKE)).any()
    sudden = monitor.update(np.array([3611.0]), np.array([[70.0]]))  # a second later: a real spike
    assert (sudden.faults & np.uint8(Fault.SPIKE)).any()

"""Sensors of intermittent-duty equipment: two operating states learned from history, judged against the
nearer one; starts and stops are no spikes, a brief stay in the rarer state is; a one-off episode in the
training window is never learned as a state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hazardloop.detect.health import Fault
from hazardloop.detect.pipeline import StreamingMonitor
from hazardloop.detect.stats import operating_states


def pump_flow(rng: np.random.Generator, n: int, *, period: int = 120, run: int = 40, on: float = 48.0) -> np.ndarray:
    """A loading pump: stopped (a trickle around 0) most of the time, runs ``run`` rows every ``period``."""
    running = (np.arange(n) % period) >= period - run
    flow = np.where(running, on + rng.normal(0, 1.5, n), np.abs(rng.normal(0, 0.2, n)))
    return flow


def ordinary(rng: np.random.Generator, n: int) -> np.ndarray:
    return 20.0 + rng.normal(0, 0.5, n)


def test_a_duty_cycling_sensor_has_two_states_an_ordinary_one_has_one(rng) -> None:  # noqa: ANN001
    x = np.column_stack([pump_flow(rng, 2000), ordinary(rng, 2000), np.sin(np.arange(2000) / 30.0)])
    states = operating_states(x)
    assert states.multi.tolist() == [True, False, False]  # a sine (a compressor cycle) is one wandering state
    assert states.low_median[0] == pytest.approx(0.15, abs=0.1) and states.high_median[0] == pytest.approx(48, abs=0.5)
    assert states.high_is_rare[0] and states.shortest_visit[0] == 40
    assert states.low_median[1] == pytest.approx(np.median(x[:, 1]))  # one state: the plain median


def test_one_episode_in_the_training_window_is_not_learned_as_a_state(rng) -> None:  # noqa: ANN001
    gas = 2.0 + rng.normal(0, 0.3, 2000)
    gas[900:1200] = 45.0 + rng.normal(0, 1.0, 300)  # one leak, 15 % of the window: entered once
    assert not operating_states(gas[:, None]).multi[0]
    monitor = StreamingMonitor(1).fit(gas[:, None])
    result = monitor.update(np.arange(10.0), np.full((10, 1), 45.0))
    assert result.stat_alarm.all()  # a leak at that level still alarms


def fitted_pump(rng: np.random.Generator) -> StreamingMonitor:
    return StreamingMonitor(1, gap_seconds=5, stuck_seconds=1e9).fit(pump_flow(rng, 2400)[:, None])


def test_starts_and_stops_raise_nothing_but_a_reading_between_or_beyond_the_states_does(rng) -> None:  # noqa: ANN001
    monitor = fitted_pump(rng)
    flow = pump_flow(rng, 1200)
    result = monitor.update(np.arange(1200.0), flow[:, None])
    assert not result.alarm.any()  # a single median/MAD made every run a statistical alarm and a spike
    stuck_between = np.full((30, 1), 24.0)  # a half-open valve: in neither state
    later = monitor.update(1200.0 + np.arange(30.0), stuck_between)
    assert later.stat_alarm[1:].all()
    beyond = monitor.update(1230.0 + np.arange(3.0), np.array([[0.1], [110.0], [0.1]]))
    assert beyond.faults[1, 0] & Fault.SPIKE  # a jump out of both states is a spike


def test_a_spike_into_the_running_state_while_stopped_is_a_spike(rng) -> None:  # noqa: ANN001
    monitor = fitted_pump(rng)
    flow = np.abs(rng.normal(0, 0.2, 60))
    flow[30:32] = 50.0  # two readings at running flow, then back: interference, not a start
    result = monitor.update(np.arange(60.0), flow[:, None])
    spikes = np.flatnonzero(result.faults[:, 0] & Fault.SPIKE)
    assert spikes.tolist() == [30, 31]
    assert not result.stat_alarm.any()


def test_a_brief_pause_between_two_runs_is_no_spike(rng) -> None:  # noqa: ANN001
    monitor = fitted_pump(rng)
    flow = 48.0 + rng.normal(0, 1.5, 60)
    flow[30] = 0.1  # one tank's batch ends, the next one's begins a reading later
    result = monitor.update(np.arange(60.0), flow[:, None])
    assert not result.alarm.any()


def test_a_spike_across_a_batch_boundary_is_still_caught_and_the_state_survives_a_restart(rng) -> None:  # noqa: ANN001
    monitor = fitted_pump(rng)
    flow = np.abs(rng.normal(0, 0.2, 40))
    flow[19] = 50.0  # the stay begins in the last reading of the first batch
    first = monitor.update(np.arange(20.0), flow[:20, None])
    resumed = StreamingMonitor(1, gap_seconds=5, stuck_seconds=1e9).load_state(
        json.loads(json.dumps(monitor.state_dict())))
    second = resumed.update(20.0 + np.arange(20.0), flow[20:, None])
    assert not (first.faults & Fault.SPIKE).any()  # not knowable yet: it could be a start
    assert second.faults[0, 0] & Fault.SPIKE  # the reading that shows it was a spike
    assert not (second.faults[1:] & Fault.SPIKE).any()


def test_a_state_saved_before_operating_states_existed_loads_as_single_state(rng) -> None:  # noqa: ANN001
    old = StreamingMonitor(2).fit(np.column_stack([ordinary(rng, 500), ordinary(rng, 500)])).state_dict()
    for key in ("alt_median_", "alt_inv_scale_", "spike_stay_", "spike_state_", "state_label", "state_rows"):
        old.pop(key)
    monitor = StreamingMonitor(2).load_state(old)
    result = monitor.update(np.arange(5.0), np.full((5, 2), 20.0))
    assert np.isnan(monitor.alt_median_).all() and not result.alarm.any()

"""The demo plant file and its simulated readings: what a detector author or a demo viewer relies on."""

from __future__ import annotations

import copy
import tomllib
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hazardloop.demo.signals import SENSOR_FAILURES, Simulation, simulate, stream
from hazardloop.demo.spec import GAS_KINDS, PlantSpec, PlantSpecError, load_plant_spec, parse_plant_spec

START = datetime(2024, 7, 1)


@pytest.fixture(scope="module")
def spec() -> PlantSpec:
    return load_plant_spec()


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    text = resources.files("hazardloop.demo").joinpath("data/plant.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@pytest.fixture(scope="module")
def sim(spec: PlantSpec) -> Simulation:
    return simulate(spec, start=START, duration=timedelta(days=12), step=timedelta(minutes=1), seed=7)


def column(sim: Simulation, tag: str) -> int:
    return sim.tags.index(tag)


# ── the plant file ───────────────────────────────────────────────────────────────────────────


def test_packaged_plant_has_about_fifty_sensors_over_at_least_five_areas(spec: PlantSpec) -> None:
    assert 45 <= len(spec.sensors) <= 60
    areas_with_sensors = {spec.area_of(tag).code for tag in spec.tags}
    assert len(areas_with_sensors) >= 5
    assert {"red", "orange", "yellow", "blue"} == {a.risk_grade for a in spec.areas}


def test_every_sensor_has_rising_limits_inside_its_range(spec: PlantSpec) -> None:
    for s in spec.sensors:
        limits = [v for v in (s.ll, s.l, s.h, s.hh) if v is not None]
        assert limits == sorted(limits) and len(set(limits)) == len(limits), s.tag
        assert all(s.range_min <= v <= s.range_max for v in limits), s.tag


def test_gas_detectors_carry_the_alarm_limits_the_standards_expect(spec: PlantSpec) -> None:
    for s in spec.sensors:
        if s.kind == "combustible_gas":
            assert (s.h, s.hh) == (20, 50), s.tag
        elif s.kind == "h2s":
            assert (s.h, s.hh) == (10, 20), s.tag
        elif s.kind == "o2":
            assert (s.l, s.h) == (19.5, 23.5), s.tag
        elif s.kind in GAS_KINDS:
            assert s.h is not None and s.hh is not None and s.h < s.hh, s.tag


def test_a_plant_file_on_disk_loads_like_the_packaged_one(tmp_path: Path, spec: PlantSpec) -> None:
    path = tmp_path / "plant.toml"
    path.write_text(
        resources.files("hazardloop.demo").joinpath("data/plant.toml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    assert load_plant_spec(path) == spec


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[enterprise\ncode = 1", encoding="utf-8")
    with pytest.raises(PlantSpecError, match="bad.toml: not valid TOML"):
        load_plant_spec(path)


def _sensor(doc: dict[str, Any], tag: str) -> dict[str, Any]:
    return next(s for s in doc["sensors"] if s["tag"] == tag)


BAD_EDITS = {
    "unknown area": (
        lambda d: d["equipment"][0].update(area="NOPE"),
        r"equipment\[0\] \(code 'T-101'\), field 'area': refers to unknown area 'NOPE'",
    ),
    "duplicate tag": (
        lambda d: _sensor(d, "GT-102").update(tag="GT-101"),
        r"sensors\[\d+\] \(tag 'GT-101'\), field 'tag': duplicate of sensors\[\d+\]",
    ),
    "two-point polygon": (
        lambda d: d["areas"][1].update(polygon=[[460, 40], [760, 40]]),
        r"areas\[1\] \(code 'REACT'\), field 'polygon': needs at least 3 points",
    ),
    "low above high": (
        lambda d: _sensor(d, "AT-O2-201").update(l=24.0),
        r"\(tag 'AT-O2-201'\), field 'h': limits must rise .* l=24.0 >= h=23.5",
    ),
    "unit of another kind": (
        lambda d: _sensor(d, "LT-101").update(unit="m"),
        r"\(tag 'LT-101'\), field 'unit': 'm' is not a unit for level",
    ),
    "misspelt field": (
        lambda d: _sensor(d, "TT-101").update(HH=50),
        r"\(tag 'TT-101'\), field 'HH': unknown field",
    ),
    "limit outside range": (
        lambda d: _sensor(d, "GT-101").update(hh=150),
        r"\(tag 'GT-101'\), field 'hh': 150.0 is outside the range",
    ),
    "overlapping areas": (
        lambda d: d["areas"][1].update(polygon=[[400, 40], [760, 40], [760, 300], [400, 300]]),
        r"areas\[1\] \(code 'REACT'\), field 'polygon': overlaps area 'TANK'",
    ),
    "area off the plan": (
        lambda d: d["areas"][2].update(polygon=[[800, 40], [1200, 40], [1200, 260]]),
        r"areas\[2\] \(code 'WH'\), field 'polygon': point \(1200.0, 40.0\) lies outside",
    ),
    "unknown risk colour": (
        lambda d: d["areas"][0].update(risk_grade="green"),
        r"field 'risk_grade': 'green' is not one of red, orange, yellow, blue",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_EDITS))
def test_a_bad_plant_file_is_refused_naming_the_entry_and_field(raw: dict[str, Any], case: str) -> None:
    edit, message = BAD_EDITS[case]
    doc = copy.deepcopy(raw)
    edit(doc)
    with pytest.raises(PlantSpecError, match=message):
        parse_plant_spec(doc)


def test_areas_sharing_a_border_are_accepted(raw: dict[str, Any]) -> None:
    doc = copy.deepcopy(raw)
    doc["areas"][1]["polygon"] = [[420, 40], [760, 40], [760, 300], [420, 300]]  # touches TANK's edge
    assert parse_plant_spec(doc).areas[1].polygon[0] == (420.0, 40.0)


# ── determinism and shapes ───────────────────────────────────────────────────────────────────


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(spec: PlantSpec) -> None:
    def run(seed: int) -> Simulation:
        return simulate(spec, start=START, duration=timedelta(days=2), step=timedelta(seconds=30), seed=seed)

    a, b, c = run(11), run(11), run(12)
    assert a.values.tobytes() == b.values.tobytes()
    assert a.events == b.events
    assert a.values.tobytes() != c.values.tobytes()


def test_stream_yields_the_same_rows_as_simulate(spec: PlantSpec) -> None:
    step = timedelta(seconds=20)
    sim = simulate(spec, start=START, duration=timedelta(days=1, hours=3), step=step, seed=5)
    rows = stream(spec, start=START, step=step, seed=5)
    got = [next(rows) for _ in range(len(sim.timestamps))]
    assert [ts for ts, _ in got][-1] == START + step * (len(sim.timestamps) - 1)
    assert np.array_equal(np.stack([v for _, v in got]), sim.values, equal_nan=True)


def test_shapes_frames_and_timestamps(sim: Simulation, spec: PlantSpec) -> None:
    n = 12 * 24 * 60
    assert sim.values.shape == (n, len(spec.sensors)) and sim.values.dtype == np.float64
    assert sim.timestamps.dtype == np.dtype("datetime64[s]") and sim.timestamps[0] == np.datetime64(START)
    wide = sim.to_frame()
    assert list(wide.columns) == ["timestamp", *sim.tags] and len(wide) == n
    long = sim.to_long()
    assert list(long.columns) == ["timestamp", "tag", "value"]
    assert len(long) == int(np.isfinite(sim.values).sum())


def test_an_aware_start_gives_utc_timestamps(spec: PlantSpec) -> None:
    beijing = timezone(timedelta(hours=8))
    sim = simulate(spec, start=datetime(2024, 7, 1, 8, tzinfo=beijing), duration=timedelta(hours=1),
                   step=timedelta(minutes=1), seed=1)
    assert sim.timestamps[0] == np.datetime64("2024-07-01T00:00:00")


def test_step_must_be_whole_seconds(spec: PlantSpec) -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        simulate(spec, start=START, duration=timedelta(hours=1), step=timedelta(milliseconds=500), seed=1)


# ── injected events leave their signatures ───────────────────────────────────────────────────


def test_every_event_kind_is_injected_several_times(sim: Simulation) -> None:
    kinds = [e.kind for e in sim.events]
    for kind in ("process_fault", *SENSOR_FAILURES):
        assert kinds.count(kind) >= 3, kind
    assert {"gas_leak", "cooling_failure", "bearing_wear", "tank_overfill"} <= {e.cause for e in sim.events}
    assert all(e.description_zh and e.description_en for e in sim.events)


def events(sim: Simulation, kind: str) -> list[tuple[slice, list[int]]]:
    return [(sim._rows(e), [column(sim, t) for t in e.tags]) for e in sim.events if e.kind == kind]


def test_a_stuck_sensor_does_not_move(sim: Simulation) -> None:
    for rows, cols in events(sim, "stuck"):
        assert rows.stop - rows.start > 10
        held = sim.values[rows, cols]
        assert (held == held[0]).all()  # exactly one value: zero variance


def test_a_dropout_leaves_nan_and_only_there(sim: Simulation) -> None:
    for rows, cols in events(sim, "dropout"):
        assert np.isnan(sim.values[rows, cols]).all()
    assert not np.isnan(sim.values[~sim.truth_mask("dropout")]).any()


def test_a_spike_jumps_away_from_its_neighbours(sim: Simulation, spec: PlantSpec) -> None:
    for rows, (j,) in events(sim, "spike"):
        around = np.r_[sim.values[rows.start - 5 : rows.start, j], sim.values[rows.stop : rows.stop + 5, j]]
        jump = np.abs(sim.values[rows, j] - np.median(around))
        assert jump.min() > 0.2 * spec.sensors[j].span, spec.sensors[j].tag


def test_out_of_range_readings_leave_the_instrument_range(sim: Simulation, spec: PlantSpec) -> None:
    for rows, (j,) in events(sim, "out_of_range"):
        s = spec.sensors[j]
        v = sim.values[rows, j]
        assert ((v < s.range_min) | (v > s.range_max)).all(), s.tag
    healthy = ~sim.truth_mask("out_of_range")
    lo = np.array([s.range_min for s in spec.sensors])
    hi = np.array([s.range_max for s in spec.sensors])
    inside = np.where(healthy, (sim.values >= lo) & (sim.values <= hi) | np.isnan(sim.values), True)
    assert inside.all()


def test_a_drifting_sensor_ends_its_window_off_by_the_stated_amount(sim: Simulation, spec: PlantSpec) -> None:
    for e in (e for e in sim.events if e.kind == "drift"):
        j = column(sim, e.tags[0])
        s = spec.sensors[j]
        amount = float(e.description_en.split("drift of ")[1].split()[0])
        rows = sim._rows(e)
        after = sim.values[rows.stop : rows.stop + 3, j]  # drift cleared by recalibration
        step_back = sim.values[rows.stop - 1, j] - after.mean()
        if s.range_min + abs(amount) < sim.values[rows.stop - 1, j] < s.range_max:  # not clipped
            assert abs(step_back - amount) < 0.05 * s.span, s.tag


def test_each_process_fault_drives_its_tagged_sensors_past_an_alarm_limit(
    sim: Simulation, spec: PlantSpec
) -> None:
    for rows, cols in events(sim, "process_fault"):
        for j in cols:
            s, v = spec.sensors[j], sim.values[rows, j]
            crossed_high = s.h is not None and np.nanmax(v) > s.h
            crossed_low = s.l is not None and np.nanmin(v) < s.l
            assert crossed_high or crossed_low, s.tag


def test_gas_detectors_stay_below_their_first_alarm_outside_injected_events(
    sim: Simulation, spec: PlantSpec
) -> None:
    normal = ~sim.truth_mask()
    for j, s in enumerate(spec.sensors):
        if s.kind in GAS_KINDS and s.h is not None:
            v = sim.values[normal[:, j], j]
            assert np.nanmax(v) < s.h, s.tag
            if s.l is not None:
                assert np.nanmin(v) > s.l, s.tag


def test_reactor_temperature_follows_the_feed(sim: Simulation) -> None:
    quiet = ~sim.truth_mask().any(axis=1)
    feed = sim.values[quiet, column(sim, "FT-201")]
    temperature = sim.values[quiet, column(sim, "TT-201")]
    assert np.corrcoef(feed, temperature)[0, 1] > 0.6


def test_truth_mask_by_kind_is_part_of_the_whole(sim: Simulation) -> None:
    whole = sim.truth_mask()
    parts = [sim.truth_mask(kind) for kind in ("process_fault", *SENSOR_FAILURES)]
    assert np.array_equal(np.logical_or.reduce(parts), whole)
    with pytest.raises(ValueError, match="unknown event kind"):
        sim.truth_mask("earthquake")

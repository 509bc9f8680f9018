"""`hazardloop backfill`: known answers on a small history, local == Dask cluster, == one pass of the monitor."""

from __future__ import annotations

import datetime as dt
import inspect
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hazardloop.cli import app
from hazardloop.detect.backfill import (
    FAULT_KINDS,
    LIMIT_TYPES,
    SILENT,
    STATISTICAL,
    BackfillInputError,
    BackfillParams,
    SensorSpec,
    backfill,
)
from hazardloop.detect.backfill_cli import sensors_from_csv, sensors_from_register
from hazardloop.detect.health import Fault
from hazardloop.detect.limits import LimitBank
from hazardloop.detect.pipeline import StreamingMonitor

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAYS = 3
STEP_S = 10  # the historian's scan grid for the three process sensors
HH_AT = START + dt.timedelta(days=1, hours=10)  # GT-101 ramps over HH and back
SPIKE_AT = START + dt.timedelta(days=1, hours=14)  # one TI-205 reading jumps
STUCK_AT = START + dt.timedelta(days=2, hours=6)  # PI-300 freezes for 30 minutes
STUCK_FOR = dt.timedelta(minutes=30)
SILENT_AT = START + dt.timedelta(days=1, hours=20)  # FT-400's link is down for ten minutes
SILENT_FOR = dt.timedelta(minutes=10)
DUPLICATE_AT = START + dt.timedelta(hours=30, seconds=20)  # GT-101 sends a second, different value here
EVENT_WINDOW = dt.timedelta(minutes=45)
PARAMS = BackfillParams(train_hours=12, chunk_rows=5_000)  # small chunks: state must carry between them

SENSOR_CSV = """位号,名称,类型,单位,区域,量程下限,量程上限,低低报,低报,高报,高高报,回差,报警延时,恢复延时,采样周期
GT-101,可燃气,combustible_gas,%LEL,A1,0,100,,,20,40,1,10,0,10
TI-205,反应器温度,temperature,°C,A1,0,200,,,120,150,0.5,0,0,10
PI-300,压力,pressure,MPa,A1,0,10,0.5,1,8,9,0.05,0,0,10
FT-400,流量,flow,m3/h,A1,0,500,,,450,480,0,0,0,30
"""


def _grid(step_s: int, offset_s: int = 0) -> pd.DatetimeIndex:
    n = DAYS * 86_400 // step_s
    return pd.date_range(START + dt.timedelta(seconds=offset_s), periods=n, freq=f"{step_s}s")


def make_history(seed: int = 3) -> pd.DataFrame:
    """Long readings (tag, ts, value) with the four known events and shuffled rows (as exported out of order)."""
    rng = np.random.default_rng(seed)
    ts = _grid(STEP_S)
    n = len(ts)
    gas = 2.0 + 0.2 * rng.standard_normal(n)
    i = ts.get_loc(HH_AT)
    ramp = np.linspace(2.0, 50.0, 31)
    gas[i:i + 31] = ramp  # 1.6 %LEL per scan: a rise, not a spike
    gas[i + 31:i + 61] = 50.0 + 0.2 * rng.standard_normal(30)
    gas[i + 61:i + 92] = ramp[::-1]
    temp = 80.0 + 0.5 * rng.standard_normal(n)
    temp[ts.get_loc(SPIKE_AT)] += 30.0
    pressure = 5.0 + 0.05 * rng.standard_normal(n)
    j = ts.get_loc(STUCK_AT)
    k = j + int(STUCK_FOR.total_seconds()) // STEP_S
    pressure[j:k] = pressure[j]
    flow_ts = _grid(30, offset_s=5)
    flow = 300.0 + 2.0 * rng.standard_normal(len(flow_ts))
    frames = [pd.DataFrame({"tag": tag, "ts": ts, "value": v})
              for tag, v in (("GT-101", gas), ("TI-205", temp), ("PI-300", pressure))]
    down = (flow_ts >= SILENT_AT) & (flow_ts < SILENT_AT + SILENT_FOR)
    frames.append(pd.DataFrame({"tag": "FT-400", "ts": flow_ts[~down], "value": flow[~down]}))
    frame = pd.concat(frames, ignore_index=True)
    return frame.sample(frac=1.0, random_state=seed, ignore_index=True)  # exported out of time order


def write_history(folder: Path, frame: pd.DataFrame, partition: str = "date") -> Path:
    """Hive-partitioned Parquet, written by DuckDB as the reading store's export does."""
    folder.mkdir(parents=True)
    con = duckdb.connect()
    try:
        if partition == "date":
            data = frame.assign(date=frame["ts"].dt.strftime("%Y-%m-%d"))
        else:  # e.g. sensor=GT-101/: the tag lives in the folder name only
            data = frame.rename(columns={"tag": partition})
        con.register("history", data)
        con.execute(f"COPY history TO '{folder}' (FORMAT PARQUET, PARTITION_BY ({partition}))")
    finally:
        con.close()
    return folder


@pytest.fixture(scope="module")
def history_frame() -> pd.DataFrame:
    return make_history()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, history_frame: pd.DataFrame) -> Path:
    folder = write_history(tmp_path_factory.mktemp("hist") / "history", history_frame)
    day = DUPLICATE_AT.strftime("%Y-%m-%d")
    second = pd.DataFrame({"tag": ["GT-101"], "ts": [pd.Timestamp(DUPLICATE_AT)], "value": [99.0]})
    con = duckdb.connect()
    try:  # a later file of the same day: the reading store's rule is that the first value wins
        con.register("second", second)
        con.execute(f"COPY second TO '{folder / f'date={day}' / 'zz-resent.parquet'}' (FORMAT PARQUET)")
    finally:
        con.close()
    return folder


@pytest.fixture(scope="module")
def sensors(tmp_path_factory: pytest.TempPathFactory) -> list[SensorSpec]:
    path = tmp_path_factory.mktemp("cfg") / "tags.csv"
    path.write_text(SENSOR_CSV, encoding="utf-8")
    return sensors_from_csv(path)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, history, sensors):
    out = tmp_path_factory.mktemp("local") / "out"
    # a budget of one process sensor per unit: results must not depend on who shares a unit
    report = backfill(history, out, sensors, params=PARAMS, unit_rows=30_000)
    return report, out


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as c:
        yield c


def read_results(out: Path) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM read_parquet('{out}/readings/**/*.parquet', hive_partitioning=true) "
                           "ORDER BY tag, ts").df()
    finally:
        con.close()


def episodes_of(out: Path) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM '{out}/episodes.parquet' ORDER BY tag, start, type").df()
    finally:
        con.close()


def at(frame: pd.DataFrame, tag: str, when: dt.datetime) -> pd.Series:
    row = frame[(frame["tag"] == tag) & (frame["ts"] == pd.Timestamp(when))]
    assert len(row) == 1, f"{tag} at {when}: {len(row)} rows"
    return row.iloc[0]


# ---- known answers ---------------------------------------------------------------------------------

def test_every_reading_is_scored_once_sorted_and_the_resent_duplicate_is_dropped(local_run, history_frame):
    report, out = local_run
    got = read_results(out)
    expected = history_frame.groupby("tag").size().to_dict()
    assert got.groupby("tag").size().to_dict() == expected
    assert report.readings == expected
    assert report.duplicates == {"FT-400": 0, "GT-101": 1, "PI-300": 0, "TI-205": 0}
    assert sum(report.out_of_order.values()) > 0  # the export was shuffled; the backfill sorted it
    first = history_frame[(history_frame["tag"] == "GT-101") & (history_frame["ts"] == pd.Timestamp(DUPLICATE_AT))]
    assert at(got, "GT-101", DUPLICATE_AT)["value"] == first["value"].iloc[0]


def test_hh_exceedance_is_one_hh_episode_after_the_on_delay(local_run, history_frame):
    _, out = local_run
    gas = history_frame[history_frame["tag"] == "GT-101"].sort_values("ts")
    over = gas[gas["value"] > 40]["ts"]
    first_over, back = over.min(), gas[(gas["ts"] > over.max()) & (gas["value"] < 39)]["ts"].min()
    episodes = episodes_of(out)
    hh = episodes[(episodes["tag"] == "GT-101") & (episodes["type"] == "limit_hh")]
    assert len(hh) == 1
    assert hh["start"].iloc[0] == first_over + pd.Timedelta(seconds=10)  # the register's on-delay
    assert hh["end"].iloc[0] == back  # cleared once below HH by the deadband
    assert hh["peak"].iloc[0] == gas["value"].max()
    assert "GT-101 above HH for 10 s" in hh["reason"].iloc[0]
    results = read_results(out)
    assert at(results, "GT-101", first_over)["level"] == 2


def test_spike_flags_the_jump_and_leaves_it_out_of_the_statistics(local_run):
    _, out = local_run
    row = at(read_results(out), "TI-205", SPIKE_AT)
    assert row["faults"] & int(Fault.SPIKE) and "spike" in row["fault"]
    assert np.isnan(row["z"]) and not row["stat_alarm"]
    episodes = episodes_of(out)
    spike = episodes[(episodes["tag"] == "TI-205") & (episodes["type"] == "sensor_fault:spike")]
    assert list(spike["start"]) == [pd.Timestamp(SPIKE_AT)]


def test_stuck_sensor_is_flagged_once_unchanged_for_stuck_seconds(local_run):
    _, out = local_run
    results = read_results(out)
    stuck = results[(results["tag"] == "PI-300") & ((results["faults"] & int(Fault.STUCK)) > 0)]
    first = STUCK_AT + dt.timedelta(seconds=PARAMS.stuck_seconds)
    assert stuck["ts"].min() == pd.Timestamp(first)
    assert stuck["ts"].max() == pd.Timestamp(STUCK_AT + STUCK_FOR - dt.timedelta(seconds=STEP_S))
    episodes = episodes_of(out)
    assert list(episodes[episodes["type"] == "sensor_fault:stuck"]["tag"]) == ["PI-300"]


def test_a_dead_feed_is_one_silent_episode_from_its_gap_to_the_next_reading(local_run, history_frame):
    _, out = local_run
    episodes = episodes_of(out)
    flow = history_frame[history_frame["tag"] == "FT-400"]["ts"]
    last, next_ = flow[flow < pd.Timestamp(SILENT_AT)].max(), flow[flow >= pd.Timestamp(SILENT_AT)].min()
    silent = episodes[episodes["type"] == "silent"]
    assert list(silent["tag"]) == ["FT-400"]
    assert silent["start"].iloc[0] == last + pd.Timedelta(seconds=150)  # five sample periods of 30 s
    assert silent["end"].iloc[0] == next_


def test_no_episode_outside_the_injected_events(local_run):
    report, out = local_run
    episodes = episodes_of(out)
    events = [pd.Timestamp(t) for t in (HH_AT, SPIKE_AT, STUCK_AT, SILENT_AT)]
    for _, e in episodes.iterrows():
        assert any(ev <= e["start"] <= ev + EVENT_WINDOW for ev in events), e.to_dict()
    assert set(episodes[episodes["tag"] == "FT-400"]["type"]) == {"silent"}
    assert len(report.episodes) == len(episodes)


def test_episodes_csv_is_what_an_operator_reads(local_run):
    _, out = local_run
    text = (out / "episodes.csv").read_text(encoding="utf-8-sig")
    header = text.splitlines()[0].split(",")
    assert header == ["tag", "type", "start", "end", "peak", "peak_at", "readings", "unit", "reason"]
    assert "TI-205 sensor fault: spike" in text


# ---- the same code path, wherever it runs ---------------------------------------------------------

def test_backfill_equals_one_pass_of_the_streaming_monitor(local_run, history_frame, sensors):
    """The reference: the live monitor over each scan grid in a single update, fitted on the training hours."""
    _, out = local_run
    got = read_results(out)
    data = history_frame.drop_duplicates(["tag", "ts"]).sort_values(["tag", "ts"])
    spec = {s.tag: s for s in sensors}
    for tags in (["GT-101", "PI-300", "TI-205"], ["FT-400"]):
        wide = data[data["tag"].isin(tags)].pivot(index="ts", columns="tag", values="value")[tags]
        seconds = wide.index.as_unit("ms").asi8 / 1000.0  # as the backfill reads time: epoch ms
        gaps = [max(PARAMS.gap_seconds, 5 * spec[t].sample_period_s) for t in tags]
        monitor = StreamingMonitor(len(tags), LimitBank([spec[t].limits for t in tags]), gap_seconds=np.array(gaps))
        train = seconds < seconds[0] + PARAMS.train_hours * 3600
        monitor.fit(wide.to_numpy()[train])
        result = monitor.update(seconds, wide.to_numpy())
        for j, tag in enumerate(tags):
            mine = got[got["tag"] == tag]
            np.testing.assert_array_equal(mine["z"].to_numpy(), result.z[:, j])
            np.testing.assert_array_equal(mine["level"].to_numpy(), result.level[:, j])
            np.testing.assert_array_equal(mine["limit_alarm"].to_numpy(), result.limit_alarm[:, j])
            np.testing.assert_array_equal(mine["stat_alarm"].to_numpy(), result.stat_alarm[:, j])
            np.testing.assert_array_equal(mine["faults"].to_numpy(), result.faults[:, j])


def test_dask_cluster_writes_the_same_results_as_the_local_run(local_run, cluster, history, sensors, tmp_path):
    _, local_out = local_run
    out = tmp_path / "cluster"
    report = backfill(history, out, sensors, params=PARAMS, unit_rows=30_000, cluster=cluster.scheduler_address)
    pd.testing.assert_frame_equal(read_results(out), read_results(local_out), check_exact=True)
    pd.testing.assert_frame_equal(episodes_of(out), episodes_of(local_out), check_exact=True)
    files = {p.relative_to(out) for p in (out / "readings").rglob("*.parquet")}
    assert files == {p.relative_to(local_out) for p in (local_out / "readings").rglob("*.parquet")}
    assert report.units == 4  # ~26k readings per process sensor against a 30k budget: one sensor per unit


def test_local_process_pool_writes_the_same_results(local_run, history, sensors, tmp_path):
    _, local_out = local_run
    out = tmp_path / "pool"
    backfill(history, out, sensors, params=PARAMS, unit_rows=30_000, workers=2)
    pd.testing.assert_frame_equal(read_results(out), read_results(local_out), check_exact=True)


def test_a_sensor_partitioned_history_gives_the_same_verdicts(local_run, history_frame, sensors, tmp_path):
    _, local_out = local_run
    folder = write_history(tmp_path / "by_sensor", history_frame.drop_duplicates(["tag", "ts"]), partition="sensor")
    out = tmp_path / "out"
    backfill(folder, out, sensors, params=PARAMS)
    got, expected = read_results(out), read_results(local_out)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_the_reading_stores_own_export_backfills(history_frame, sensors, tmp_path):
    from hazardloop.readings.store import ReadingStore

    part = history_frame[history_frame["tag"].isin(["GT-101", "TI-205"])].head(3_000)
    ids = {"GT-101": 1, "TI-205": 2}
    with ReadingStore(tmp_path / "readings.duckdb") as store:
        store.insert(part["tag"].map(ids).to_numpy(), part["ts"].to_numpy(dtype="datetime64[ms]").astype(np.int64),
                     part["value"].to_numpy())
        store.export_parquet(tmp_path / "export", {i: tag for tag, i in ids.items()})
    report = backfill(tmp_path / "export", tmp_path / "out", sensors, params=PARAMS)
    assert report.readings == part.groupby("tag").size().to_dict()
    assert report.without_readings == ["FT-400", "PI-300"]


def test_defaults_are_the_live_detections(sensors):
    from hazardloop.alarms.live import LiveDetection

    live = inspect.signature(LiveDetection.__init__).parameters
    ours = BackfillParams()
    for name in ("z_limit", "stuck_seconds", "gap_seconds", "spike_factor", "missing_on_delay_s",
                 "fault_off_delay_s", "stat_off_delay_s"):
        assert getattr(ours, name) == live[name].default, name


def test_episode_types_are_the_live_alarm_types():
    from hazardloop.alarms.live import ROW_TYPES
    from hazardloop.alarms.models import AlarmType

    assert (*(t for t, _ in LIMIT_TYPES), STATISTICAL, *(f"sensor_fault:{k}" for k, _ in FAULT_KINDS)) == ROW_TYPES
    assert AlarmType.SILENT.value == SILENT


def test_register_sensors_and_a_sensor_id_history_give_the_csv_verdicts(db, database_url, local_run,
                                                                         history_frame, sensors, tmp_path):
    """The store's own export keys readings by tag; a raw dump keyed by sensor_id maps through the register."""
    from hazardloop.plant.models import Area, Enterprise, Sensor, Site

    for row in (Enterprise(id=1, code="E", name_zh="企业"), Site(id=1, enterprise_id=1, code="S", name_zh="厂区"),
                Area(id=1, site_id=1, code="A1", name_zh="罐区")):
        db.add(row)
        db.flush()
    ids = {}
    for i, spec in enumerate(sensors, start=11):
        lim = spec.limits
        db.add(Sensor(id=i, tag=spec.tag, kind="other", unit=spec.unit, area_id=1, range_min=lim.physical_min,
                      range_max=lim.physical_max, ll=lim.lo_lo, l=lim.lo, h=lim.hi, hh=lim.hi_hi,
                      deadband=lim.deadband, on_delay_s=lim.on_delay_s, off_delay_s=lim.off_delay_s,
                      sample_period_s=spec.sample_period_s))
        ids[spec.tag] = i
    db.commit()
    register = sensors_from_register(database_url)
    assert [(s.tag, s.limits, s.sample_period_s) for s in register] == sorted(
        (s.tag, s.limits, s.sample_period_s) for s in sensors)
    raw = history_frame.assign(sensor_id=history_frame["tag"].map(ids)).drop(columns="tag")
    out = tmp_path / "out"
    backfill(write_history(tmp_path / "raw", raw), out, register, params=PARAMS)
    pd.testing.assert_frame_equal(read_results(out), read_results(local_run[1]), check_exact=True)


# ---- bad input --------------------------------------------------------------------------------------

def test_missing_history_folder_is_named(tmp_path, sensors):
    with pytest.raises(BackfillInputError, match="does not exist"):
        backfill(tmp_path / "nowhere", tmp_path / "out", sensors)


def test_folder_without_parquet_files_is_refused(tmp_path, sensors):
    (tmp_path / "empty" / "date=2026-01-01").mkdir(parents=True)
    with pytest.raises(BackfillInputError, match="no .parquet files"):
        backfill(tmp_path / "empty", tmp_path / "out", sensors)


def test_missing_columns_are_named(tmp_path, sensors):
    frame = pd.DataFrame({"tag": ["GT-101"], "time": [pd.Timestamp(START)], "reading": [1.0]})
    folder = write_history(tmp_path / "h", frame, partition="tag")
    with pytest.raises(BackfillInputError, match=r"missing column\(s\) ts, value"):
        backfill(folder, tmp_path / "out", sensors)


def test_unknown_tags_are_listed(tmp_path, sensors, history_frame):
    frame = pd.concat([history_frame.head(50), pd.DataFrame({"tag": ["XX-1", "YY-2"], "ts": [pd.Timestamp(START)] * 2,
                                                             "value": [1.0, 2.0]})])
    folder = write_history(tmp_path / "h", frame)
    with pytest.raises(BackfillInputError, match="2 tag.* not in the sensor list: XX-1, YY-2"):
        backfill(folder, tmp_path / "out", sensors)


def test_a_non_empty_output_folder_is_refused(tmp_path, sensors, history):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.parquet").write_bytes(b"x")
    with pytest.raises(BackfillInputError, match="not empty"):
        backfill(history, tmp_path / "out", sensors)


def test_results_inside_the_history_are_refused(sensors, history):
    with pytest.raises(BackfillInputError, match="inside the history"):
        backfill(history, history / "rescored", sensors)


def test_bad_sensor_list_rows_are_named(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text("tag,unit,H,HH\nA-1,ppm,20,abc\nB-2,ppm,30,10\n", encoding="utf-8")
    with pytest.raises(BackfillInputError, match=r"row 2, hh: 'abc' is not a number.*row 3, limits"):
        sensors_from_csv(path)


# ---- the command -----------------------------------------------------------------------------------

def test_command_prints_a_summary_and_writes_the_folder(history, tmp_path):
    tags = tmp_path / "tags.csv"
    tags.write_text(SENSOR_CSV, encoding="utf-8")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["backfill", str(history), "--out", str(out), "--sensors", str(tags),
                                   "--train-hours", "6", "--start", "2026-01-02", "--end", "2026-01-03"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.replace("│", " ").split())
    assert "GT-101" in text and "limit_hh 1" in text
    scored = read_results(out)
    assert scored["ts"].min() >= pd.Timestamp("2026-01-02", tz="UTC")
    assert scored["ts"].max() < pd.Timestamp("2026-01-03", tz="UTC")


def test_command_reports_bad_input_without_a_traceback(tmp_path):
    tags = tmp_path / "tags.csv"
    tags.write_text(SENSOR_CSV, encoding="utf-8")
    res = CliRunner().invoke(app, ["backfill", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"),
                                   "--sensors", str(tags)])
    assert res.exit_code == 2
    assert "does not exist" in " ".join(res.output.replace("│", " ").split())


def test_local_backfill_runs_without_dask_and_cluster_says_what_to_install(history_frame, sensors, tmp_path,
                                                                            monkeypatch):
    for name in ("dask", "dask.distributed", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)  # import of any of them now fails, as when not installed
    small = history_frame.head(2_000)
    folder = write_history(tmp_path / "h", small)
    report = backfill(folder, tmp_path / "o", sensors)
    assert sum(report.readings.values()) == len(small)
    with pytest.raises(BackfillInputError, match=r"--cluster needs dask: pip install 'hazardloop\[cluster\]'"):
        backfill(folder, tmp_path / "o2", sensors, cluster="tcp://127.0.0.1:8786")

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hazardloop.cli import app

runner = CliRunner()
DATA = Path(os.environ.get("HAZARDLOOP_BENCH_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def write(tmp_path: Path, frame: pd.DataFrame, sep: str = ",", name: str = "in.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, sep=sep, index=False)
    return path


def plant(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = np.zeros(n)
    for t in range(1, n):  # a stationary AR(1) process variable shared by the three sensors
        base[t] = 0.9 * base[t - 1] + 0.3 * rng.standard_normal()
    frame = pd.DataFrame({
        "ts": pd.date_range("2024-01-01", periods=n, freq="10s").strftime("%Y-%m-%d %H:%M:%S"),
        "FIC-201": 10 + base + 0.05 * rng.standard_normal(n),
        "TI-205": 80 + 2 * base + 0.05 * rng.standard_normal(n),
        "PI-300": 3 - base + 0.05 * rng.standard_normal(n),
    })
    frame.loc[300:, "TI-205"] += 5.0  # a process upset
    return frame


def detect(*args: str):
    return runner.invoke(app, ["detect", *args])


def plain(res) -> str:
    """The output as one line of words, without Rich's box drawing."""
    return " ".join(res.output.replace("│", " ").split())


def test_detect_writes_rows_with_score_flag_reason_and_fault_columns(tmp_path):
    src = write(tmp_path, plant(), sep=";")
    out = tmp_path / "out.csv"
    res = detect(str(src), "--time-col", "ts", "--train-rows", "200", "--out", str(out))
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out, sep=";")
    assert len(got) == 400
    assert {"score", "is_anomaly", "reason", "fault_FIC-201", "fault_TI-205", "fault_PI-300"} <= set(got.columns)
    assert got["is_anomaly"][305:].mean() > 0.9 and got["is_anomaly"][200:300].mean() < 0.1
    assert "TI-205" in got["reason"][310]


def test_train_until_a_timestamp_and_a_single_sensor_work(tmp_path):
    src = write(tmp_path, plant()[["ts", "TI-205"]])
    out = tmp_path / "out.csv"
    res = detect(str(src), "--time-col", "ts", "--train-until", "2024-01-01 00:33:10", "--out", str(out))
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out)
    assert "trained on 200" in plain(res)
    assert got["is_anomaly"][310:].mean() > 0.8 and got["is_anomaly"][200:300].mean() < 0.1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["ts"]), "time column 'ts' not found"),
        (lambda f: f.assign(**{"PI-300": ["x" if i == 7 else v for i, v in enumerate(f["PI-300"])]}),
         "column 'PI-300' is not numeric: line 9"),
        (lambda f: f.assign(ts=[f["ts"][4] if i == 5 else v for i, v in enumerate(f["ts"])]),
         "duplicate timestamp"),
        (lambda f: f.assign(ts=[f["ts"][9] if i == 10 else (f["ts"][10] if i == 9 else v)
                                 for i, v in enumerate(f["ts"])]), "line 12"),
        (lambda f: f.assign(**{"FIC-201": [np.nan if i < 150 else v for i, v in enumerate(f["FIC-201"])]}),
         "column 'FIC-201' is empty in 75 % of the training rows"),
    ],
    ids=["missing-time-column", "text-in-sensor", "duplicate-time", "out-of-order", "mostly-empty-in-training"],
)
def test_bad_input_is_refused_with_row_and_column(tmp_path, change, message):
    src = write(tmp_path, change(plant()))
    res = detect(str(src), "--time-col", "ts", "--train-rows", "200", "--out", str(tmp_path / "o.csv"))
    assert res.exit_code != 0
    assert message in plain(res)


def test_malformed_csv_is_refused(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("ts,a,b\n1,2,3\n2,3,4,5,6\n")
    res = detect(str(src), "--time-col", "ts", "--out", str(tmp_path / "o.csv"))
    assert res.exit_code != 0 and "malformed CSV" in plain(res)


def test_gaps_in_the_training_rows_are_left_out_of_fitting(tmp_path):
    frame = plant()
    frame.loc[[3, 40, 41, 120], "FIC-201"] = np.nan
    src = write(tmp_path, frame)
    out = tmp_path / "out.csv"
    res = detect(str(src), "--time-col", "ts", "--train-rows", "200", "--out", str(out))
    assert res.exit_code == 0, res.output
    clean = tmp_path / "clean.csv"
    detect(str(write(tmp_path, plant(), name="c.csv")), "--time-col", "ts", "--train-rows", "200", "--out", str(clean))
    got, ref = pd.read_csv(out), pd.read_csv(clean)
    assert (got["is_anomaly"][300:] == ref["is_anomaly"][300:]).mean() > 0.95


def test_missing_values_after_training_are_dropouts_not_errors(tmp_path):
    frame = plant()
    frame.loc[250, "PI-300"] = np.nan
    src = write(tmp_path, frame)
    out = tmp_path / "out.csv"
    res = detect(str(src), "--time-col", "ts", "--train-rows", "200", "--out", str(out))
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out, keep_default_na=False)
    assert got["fault_PI-300"][250] == "missing" and got["is_anomaly"][250] == 1


SKAB_FILES = sorted((DATA / "skab").rglob("*.csv")) if (DATA / "skab").is_dir() else []


@pytest.mark.skipif(not SKAB_FILES, reason="benchmark data folder absent")
def test_detect_works_on_every_skab_csv(tmp_path):
    assert len(SKAB_FILES) == 35
    for src in SKAB_FILES:
        out = tmp_path / "out.csv"
        res = detect(str(src), "--time-col", "datetime", "--out", str(out))
        assert res.exit_code == 0, f"{src}: {res.output}"
        got = pd.read_csv(out, sep=";")
        assert len(got) == len(pd.read_csv(src, sep=";")) and got["score"].notna().all()

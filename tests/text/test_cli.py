"""The commands as a user runs them: any labelled CSV in, model file and predictions out."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hazardloop.text.cli import text_app
from hazardloop.text.feedback import Label, record_label

from .conftest import write_csv

runner = CliRunner()


@pytest.fixture
def model_file(tmp_path: Path, train_csv: Path) -> Path:
    model = tmp_path / "m.joblib"
    r = runner.invoke(
        text_app,
        ["train", "--data", str(train_csv), "--text-col", "content", "--label-col", "category", "--model", str(model)],
    )
    assert r.exit_code == 0, r.output
    assert "trained hazardloop.text.tfidf-linear-svm" in r.output
    return model


def test_train_says_which_word_tokens_and_c_it_used(tmp_path: Path, train_csv: Path):
    from hazardloop.text.modelfile import load_model

    model = tmp_path / "m.joblib"
    args = ["--data", str(train_csv), "--text-col", "content", "--label-col", "category", "--model", str(model)]
    r = runner.invoke(text_app, ["train", *args])
    assert r.exit_code == 0, r.output
    assert "word tokens: regex" in r.output  # the default does not depend on the optional jieba
    params = load_model(model).info.params
    assert params["word_tokenizer_used"] == "regex"
    assert f"C={params['C_chosen']}" in r.output
    assert len(params["class_offsets_fitted"]) == len(load_model(model).info.labels)


def test_train_then_predict_adds_predicted_and_confidence(tmp_path: Path, model_file: Path):
    data = write_csv(tmp_path / "in.csv", ["id", "content"], [["1", "配电箱没有接地"], ["2", "灭火器过期了"]])
    out = tmp_path / "pred.csv"
    r = runner.invoke(text_app, ["predict", "--model", str(model_file), "--data", str(data), "--out", str(out)])
    assert r.exit_code == 0, r.output
    pred = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(pred.columns) == ["id", "content", "predicted", "confidence", "model_version"]
    assert list(pred.predicted) == ["electrical", "fire"]
    assert all(0 < float(c) <= 1 for c in pred.confidence)


def test_several_text_columns(tmp_path: Path):
    rows = [["Fall", "worker fell from roof edge", "falls"], ["Shock", "touched live wire", "electrocution"]] * 6
    data = write_csv(tmp_path / "osha.csv", ["title", "narrative", "label"], rows)
    r = runner.invoke(
        text_app,
        [
            "train",
            "--data",
            str(data),
            "--text-col",
            "title",
            "--text-col",
            "narrative",
            "--label-col",
            "label",
            "--model",
            str(tmp_path / "o.joblib"),
        ],
    )
    assert r.exit_code == 0, r.output


def test_predict_on_a_file_lacking_the_model_columns_names_them(tmp_path: Path, model_file: Path):
    data = write_csv(tmp_path / "in.csv", ["id", "description"], [["1", "配电箱"]])
    r = runner.invoke(
        text_app, ["predict", "--model", str(model_file), "--data", str(data), "--out", str(tmp_path / "p.csv")]
    )
    assert r.exit_code == 2
    assert "missing column(s) content" in r.output


def test_train_with_a_missing_label_column_is_a_one_line_error(tmp_path: Path, train_csv: Path):
    r = runner.invoke(
        text_app,
        [
            "train",
            "--data",
            str(train_csv),
            "--text-col",
            "content",
            "--label-col",
            "level",
            "--model",
            str(tmp_path / "m.joblib"),
        ],
    )
    assert r.exit_code == 2
    assert "missing column(s) level" in r.output and "Traceback" not in r.output


def test_predict_with_a_non_model_file_is_refused(tmp_path: Path, train_csv: Path):
    r = runner.invoke(
        text_app, ["predict", "--model", str(train_csv), "--data", str(train_csv), "--out", str(tmp_path / "p.csv")]
    )
    assert r.exit_code == 2
    assert "not a HazardLoop text model file" in r.output


def test_retrain_learns_a_new_category_from_confirmed_labels(tmp_path: Path, model_file: Path, train_csv: Path):
    store = tmp_path / "var"
    for text in ["叉车超速行驶", "叉车无证驾驶", "叉车倒车无警示", "叉车载人", "叉车货叉未放下"]:
        record_label(
            store,
            Label(
                text=text,
                suggested="fire",
                confirmed="vehicle",
                model_version="v1",
                at=pd.Timestamp("2024-05-01").to_pydatetime(),
            ),
        )
    new = tmp_path / "m2.joblib"
    r = runner.invoke(
        text_app,
        ["retrain", "--labels", str(store), "--model", str(model_file), "--data", str(train_csv), "--out", str(new)],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(text_app, ["suggest", "叉车超速", "--model", str(new), "--json"])
    assert json.loads(r.output)["category"] == "vehicle"


def test_suggest_cold_start_explains_and_cites(tmp_path: Path):
    r = runner.invoke(text_app, ["suggest", "有限空间作业没设监护人", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert got["category"] == "confined_space" and got["category_confidence"] is None
    assert got["accident_type"] == "19" and got["accident_type_name"].startswith("中毒和窒息")
    assert got["level"] == "重大"
    assert got["level_basis"][0]["citation"].endswith("第十三条第(二)项")


def test_suggest_table_output_names_the_matched_keywords():
    r = runner.invoke(text_app, ["suggest", "配电箱未接地"])
    assert r.exit_code == 0
    assert "matched: 配电箱, 接地" in r.output and "触电" in r.output


def test_suggest_refuses_empty_text():
    r = runner.invoke(text_app, ["suggest", "   "])
    assert r.exit_code == 2 and "text is empty" in r.output


def test_main_cli_registers_the_text_commands():
    from hazardloop.cli import app

    r = runner.invoke(app, ["text", "suggest", "灭火器过期", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["category"] == "fire"


def test_importing_the_commands_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = "import sys, hazardloop.text.cli; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_train_reads_a_gb18030_file_when_told(tmp_path: Path, rows):
    data = write_csv(tmp_path / "gbk.csv", ["content", "category"], [list(r) for r in rows], encoding="gb18030")
    args = ["train", "--data", str(data), "--text-col", "content", "--label-col", "category"]
    model = ["--model", str(tmp_path / "m.joblib")]
    r = runner.invoke(text_app, [*args, *model])
    assert r.exit_code == 2 and "gb18030" in r.output
    r = runner.invoke(text_app, [*args, *model, "--encoding", "gb18030"])
    assert r.exit_code == 0, r.output


def test_retrain_with_labels_of_one_kind_only_is_refused(tmp_path: Path, model_file: Path):
    store = tmp_path / "var"
    record_label(
        store,
        Label(
            text="叉车超速",
            suggested="fire",
            confirmed="vehicle",
            model_version="v1",
            at=pd.Timestamp("2024-05-01").to_pydatetime(),
        ),
    )
    r = runner.invoke(text_app, ["retrain", "--labels", str(store), "--model", str(model_file)])
    assert r.exit_code == 2 and "need at least 2 distinct" in r.output


def test_retrain_without_a_labels_file_names_it(tmp_path: Path, model_file: Path):
    r = runner.invoke(text_app, ["retrain", "--labels", str(tmp_path / "none.jsonl"), "--model", str(model_file)])
    assert r.exit_code == 2 and "no such labels file" in r.output


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    rows = [[f"H{i}", "仓储区", "灭火器过期" + ("" if i % 2 else "两个"), f"2024-{i + 1:02d}-05"] for i in range(5)]
    rows += [["H9", "仓储区", "配电箱未接地", "2024-03-02"], ["H10", "车间", "灭火器过期", "2024-01-06"]]
    return write_csv(tmp_path / "ledger.csv", ["编号", "区域", "隐患描述", "发现时间"], rows)


LEDGER_COLS = ["--text-col", "隐患描述", "--area-col", "区域", "--time-col", "发现时间", "--id-col", "编号"]


def test_clusters_command_names_the_monthly_pattern(ledger: Path):
    r = runner.invoke(text_app, ["clusters", "--data", str(ledger), *LEDGER_COLS])
    assert r.exit_code == 0, r.output
    assert "灭火器过期" in r.output and "每月复发" in r.output and "1 recurring pattern" in r.output


def test_duplicates_command_writes_pairs_within_area_and_window(ledger: Path, tmp_path: Path):
    out = tmp_path / "dups.csv"
    r = runner.invoke(text_app, ["duplicates", "--data", str(ledger), *LEDGER_COLS, "--out", str(out)])
    assert r.exit_code == 0, r.output
    pairs = pd.read_csv(out, dtype=str)
    # monthly reports on the 5th: only Feb→Mar (29 days, 2024) and Apr→May (30) fit the 30-day window;
    # H10 reads the same but is in another area
    assert set(zip(pairs.id, pairs.other_id, strict=True)) == {("H1", "H2"), ("H3", "H4")}


def test_an_unreadable_time_is_named(tmp_path: Path):
    bad = write_csv(tmp_path / "l.csv", ["区域", "隐患描述", "发现时间"], [["A", "灭火器过期", "上周三"]])
    r = runner.invoke(text_app, ["clusters", "--data", str(bad), *LEDGER_COLS[:6]])
    assert r.exit_code == 2 and "row 2: column 发现时间: cannot read '上周三'" in r.output

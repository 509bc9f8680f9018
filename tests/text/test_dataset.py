from pathlib import Path

import pytest

from hazardloop.text.dataset import COLUMN_SEPARATOR, load_table
from hazardloop.text.errors import DatasetError

from .conftest import write_csv


def test_several_text_columns_are_joined_in_order(tmp_path: Path):
    rows = [["Fall", "from roof", "falls"], ["Shock", "wire", "e"]]
    path = write_csv(tmp_path / "a.csv", ["title", "body", "y"], rows)
    table = load_table(path, text_columns=["title", "body"], label_column="y")
    assert table.texts[0] == f"Fall{COLUMN_SEPARATOR}from roof"
    assert table.labels == ["falls", "e"]


def test_missing_column_names_it_and_the_columns_present(tmp_path: Path):
    path = write_csv(tmp_path / "a.csv", ["content", "category"], [["x", "a"], ["y", "b"]])
    with pytest.raises(DatasetError, match=r"missing column\(s\) narrative; the file has content, category"):
        load_table(path, text_columns=["narrative"], label_column="category")


def test_non_utf8_file_says_where_and_suggests_gb18030(tmp_path: Path):
    path = write_csv(
        tmp_path / "gbk.csv", ["content", "category"], [["配电箱未接地", "electrical"]] * 2, encoding="gb18030"
    )
    with pytest.raises(DatasetError, match="not valid utf-8 text \\(line 2.*gb18030"):
        load_table(path, text_columns=["content"], label_column="category")


def test_gb18030_file_reads_when_told(tmp_path: Path):
    path = write_csv(
        tmp_path / "gbk.csv", ["content", "category"], [["配电箱未接地", "e"], ["灭火器过期", "f"]], encoding="gb18030"
    )
    table = load_table(path, text_columns=["content"], label_column="category", encoding="gb18030")
    assert table.texts == ["配电箱未接地", "灭火器过期"]


def test_empty_label_names_the_spreadsheet_row(tmp_path: Path):
    path = write_csv(tmp_path / "a.csv", ["content", "category"], [["a", "x"], ["b", "y"], ["c", " "]])
    with pytest.raises(DatasetError, match="row 4: column category \\(the label\\) is empty"):
        load_table(path, text_columns=["content"], label_column="category")


def test_empty_text_names_the_row(tmp_path: Path):
    path = write_csv(tmp_path / "a.csv", ["content", "category"], [["a", "x"], ["", "y"]])
    with pytest.raises(DatasetError, match="row 3: the text column\\(s\\) content are empty"):
        load_table(path, text_columns=["content"], label_column="category")


def test_huge_text_names_the_row(tmp_path: Path):
    path = write_csv(tmp_path / "a.csv", ["content", "category"], [["a", "x"], ["b" * 30_000, "y"]])
    with pytest.raises(DatasetError, match="row 3: text has 30000 characters"):
        load_table(path, text_columns=["content"], label_column="category")


def test_a_single_class_cannot_train(tmp_path: Path):
    path = write_csv(tmp_path / "a.csv", ["content", "category"], [["a", "fire"], ["b", "fire"]])
    with pytest.raises(DatasetError, match="1 distinct label\\(s\\) \\(fire\\)"):
        load_table(path, text_columns=["content"], label_column="category")


def test_header_without_rows_and_empty_file(tmp_path: Path):
    header_only = write_csv(tmp_path / "h.csv", ["content", "category"], [])
    with pytest.raises(DatasetError, match="no rows"):
        load_table(header_only, text_columns=["content"], label_column="category")
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match="empty"):
        load_table(empty, text_columns=["content"])


def test_missing_file(tmp_path: Path):
    with pytest.raises(DatasetError, match="no such file"):
        load_table(tmp_path / "nope.csv", text_columns=["content"])

from pathlib import Path

import pytest

from hazardloop.text.errors import RuleTableError
from hazardloop.text.rules import accident_type_rules, category_rules, load_keyword_table


def test_cold_start_category_explains_its_keywords():
    p = category_rules().suggest("配电箱未接地")
    assert p.label == "electrical"
    assert set(p.explanation) == {"配电箱", "接地"}  # "电箱" is inside "配电箱", so not repeated
    assert p.confidence is None  # rules are not calibrated and do not pretend to be


def test_english_keywords_match_whole_word_starts():
    assert category_rules().suggest("Fire extinguisher missing near exit").label == "fire"
    assert accident_type_rules().suggest("an executive office") is None  # "cut" must not match "executive"


def test_gb6441_table_has_all_twenty_types():
    table = accident_type_rules()
    assert [r.code for r in table.rows] == [f"{i:02d}" for i in range(1, 21)]
    assert table.get("05").name_zh == "触电"


def test_no_keyword_gives_no_suggestion():
    assert category_rules().suggest("一般") is None


def test_an_edited_table_is_used_and_bad_rows_are_named(tmp_path: Path):
    own = tmp_path / "own.csv"
    own.write_text("category,name_zh,name_en,keywords\nrust,锈蚀,corrosion,锈蚀|生锈\n", encoding="utf-8")
    assert load_keyword_table(own, code_column="category", name="t").suggest("钢梁生锈").label == "rust"
    bad = tmp_path / "bad.csv"
    bad.write_text("category,name_zh,name_en,keywords\nrust,锈蚀,corrosion,\n", encoding="utf-8")
    with pytest.raises(RuleTableError, match="row 2: no keywords for rust"):
        load_keyword_table(bad, code_column="category", name="t")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("code,words\n1,a\n", encoding="utf-8")
    with pytest.raises(RuleTableError, match="needs columns"):
        load_keyword_table(wrong, code_column="category", name="t")

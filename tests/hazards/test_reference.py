"""The register's reference data and the text models' rule tables speak the same codes."""

from __future__ import annotations

import csv
from importlib import resources

from hazardloop.hazards.reference import accident_types, categories, policy


def _text_table(name: str) -> list[dict[str, str]]:
    with (resources.files("hazardloop.text") / "data" / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_text_rule_category_is_a_register_category() -> None:
    assert {row["category"] for row in _text_table("categories.csv")} <= set(categories())


def test_gb6441_tables_agree() -> None:
    text = {row["code"]: row["name_zh"] for row in _text_table("gb6441_accident_types.csv")}
    assert text == {code: ref.name_zh for code, ref in accident_types().items()}
    assert len(text) == 20


def test_policy_levels_map_onto_the_two_legal_levels() -> None:
    assert {level.legal for level in policy().levels.values()} == {"general", "major"}
    assert set(policy().deadline_days) == {"general", "major"}

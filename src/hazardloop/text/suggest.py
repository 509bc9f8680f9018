"""One text in, every suggestion out: category, GB 6441 accident type, level, and why.

Category comes from the enterprise's trained model when there is one (calibrated
confidence, n-grams behind it) and from the keyword table otherwise (cold start); the rule
hit is always shown too, since it explains in words a person recognises. The level comes
from the 重大事故隐患 rule pack, optionally raised — never lowered — by a level model.
"""

from __future__ import annotations

from dataclasses import dataclass

from hazardloop.text.classifier import Prediction
from hazardloop.text.level import LevelSuggestion, MajorRulePack, combine_levels, major_pack, suggest_level
from hazardloop.text.modelfile import TextModel
from hazardloop.text.normalize import check_text
from hazardloop.text.rules import KeywordTable, accident_type_rules, category_rules


@dataclass(frozen=True)
class Suggestion:
    text: str
    category: Prediction | None  # the suggestion to show first (model if trained, else rules)
    category_rules: Prediction | None  # the keyword-table hit, for its explanation
    accident_type: Prediction | None  # GB 6441 code
    accident_type_name: str
    level: LevelSuggestion


def suggest(
    text: str,
    *,
    model: TextModel | None = None,
    level_model: TextModel | None = None,
    categories: KeywordTable | None = None,
    accident_types: KeywordTable | None = None,
    pack: MajorRulePack | None = None,
) -> Suggestion:
    check_text(text)
    categories = categories or category_rules()
    accident_types = accident_types or accident_type_rules()
    rule_category = categories.suggest(text)
    category = model.suggest([text])[0] if model is not None else rule_category
    accident = accident_types.suggest(text)
    row = accident_types.get(accident.label) if accident else None
    level = suggest_level(text, pack or major_pack())
    if level_model is not None:
        p = level_model.suggest([text])[0]
        level = combine_levels(level, p.label, p.confidence)
    return Suggestion(
        text=text,
        category=category,
        category_rules=rule_category,
        accident_type=accident,
        accident_type_name=f"{row.name_zh} {row.name_en}" if row else "",
        level=level,
    )

"""Keyword rule tables: the cold start before an enterprise has confirmed hazards to train on.

Three tables ship in ``text/data`` (ARCHITECTURE §7: reference data is data, editable per
enterprise; pass a copy with ``--rules``/the ``path`` arguments):

* ``categories.csv``               category,name_zh,name_en,keywords   (keywords split by ``|``)
* ``gb6441_accident_types.csv``    code,name_zh,name_en,keywords       (GB 6441-1986, 20 types)
* ``major_hazards_*.toml``         numbered 重大事故隐患 items (see level.py)

A rule suggestion always says which keywords matched, so a person can see why.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from hazardloop.text.classifier import Prediction
from hazardloop.text.errors import RuleTableError
from hazardloop.text.normalize import compact, normalize

RULES_VERSION_PREFIX = "rules"
_ASCII = re.compile(r"^[\x00-\x7f]+$")


def data_path(name: str) -> Path:
    """Path of a table shipped in the package."""
    return Path(str(resources.files("hazardloop.text") / "data" / name))


@dataclass(frozen=True)
class Keyword:
    """One keyword, prepared for matching: CJK by substring of compact text, ASCII by word start."""

    raw: str
    pattern: re.Pattern[str] | None  # for ASCII keywords
    folded: str  # for CJK keywords

    @classmethod
    def of(cls, raw: str) -> Keyword:
        word = normalize(raw)
        if _ASCII.match(word):
            # "fall" should match "falls"/"fallen" but "cut" should not match "executive".
            return cls(raw=raw, pattern=re.compile(r"\b" + r"\s*".join(map(re.escape, word.split()))), folded="")
        return cls(raw=raw, pattern=None, folded=compact(word))

    def found_in(self, normal: str, tight: str) -> bool:
        if self.pattern is not None:
            return self.pattern.search(normal) is not None
        return bool(self.folded) and self.folded in tight


def match_keywords(keywords: tuple[Keyword, ...], text: str) -> list[str]:
    """The keywords (as written in the table) found in ``text``."""
    normal, tight = normalize(text), compact(text)
    return [k.raw for k in keywords if k.found_in(normal, tight)]


@dataclass(frozen=True)
class KeywordClass:
    """A row of a keyword table: a code (category or GB 6441 code), names and keywords."""

    code: str
    name_zh: str
    name_en: str
    keywords: tuple[Keyword, ...]


@dataclass(frozen=True)
class KeywordTable:
    """A keyword → class table; ``suggest`` gives the class with the most matched keywords."""

    name: str
    version: str
    rows: tuple[KeywordClass, ...]

    def scores(self, text: str) -> list[tuple[KeywordClass, list[str]]]:
        """Every class with at least one matched keyword, best first (ties keep table order)."""
        hits = [(row, match_keywords(row.keywords, text)) for row in self.rows]
        hits = [(row, found) for row, found in hits if found]
        # Longer keywords are more specific ("配电箱" over "电"), so they weigh by length.
        return sorted(hits, key=lambda h: -sum(len(k) for k in h[1]))

    def suggest(self, text: str) -> Prediction | None:
        ranked = self.scores(text)
        if not ranked:
            return None
        row, found = ranked[0]
        # "配电箱" already says "电箱": show only keywords not inside another matched one.
        found = [k for k in found if not any(k != other and k in other for other in found)]
        return Prediction(
            label=row.code,
            confidence=None,
            model=self.name,
            model_version=self.version,
            explanation=tuple(found),
        )

    def get(self, code: str) -> KeywordClass | None:
        return next((r for r in self.rows if r.code == code), None)


def load_keyword_table(path: str | Path, *, code_column: str, name: str) -> KeywordTable:
    """Read a ``code,name_zh,name_en,keywords`` CSV; errors name the file and row."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            needed = {code_column, "name_zh", "name_en", "keywords"}
            if reader.fieldnames is None or not needed <= set(reader.fieldnames):
                raise RuleTableError(f"{path}: needs columns {', '.join(sorted(needed))}; has {reader.fieldnames}")
            rows = []
            for line, rec in enumerate(reader, start=2):
                code = (rec[code_column] or "").strip()
                words = tuple(Keyword.of(k.strip()) for k in (rec["keywords"] or "").split("|") if k.strip())
                if not code:
                    raise RuleTableError(f"{path}: row {line}: column {code_column} is empty")
                if not words:
                    raise RuleTableError(f"{path}: row {line}: no keywords for {code}")
                rows.append(KeywordClass(code, rec["name_zh"].strip(), rec["name_en"].strip(), words))
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleTableError(f"{path}: cannot read the rule table: {exc}") from exc
    if not rows:
        raise RuleTableError(f"{path}: the rule table has no rows")
    return KeywordTable(name=name, version=f"{RULES_VERSION_PREFIX}-{path.stem}", rows=tuple(rows))


@lru_cache(maxsize=8)
def category_rules(path: str | None = None) -> KeywordTable:
    """The keyword → hazard-category table (shipped default unless ``path`` is given)."""
    return load_keyword_table(
        path or data_path("categories.csv"), code_column="category", name="hazardloop.text.category-rules"
    )


@lru_cache(maxsize=8)
def accident_type_rules(path: str | None = None) -> KeywordTable:
    """The keyword → GB 6441-1986 accident-type table (shipped default unless ``path`` is given)."""
    return load_keyword_table(
        path or data_path("gb6441_accident_types.csv"), code_column="code", name="hazardloop.text.gb6441-rules"
    )

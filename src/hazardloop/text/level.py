"""Level suggestion: propose 重大事故隐患 when a text matches a numbered item of a 判定标准.

The sector standards (domain.md §1.5) list conditions that *must* be graded 重大 whatever
local judgement says. So: a rule match proposes 重大 and cites its item; nothing here (and no
model) may turn such a proposal back into 一般 silently — :func:`combine_levels` only lets a
model raise the level, and keeps every rule citation. A named person decides (ARCHITECTURE §7).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from hazardloop.text.errors import RuleTableError
from hazardloop.text.rules import Keyword, data_path, match_keywords

DEFAULT_PACK = "major_hazards_gongmao_2023.toml"
_CN_NUM = "零一二三四五六七八九十"


class Level(StrEnum):
    GENERAL = "一般"
    MAJOR = "重大"


def _chinese_number(n: int) -> str:
    """3 → 三, 13 → 十三, 20 → 二十 (article numbers in citations are written in Chinese)."""
    if n <= 10:
        return _CN_NUM[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _CN_NUM[tens]) + "十" + (_CN_NUM[ones] if ones else "")


@dataclass(frozen=True)
class MajorItem:
    """One numbered condition of a 重大事故隐患判定标准."""

    standard: str
    article: int
    item: int
    group: str
    industry: str
    text: str
    match: tuple[tuple[Keyword, ...], ...]
    verified: bool
    sources: tuple[str, ...] = ()  # where number and wording were checked (URLs); required when verified
    note: str = ""  # what was checked and what was not

    @property
    def citation(self) -> str:
        return f"《{self.standard}》第{_chinese_number(self.article)}条第({_chinese_number(self.item)})项"

    def matched(self, text: str) -> list[str] | None:
        """The keyword found for each group, or None if some group has no match."""
        found: list[str] = []
        for group in self.match:
            hits = match_keywords(group, text)
            if not hits:
                return None
            found.append(hits[0])
        return found


@dataclass(frozen=True)
class MajorRulePack:
    id: str
    title: str
    issuer: str
    items: tuple[MajorItem, ...]


@dataclass(frozen=True)
class ItemMatch:
    citation: str
    item_text: str
    matched: tuple[str, ...]
    verified: bool
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class LevelSuggestion:
    """Proposed level, the items that force it and where each part came from."""

    level: Level
    matches: tuple[ItemMatch, ...]
    source: str  # "rules", "model" or "rules+model"
    model_confidence: float | None = None

    @property
    def explanation(self) -> str:
        if not self.matches:
            if self.source == "rules":
                return "no 重大事故隐患 item matched"
            conf = f" ({self.model_confidence:.0%})" if self.model_confidence is not None else ""
            return f"no 重大事故隐患 item matched; level model suggests {self.level.value}{conf}"
        return "; ".join(f"{m.citation} (matched: {', '.join(m.matched)})" for m in self.matches)


def load_major_pack(path: str | Path) -> MajorRulePack:
    """Read a rule pack TOML; errors name the file and the item."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuleTableError(f"{path}: cannot read the rule pack: {exc}") from exc
    std = raw.get("standard") or {}
    if "title" not in std or not raw.get("item"):
        raise RuleTableError(f"{path}: needs a [standard] table with a title and at least one [[item]]")
    items = []
    for n, rec in enumerate(raw["item"], start=1):
        try:
            groups = tuple(tuple(Keyword.of(str(k)) for k in group) for group in rec["match"])
            if not groups or any(not g for g in groups):
                raise RuleTableError(f"{path}: item #{n}: every match group needs at least one keyword")
            verified = rec.get("verified", False)
            if not isinstance(verified, bool):
                raise RuleTableError(f"{path}: item #{n}: verified must be true or false, got {verified!r}")
            sources = _sources(rec.get("source", []), path=path, n=n)
            if verified and not sources:
                # An item is only "verified" against something a reader can open and check again.
                raise RuleTableError(f'{path}: item #{n}: verified = true needs a source URL (source = ["https://…"])')
            items.append(
                MajorItem(
                    standard=std["title"],
                    article=int(rec["article"]),
                    item=int(rec["item"]),
                    group=str(rec.get("group", "")),
                    industry=str(rec.get("industry", "")),
                    text=str(rec["text"]),
                    match=groups,
                    verified=verified,
                    sources=sources,
                    note=str(rec.get("note", "")),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RuleTableError(f"{path}: item #{n}: missing or bad field ({exc})") from exc
    return MajorRulePack(
        id=str(std.get("id", path.stem)), title=std["title"], issuer=str(std.get("issuer", "")), items=tuple(items)
    )


def _sources(raw: object, *, path: Path, n: int) -> tuple[str, ...]:
    """``source`` as a tuple of http(s) URLs; a single string is accepted as a list of one."""
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RuleTableError(f"{path}: item #{n}: source must be a URL or a list of URLs")
    bad = [v for v in values if not v.startswith(("http://", "https://"))]
    if bad:
        raise RuleTableError(f"{path}: item #{n}: source {bad[0]!r} is not an http(s) URL")
    return tuple(values)


@lru_cache(maxsize=8)
def major_pack(path: str | None = None) -> MajorRulePack:
    return load_major_pack(path or data_path(DEFAULT_PACK))


def suggest_level(text: str, pack: MajorRulePack | None = None) -> LevelSuggestion:
    """重大 if any item of the pack matches (all cited), else 一般."""
    pack = pack or major_pack()
    matches = []
    for item in pack.items:
        found = item.matched(text)
        if found is not None:
            matches.append(ItemMatch(item.citation, item.text, tuple(found), item.verified, item.sources))
    level = Level.MAJOR if matches else Level.GENERAL
    return LevelSuggestion(level=level, matches=tuple(matches), source="rules")


_LEVEL_ALIASES = {"重大": Level.MAJOR, "major": Level.MAJOR, "一般": Level.GENERAL, "general": Level.GENERAL}


def _as_level(value: str) -> Level:
    try:
        return _LEVEL_ALIASES[value.strip().lower()]
    except KeyError:
        raise RuleTableError(
            f"a level model predicted {value!r}; level labels must be one of {', '.join(_LEVEL_ALIASES)}"
        ) from None


def combine_levels(
    rule: LevelSuggestion, model_level: str | None, model_confidence: float | None = None
) -> LevelSuggestion:
    """Merge a rule proposal with a model's: the model may raise the level, never lower it.

    A model trained on past gradings learns the enterprise's habits, including the habit of
    under-grading; a 判定标准 item is law, so a rule's 重大 stands with its citations.
    """
    if model_level is None:
        return rule
    if _as_level(model_level) is Level.MAJOR or rule.level is Level.MAJOR:
        source = "rules+model" if rule.level is Level.MAJOR else "model"
        return LevelSuggestion(Level.MAJOR, rule.matches, source, model_confidence)
    return LevelSuggestion(Level.GENERAL, rule.matches, "rules+model", model_confidence)

"""Reference data of the hazard register, read from hazards/data (versioned, editable per enterprise)."""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Coded:
    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Level(Coded):
    legal: str  # "general" | "major"


@dataclass(frozen=True)
class EscalationStep:
    step: int
    days_overdue: int
    notify: str


@dataclass(frozen=True)
class Policy:
    version: str
    levels: dict[str, Level]
    deadline_days: dict[str, int]
    reminder_days_before: tuple[int, ...]
    escalation: tuple[EscalationStep, ...]


def _text(name: str) -> str:
    return (resources.files("hazardloop.hazards") / "data" / name).read_text("utf-8")


@lru_cache(maxsize=1)
def accident_types() -> dict[str, Coded]:
    rows = csv.DictReader(io.StringIO(_text("gb6441_accident_types.csv")))
    return {r["code"]: Coded(r["code"], r["name_zh"], r["name_en"]) for r in rows}


@lru_cache(maxsize=1)
def categories() -> dict[str, Coded]:
    rows = csv.DictReader(io.StringIO(_text("categories.csv")))
    return {r["code"]: Coded(r["code"], r["name_zh"], r["name_en"]) for r in rows}


@lru_cache(maxsize=1)
def policy() -> Policy:
    raw = tomllib.loads(_text("policy.toml"))
    levels = {
        item["code"]: Level(item["code"], item["name_zh"], item["name_en"], item["legal"]) for item in raw["levels"]
    }
    steps = tuple(sorted((EscalationStep(**s) for s in raw["escalation"]), key=lambda s: s.step))
    return Policy(
        version=raw["version"],
        levels=levels,
        deadline_days=dict(raw["deadline_days"]),
        reminder_days_before=tuple(sorted(raw["reminders"]["days_before"], reverse=True)),
        escalation=steps,
    )


def legal_level(level_code: str | None) -> str | None:
    level = policy().levels.get(level_code) if level_code is not None else None
    return level.legal if level else None  # an unknown code is reported by the workflow's has_level guard

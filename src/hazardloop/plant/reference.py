"""Reference tables of the plant domain, read from plant/data (editable per enterprise)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class SensorKind:
    kind: str
    name_zh: str
    name_en: str
    units: tuple[str, ...]


def _read_csv(name: str) -> list[dict[str, str]]:
    text = (resources.files("hazardloop.plant") / "data" / name).read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@lru_cache(maxsize=1)
def sensor_kinds() -> dict[str, SensorKind]:
    return {
        row["kind"]: SensorKind(row["kind"], row["name_zh"], row["name_en"], tuple(row["units"].split("|")))
        for row in _read_csv("sensor_kinds.csv")
    }


@lru_cache(maxsize=1)
def import_column_aliases() -> dict[str, str]:
    """Header text (lower-cased) → field name, so tag lists in Chinese or English headers both import."""
    aliases: dict[str, str] = {}
    for row in _read_csv("sensor_import_columns.csv"):
        for alias in row["aliases"].split("|"):
            aliases[alias.strip().lower()] = row["field"]
    return aliases

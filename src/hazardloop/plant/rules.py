"""Consistency rules of a sensor's configuration, shared by the API and the tag-list import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hazardloop.plant.reference import sensor_kinds

LIMIT_ORDER = ("ll", "l", "h", "hh")


def sensor_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (field, message) wrong with a sensor's settings; empty when it is consistent.

    The rules are what an instrument engineer checks on a tag list: a known measuring kind,
    a unit that belongs to it (a %LEL detector typed as ppm is a wrong-unit error, not a
    scaling question), limits inside the physical range, and LL < L < H < HH.
    """
    problems: list[tuple[str, str]] = []
    kinds = sensor_kinds()
    kind = values.get("kind")
    if kind not in kinds:
        problems.append(("kind", f"unknown sensor kind '{kind}'; known: {', '.join(sorted(kinds))}"))
    elif values.get("unit") not in kinds[kind].units:
        problems.append(
            ("unit", f"unit '{values.get('unit')}' does not fit {kind}; use one of {', '.join(kinds[kind].units)}")
        )
    low, high = values.get("range_min"), values.get("range_max")
    if low is not None and high is not None and low >= high:
        problems.append(("range_max", f"range_max ({high}) must be above range_min ({low})"))
        return problems
    present = [(name, values[name]) for name in LIMIT_ORDER if values.get(name) is not None]
    for name, limit in present:
        if low is not None and high is not None and not low <= limit <= high:
            problems.append((name, f"alarm limit {name.upper()}={limit} lies outside the range {low}..{high}"))
    for (name_a, a), (name_b, b) in zip(present, present[1:], strict=False):
        if a >= b:
            problems.append((name_b, f"{name_a.upper()}={a} must be below {name_b.upper()}={b}"))
    deadband = values.get("deadband") or 0.0
    if low is not None and high is not None and deadband >= (high - low):
        problems.append(("deadband", f"deadband {deadband} is not smaller than the range span {high - low}"))
    return problems

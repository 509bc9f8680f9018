"""The demo plant's definition: read ``data/plant.toml`` into frozen dataclasses and check it.

The plant file is hand-edited data, so every check here answers the question a person editing it
would ask next: *which* entry, *which* field, and what would be accepted instead. The same file
feeds the database loader and the signal simulator, so a mistake caught here never reaches either.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

RISK_GRADES = ("red", "orange", "yellow", "blue")
"""The four risk colours of 国务院安委办〔2016〕11号: 重大 / 较大 / 一般 / 低."""

EQUIPMENT_KINDS = (
    "tank",
    "reactor",
    "pump",
    "boiler",
    "compressor",
    "heat_exchanger",
    "warehouse",
    "loading_arm",
    "pipeline",
    "other",
)

SENSOR_UNITS: dict[str, tuple[str, ...]] = {
    "combustible_gas": ("%LEL",),
    "h2s": ("ppm",),
    "co": ("ppm",),
    "o2": ("%vol",),
    "toxic_gas": ("ppm",),
    "temperature": ("°C",),
    "pressure": ("MPa", "kPa"),
    "level": ("%",),
    "flow": ("m³/h",),
    "vibration": ("mm/s",),
    "current": ("A",),
    "humidity": ("%RH",),
}
"""Sensor kind → the units a reading of that kind may be recorded in."""

SENSOR_KINDS = tuple(SENSOR_UNITS)
GAS_KINDS = frozenset({"combustible_gas", "h2s", "co", "toxic_gas", "o2"})
LIMIT_NAMES = ("ll", "l", "h", "hh")


class PlantSpecError(ValueError):
    """A plant file that cannot be used, with the entry and field that made it so."""

    def __init__(self, where: str, field: str | None, reason: str):
        self.where = where
        self.field = field
        self.reason = reason
        location = f"{where}, field '{field}'" if field else where
        super().__init__(f"{location}: {reason}")


@dataclass(frozen=True)
class SiteSpec:
    code: str
    name_zh: str
    name_en: str
    plan_width: float
    plan_height: float


@dataclass(frozen=True)
class AreaSpec:
    code: str
    site: str
    name_zh: str
    name_en: str
    risk_grade: str
    polygon: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class EquipmentSpec:
    code: str
    area: str
    name_zh: str
    name_en: str
    kind: str


@dataclass(frozen=True)
class SensorSpec:
    """One instrument. Limits are ``None`` where the plant sets none (e.g. no low alarm on a gas detector)."""

    tag: str
    equipment: str
    kind: str
    unit: str
    range_min: float
    range_max: float
    ll: float | None
    l: float | None  # noqa: E741 - the alarm limit is called L on every DCS faceplate
    h: float | None
    hh: float | None
    deadband: float
    on_delay_s: float
    off_delay_s: float
    sample_period_s: float

    @property
    def span(self) -> float:
        return self.range_max - self.range_min


@dataclass(frozen=True)
class PlantSpec:
    """The whole plant, in file order; lookups by code or tag go through the methods below."""

    enterprise_code: str
    enterprise_name_zh: str
    enterprise_name_en: str
    sites: tuple[SiteSpec, ...]
    areas: tuple[AreaSpec, ...]
    equipment: tuple[EquipmentSpec, ...]
    sensors: tuple[SensorSpec, ...]

    @property
    def tags(self) -> list[str]:
        return [s.tag for s in self.sensors]

    def sensor(self, tag: str) -> SensorSpec:
        for s in self.sensors:
            if s.tag == tag:
                return s
        raise KeyError(f"no sensor tagged {tag!r}")

    def equipment_of(self, tag: str) -> EquipmentSpec:
        code = self.sensor(tag).equipment
        return next(e for e in self.equipment if e.code == code)

    def area_of(self, tag: str) -> AreaSpec:
        code = self.equipment_of(tag).area
        return next(a for a in self.areas if a.code == code)


def load_plant_spec(path: Path | None = None) -> PlantSpec:
    """Read and check a plant file; without a path, the demo plant packaged with HazardLoop."""
    if path is None:
        source = resources.files("hazardloop.demo").joinpath("data/plant.toml")
        text, name = source.read_text(encoding="utf-8"), "plant.toml (packaged)"
    else:
        text, name = Path(path).read_text(encoding="utf-8"), str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlantSpecError(name, None, f"not valid TOML: {exc}") from exc
    return parse_plant_spec(data)


def parse_plant_spec(data: Mapping[str, Any]) -> PlantSpec:
    """Check an already-parsed plant document (the dict ``tomllib`` gives) and build the spec."""
    enterprise = _table(data, "enterprise", "enterprise")
    _no_unknown_keys(enterprise, "enterprise", {"code", "name_zh", "name_en"})
    sites = tuple(_site(e, where) for e, where in _entries(data, "sites", "code"))
    areas = tuple(_area(e, where) for e, where in _entries(data, "areas", "code"))
    equipment = tuple(_equipment(e, where) for e, where in _entries(data, "equipment", "code"))
    sensors = tuple(_sensor(e, where) for e, where in _entries(data, "sensors", "tag"))

    _unique([s.code for s in sites], "sites", "code")
    _unique([a.code for a in areas], "areas", "code")
    _unique([e.code for e in equipment], "equipment", "code")
    _unique([s.tag for s in sensors], "sensors", "tag")
    site_by_code = {s.code: s for s in sites}
    _references([(a.code, a.site) for a in areas], set(site_by_code), "areas", "code", "site")
    _references([(e.code, e.area) for e in equipment], {a.code for a in areas}, "equipment", "code", "area")
    _references([(s.tag, s.equipment) for s in sensors], {e.code for e in equipment}, "sensors", "tag", "equipment")
    for i, area in enumerate(areas):
        _check_polygon_in_plan(area, site_by_code[area.site], f"areas[{i}] (code '{area.code}')")
    _check_no_overlap(areas)

    return PlantSpec(
        enterprise_code=_text(enterprise, "code", "enterprise"),
        enterprise_name_zh=_text(enterprise, "name_zh", "enterprise"),
        enterprise_name_en=_text(enterprise, "name_en", "enterprise"),
        sites=sites,
        areas=areas,
        equipment=equipment,
        sensors=sensors,
    )


# ── entries ──────────────────────────────────────────────────────────────────────────────────


def _site(e: Mapping[str, Any], where: str) -> SiteSpec:
    _no_unknown_keys(e, where, {"code", "name_zh", "name_en", "plan_width", "plan_height"})
    site = SiteSpec(
        code=_text(e, "code", where),
        name_zh=_text(e, "name_zh", where),
        name_en=_text(e, "name_en", where),
        plan_width=_number(e, "plan_width", where),
        plan_height=_number(e, "plan_height", where),
    )
    for name in ("plan_width", "plan_height"):
        if getattr(site, name) <= 0:
            raise PlantSpecError(where, name, "must be positive (metres)")
    return site


def _area(e: Mapping[str, Any], where: str) -> AreaSpec:
    _no_unknown_keys(e, where, {"code", "site", "name_zh", "name_en", "risk_grade", "polygon"})
    grade = _text(e, "risk_grade", where)
    if grade not in RISK_GRADES:
        raise PlantSpecError(where, "risk_grade", f"{grade!r} is not one of {', '.join(RISK_GRADES)}")
    return AreaSpec(
        code=_text(e, "code", where),
        site=_text(e, "site", where),
        name_zh=_text(e, "name_zh", where),
        name_en=_text(e, "name_en", where),
        risk_grade=grade,
        polygon=_polygon(e, where),
    )


def _equipment(e: Mapping[str, Any], where: str) -> EquipmentSpec:
    _no_unknown_keys(e, where, {"code", "area", "name_zh", "name_en", "kind"})
    kind = _text(e, "kind", where)
    if kind not in EQUIPMENT_KINDS:
        raise PlantSpecError(where, "kind", f"{kind!r} is not one of {', '.join(EQUIPMENT_KINDS)}")
    return EquipmentSpec(
        code=_text(e, "code", where),
        area=_text(e, "area", where),
        name_zh=_text(e, "name_zh", where),
        name_en=_text(e, "name_en", where),
        kind=kind,
    )


_SENSOR_KEYS = {
    "tag",
    "equipment",
    "kind",
    "unit",
    "range_min",
    "range_max",
    *LIMIT_NAMES,
    "deadband",
    "on_delay_s",
    "off_delay_s",
    "sample_period_s",
}


def _sensor(e: Mapping[str, Any], where: str) -> SensorSpec:
    _no_unknown_keys(e, where, _SENSOR_KEYS)
    kind = _text(e, "kind", where)
    if kind not in SENSOR_UNITS:
        raise PlantSpecError(where, "kind", f"{kind!r} is not one of {', '.join(SENSOR_KINDS)}")
    unit = _text(e, "unit", where)
    if unit not in SENSOR_UNITS[kind]:
        allowed = " or ".join(repr(u) for u in SENSOR_UNITS[kind])
        raise PlantSpecError(where, "unit", f"{unit!r} is not a unit for {kind} (use {allowed})")
    lo, hi = _number(e, "range_min", where), _number(e, "range_max", where)
    if lo >= hi:
        raise PlantSpecError(where, "range_max", f"must be above range_min ({hi} <= {lo})")
    limits = {name: _number(e, name, where) if name in e else None for name in LIMIT_NAMES}
    _check_limits(limits, lo, hi, where)
    sensor = SensorSpec(
        tag=_text(e, "tag", where),
        equipment=_text(e, "equipment", where),
        kind=kind,
        unit=unit,
        range_min=lo,
        range_max=hi,
        ll=limits["ll"],
        l=limits["l"],
        h=limits["h"],
        hh=limits["hh"],
        deadband=_number(e, "deadband", where),
        on_delay_s=_number(e, "on_delay_s", where),
        off_delay_s=_number(e, "off_delay_s", where),
        sample_period_s=_number(e, "sample_period_s", where),
    )
    for name in ("deadband", "on_delay_s", "off_delay_s"):
        if getattr(sensor, name) < 0:
            raise PlantSpecError(where, name, "must not be negative")
    if sensor.sample_period_s <= 0:
        raise PlantSpecError(where, "sample_period_s", "must be positive")
    return sensor


def _check_limits(limits: Mapping[str, float | None], lo: float, hi: float, where: str) -> None:
    """Limits must sit inside the instrument range and rise strictly ll < l < h < hh.

    A limit outside the range could never be reached by a healthy transmitter, and limits out of
    order would raise a high alarm below a low one; both are typing mistakes, never intent.
    """
    present = [(name, value) for name, value in limits.items() if value is not None]
    for name, value in present:
        if not lo <= value <= hi:
            raise PlantSpecError(where, name, f"{value} is outside the range {lo}..{hi}")
    for (name_a, a), (name_b, b) in zip(present, present[1:], strict=False):
        if a >= b:
            raise PlantSpecError(where, name_b, f"limits must rise ll < l < h < hh, but {name_a}={a} >= {name_b}={b}")


# ── geometry ─────────────────────────────────────────────────────────────────────────────────


def _polygon(e: Mapping[str, Any], where: str) -> tuple[tuple[float, float], ...]:
    raw = e.get("polygon")
    if not isinstance(raw, list):
        raise PlantSpecError(where, "polygon", "missing; give a list of [x, y] points")
    points: list[tuple[float, float]] = []
    for k, p in enumerate(raw):
        if not (isinstance(p, list) and len(p) == 2 and all(_is_number(c) for c in p)):
            raise PlantSpecError(where, "polygon", f"point {k} must be [x, y] numbers, got {p!r}")
        points.append((float(p[0]), float(p[1])))
    if len(points) < 3:
        raise PlantSpecError(where, "polygon", f"needs at least 3 points, got {len(points)}")
    if abs(_signed_area(points)) <= 0:
        raise PlantSpecError(where, "polygon", "encloses no area (points are collinear)")
    return tuple(points)


def _check_polygon_in_plan(area: AreaSpec, site: SiteSpec, where: str) -> None:
    for x, y in area.polygon:
        if not (0 <= x <= site.plan_width and 0 <= y <= site.plan_height):
            raise PlantSpecError(
                where,
                "polygon",
                f"point ({x}, {y}) lies outside site {site.code}'s plan 0..{site.plan_width} × 0..{site.plan_height}",
            )


def _check_no_overlap(areas: Sequence[AreaSpec]) -> None:
    """Areas on one site may share a border but not overlap: each spot of the map has one risk colour."""
    for i, a in enumerate(areas):
        for j in range(i + 1, len(areas)):
            b = areas[j]
            if a.site == b.site and _polygons_overlap(a.polygon, b.polygon):
                raise PlantSpecError(f"areas[{j}] (code '{b.code}')", "polygon", f"overlaps area '{a.code}'")


def _polygons_overlap(p: Sequence[tuple[float, float]], q: Sequence[tuple[float, float]]) -> bool:
    """True when the interiors intersect; touching edges or corners do not count.

    Interiors meet when two edges cross properly, or when a probe point of one polygon (a vertex,
    an edge midpoint or the centroid) lies strictly inside the other; the probes catch containment
    and identical polygons, which have no proper crossings.
    """
    for a1, a2 in zip(p, [*p[1:], p[0]], strict=True):
        for b1, b2 in zip(q, [*q[1:], q[0]], strict=True):
            if _segments_cross(a1, a2, b1, b2):
                return True
    return any(_strictly_inside(pt, q) for pt in _probes(p)) or any(_strictly_inside(pt, p) for pt in _probes(q))


def _probes(p: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    mids = [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2) for a, b in zip(p, [*p[1:], p[0]], strict=True)]
    centroid = (sum(x for x, _ in p) / len(p), sum(y for _, y in p) / len(p))
    return [*p, *mids, centroid]


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


Point = tuple[float, float]


def _segments_cross(a1: Point, a2: Point, b1: Point, b2: Point) -> bool:
    d1, d2 = _cross(b1, b2, a1), _cross(b1, b2, a2)
    d3, d4 = _cross(a1, a2, b1), _cross(a1, a2, b2)
    return d1 * d2 < 0 and d3 * d4 < 0


def _strictly_inside(pt: tuple[float, float], poly: Sequence[tuple[float, float]]) -> bool:
    x, y = pt
    inside = False
    for (x1, y1), (x2, y2) in zip(poly, [*poly[1:], poly[0]], strict=True):
        if math.isclose(_cross((x1, y1), (x2, y2), pt), 0.0, abs_tol=1e-9) and (
            min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2)
        ):
            return False  # on the boundary
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _signed_area(p: Sequence[tuple[float, float]]) -> float:
    return 0.5 * sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(p, [*p[1:], p[0]], strict=True))


# ── small readers ────────────────────────────────────────────────────────────────────────────


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise PlantSpecError(where, None, f"missing [{key}] table")
    return value


def _entries(data: Mapping[str, Any], key: str, id_field: str) -> list[tuple[Mapping[str, Any], str]]:
    """The entries of an array of tables, each with a label like ``sensors[3] (tag 'GT-101')``."""
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise PlantSpecError(key, None, f"missing; give at least one [[{key}]] entry")
    out = []
    for i, entry in enumerate(value):
        label = f"{key}[{i}]"
        if not isinstance(entry, Mapping):
            raise PlantSpecError(label, None, "must be a table")
        ident = entry.get(id_field)
        out.append((entry, f"{label} ({id_field} '{ident}')" if isinstance(ident, str) else label))
    return out


def _no_unknown_keys(e: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(e) - allowed)
    if unknown:
        raise PlantSpecError(where, unknown[0], f"unknown field; allowed fields are {', '.join(sorted(allowed))}")


def _text(e: Mapping[str, Any], key: str, where: str) -> str:
    value = e.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PlantSpecError(where, key, "missing or empty text")
    return value


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _number(e: Mapping[str, Any], key: str, where: str) -> float:
    value = e.get(key)
    if not _is_number(value):
        raise PlantSpecError(where, key, f"must be a finite number, got {value!r}")
    return float(value)


def _unique(values: Sequence[str], key: str, field: str) -> None:
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            raise PlantSpecError(f"{key}[{i}] ({field} '{v}')", field, f"duplicate of {key}[{seen[v]}]")
        seen[v] = i


def _references(pairs: Sequence[tuple[str, str]], known: set[str], key: str, id_field: str, field: str) -> None:
    for i, (ident, v) in enumerate(pairs):
        if v not in known:
            raise PlantSpecError(
                f"{key}[{i}] ({id_field} '{ident}')",
                field,
                f"refers to unknown {field} {v!r} (known: {', '.join(sorted(known))})",
            )

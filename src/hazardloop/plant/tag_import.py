"""Import of the sensor list (位号表) from CSV or Excel, all rows or none.

Plants keep tag lists in Excel with Chinese headers and CSVs saved by Excel in GBK; both are
read. Every bad row is reported with its row number and field, and nothing is stored unless
every row is good, so a half-imported list never leaves the plant model inconsistent.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hazardloop.auth import audit, authz
from hazardloop.auth.models import User
from hazardloop.errors import ImportRejected, InvalidInput, RowError
from hazardloop.plant.models import Area, Equipment, ImportReport, Sensor, SensorFields
from hazardloop.plant.reference import import_column_aliases, sensor_kinds
from hazardloop.plant.rules import sensor_problems

REQUIRED_FIELDS = ("tag", "kind", "unit", "area", "range_min", "range_max")
MAX_ROWS = 50_000


def _decode(content: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("file", "the file is neither UTF-8 nor GBK text")


def _csv_rows(content: bytes) -> list[list[str]]:
    text = _decode(content)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]


def _excel_rows(content: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a corrupt file; all mean the same to a user
        raise InvalidInput("file", f"not a readable Excel .xlsx file ({type(exc).__name__})") from exc
    sheet = workbook.worksheets[0]
    rows = []
    for values in sheet.iter_rows(values_only=True):
        cells = ["" if v is None else str(v) for v in values]
        if any(c.strip() for c in cells):
            rows.append(cells)
    workbook.close()
    return rows


def read_rows(content: bytes, filename: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header fields and (row number, field → text) for each data row."""
    is_excel = filename.lower().endswith((".xlsx", ".xlsm")) or content[:2] == b"PK"
    rows = _excel_rows(content) if is_excel else _csv_rows(content)
    if not rows:
        raise InvalidInput("file", "the file is empty")
    aliases = import_column_aliases()
    header = [aliases.get(cell.strip().lower(), "") for cell in rows[0]]
    missing = [f for f in REQUIRED_FIELDS if f not in header]
    if missing:
        raise InvalidInput("header", f"missing column(s): {', '.join(missing)} (found: {', '.join(rows[0])})")
    if len(rows) - 1 > MAX_ROWS:
        raise InvalidInput("file", f"{len(rows) - 1} rows; at most {MAX_ROWS} per import")
    records = []
    for number, cells in enumerate(rows[1:], start=2):
        record = {field: cells[i].strip() for i, field in enumerate(header) if field and i < len(cells)}
        records.append((number, record))
    return header, records


def _kind_code(text: str) -> str:
    for kind in sensor_kinds().values():
        if text in (kind.kind, kind.name_zh, kind.name_en) or text.lower() == kind.name_en.lower():
            return kind.kind
    return text


def _number(text: str) -> float | None:
    if text == "":
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


NON_NULL_FIELDS = ("deadband", "on_delay_s", "off_delay_s")
NUMERIC_FIELDS = (
    "range_min",
    "range_max",
    "ll",
    "l",
    "h",
    "hh",
    "deadband",
    "on_delay_s",
    "off_delay_s",
    "sample_period_s",
)


def _parse_row(
    number: int, record: dict[str, str], areas: dict[str, Area], equipment: dict[str, Equipment]
) -> tuple[dict[str, Any], list[RowError]]:
    errors: list[RowError] = []
    values: dict[str, Any] = {
        "name": record.get("name", ""),
        "kind": _kind_code(record.get("kind", "")),
        "unit": record.get("unit", ""),
    }
    for field in NUMERIC_FIELDS:
        if field not in record:
            continue
        try:
            parsed = _number(record[field])
        except ValueError:
            errors.append(RowError(number, field, f"'{record[field]}' is not a number"))
            continue
        if parsed is not None or field not in NON_NULL_FIELDS:
            values[field] = parsed  # a blank limit cell means: no such alarm
    for field in REQUIRED_FIELDS:
        if not record.get(field):
            errors.append(RowError(number, field, "is empty"))
    area = areas.get(record.get("area", ""))
    if record.get("area") and area is None:
        errors.append(RowError(number, "area", f"unknown area code '{record['area']}'"))
    values["area_id"] = area.id if area else None
    values["equipment_id"] = None
    if record.get("equipment"):
        item = equipment.get(record["equipment"])
        if item is None:
            errors.append(RowError(number, "equipment", f"unknown equipment code '{record['equipment']}'"))
        elif area is not None and item.area_id != area.id:
            errors.append(RowError(number, "equipment", f"equipment {item.code} is not in area {area.code}"))
        else:
            values["equipment_id"] = item.id
    if errors:
        return values, errors
    try:
        SensorFields(**{k: v for k, v in values.items() if k not in ("area_id", "equipment_id")})
    except ValidationError as exc:
        for problem in exc.errors():
            errors.append(RowError(number, ".".join(map(str, problem["loc"])), problem["msg"]))
    errors.extend(RowError(number, field, message) for field, message in sensor_problems(values))
    return values, errors


def import_sensors(db: Session, *, actor: User, content: bytes, filename: str) -> ImportReport:
    """Create or update sensors from a tag list; raise ImportRejected listing every bad row."""
    authz.require(actor, "sensor.import")
    _, records = read_rows(content, filename)
    areas = {a.code: a for a in db.scalars(select(Area)) if authz.can_see_area(actor, a.id)}
    equipment = {e.code: e for e in db.scalars(select(Equipment)) if e.area_id in {a.id for a in areas.values()}}
    existing = {s.tag: s for s in db.scalars(select(Sensor))}
    errors: list[RowError] = []
    parsed: list[tuple[str, dict[str, Any]]] = []
    first_row_of: dict[str, int] = {}
    for number, record in records:
        tag = record.get("tag", "")
        values, row_errors = _parse_row(number, record, areas, equipment)
        if tag and tag in first_row_of:
            row_errors.append(RowError(number, "tag", f"tag '{tag}' appears again (first on row {first_row_of[tag]})"))
        first_row_of.setdefault(tag, number)
        if tag in existing and not authz.can_see_area(actor, existing[tag].area_id):
            row_errors.append(RowError(number, "tag", f"tag '{tag}' belongs to an area you were not granted"))
        errors.extend(row_errors)
        parsed.append((tag, values))
    if errors:
        raise ImportRejected(errors)
    created = updated = 0
    for tag, values in parsed:
        sensor = existing.get(tag)
        before = audit.snapshot(sensor) if sensor else None
        if sensor is None:
            sensor = Sensor(tag=tag)
            db.add(sensor)
            created += 1
        else:
            updated += 1
        for key, value in values.items():
            setattr(sensor, key, value)
        db.flush()
        audit.record(
            db,
            actor=actor,
            action="sensors.import",
            target_type="sensors",
            target_id=sensor.id,
            before=before,
            after=audit.snapshot(sensor),
            note=filename,
        )
    db.commit()
    return ImportReport(created=created, updated=updated, tags=[t for t, _ in parsed])

"""台账: the hazard register as the Excel (and CSV) ledger Chinese enterprises keep, out and back in.

Export writes the 隐患排查治理台账 layout people already print and file: a title row, Chinese headers,
Chinese names for states/levels/categories, times in Beijing time. Import reads such a ledger
(ours or an existing one kept by hand), maps its headers through hazards/data/ledger_columns.csv,
checks every row, and stores all rows in one transaction or none, so a half-imported ledger never
sits beside the real register.

Decisions a user will notice (also in the module's tests):
- Times are written and read in Beijing time (UTC+8, no daylight saving); a time without a zone
  is Beijing time; precision is one second. A 整改期限 given as a date only means the end of that day.
- Text that starts with = + - @ (or a tab/CR, or an apostrophe) is written with a leading apostrophe
  so Excel/WPS never run it as a formula (OWASP "CSV injection"); import removes exactly that one
  apostrophe, so the text comes back as it was.
- 整改责任人 / 验收人 are matched by username, then by display name, then by "name(username)". A name
  with no account (someone who left, a contractor) is not an error: it is kept on the hazard's
  import event and shown again by the next export; the report lists it as a warning. A name that
  matches several accounts is a row error (write the username).
- A blank 状态 means 已销号 when a 销号时间 is given, else 已上报. 是否超期 / 超期天数 / 序号 are derived
  and ignored on import. Imported hazards are not checked for possible duplicates (that runs on
  new reports, not on history).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from copy import copy
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from hazardloop.auth import audit, authz
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.errors import ImportRejected, InvalidInput, RowError
from hazardloop.hazards import service
from hazardloop.hazards.models import (
    OPEN_STATES,
    Hazard,
    HazardCounter,
    HazardEvent,
    HazardSource,
    HazardState,
)
from hazardloop.hazards.reference import accident_types, categories, legal_level, policy
from hazardloop.plant import service as plant
from hazardloop.plant.models import Area
from hazardloop.plant.tag_import import _decode

# China has kept UTC+8 all year since 1991, so a fixed offset is exact and needs no tz database.
BEIJING = dt.timezone(dt.timedelta(hours=8), "北京时间")
TITLE = "隐患排查治理台账"
MAX_ROWS = 100_000
HEADER_SCAN_ROWS = 20  # a ledger's title block is a few rows; the header lies within these
IMPORT_EVENT = "import"
YES, NO = "是", "否"

# The one place where states and sources get their ledger names (the names in 16号令-era ledgers).
STATE_NAMES: dict[HazardState, str] = {
    HazardState.DRAFT: "草稿",
    HazardState.REPORTED: "已上报",
    HazardState.REJECTED: "已驳回",
    HazardState.CONFIRMED: "已确认",
    HazardState.PLAN_PENDING: "治理方案待审批",
    HazardState.ASSIGNED: "待整改",
    HazardState.RECTIFYING: "整改中",
    HazardState.EXTENSION_REQUESTED: "延期审批中",
    HazardState.PENDING_ACCEPTANCE: "待验收",
    HazardState.CLOSED: "已销号",
    HazardState.REOPENED: "重新打开",
    HazardState.CANCELLED: "已撤销",
}
STATE_ALIASES: dict[str, HazardState] = {
    "待审核": HazardState.REPORTED,
    "已下发": HazardState.ASSIGNED,
    "未整改": HazardState.ASSIGNED,
    "已整改": HazardState.PENDING_ACCEPTANCE,
    "已验收": HazardState.CLOSED,
    "已闭环": HazardState.CLOSED,
    "已完成": HazardState.CLOSED,
    "无效": HazardState.REJECTED,
}
SOURCE_NAMES: dict[HazardSource, str] = {
    HazardSource.INSPECTION: "隐患排查",
    HazardSource.REPORT: "员工上报",
    HazardSource.SENSOR_ALARM: "IoT告警",
    HazardSource.CAMERA: "AI视频识别",
    HazardSource.AI_DRAFT: "AI文本识别",
    HazardSource.EXTERNAL_CHECK: "上级检查",
}
SOURCE_ALIASES: dict[str, HazardSource] = {
    **{
        name: HazardSource.INSPECTION
        for name in (
            "日常排查",
            "综合排查",
            "专项排查",
            "季节性排查",
            "节假日排查",
            "事故类比排查",
            "复工复产前排查",
            "日常检查",
            "专项检查",
            "巡检",
        )
    },
    **{name: HazardSource.REPORT for name in ("随手拍", "群众举报", "员工举报", "自查")},
    **{name: HazardSource.EXTERNAL_CHECK for name in ("政府检查", "监管检查", "外聘专家诊断")},
}
TRUE_WORDS = frozenset({"是", "y", "yes", "true", "1", "√", "✓", "有"})
FALSE_WORDS = frozenset({"否", "n", "no", "false", "0", "", "×", "无"})

# OWASP CSV injection: these leads make spreadsheets evaluate a cell; the apostrophe escapes itself.
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r", "'")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d")
_TIME_FORMATS = ("%H:%M:%S", "%H:%M", "%H时%M分", "%H:%M:%S.%f")


# ---------------------------------------------------------------- columns (data/ledger_columns.csv)


@dataclass(frozen=True)
class Column:
    field: str
    header: str  # the Chinese header the export writes
    kind: str  # text | datetime | number | int | bool | area | area_code | level | ... | derived
    width: int
    aliases: tuple[str, ...]


@lru_cache(maxsize=1)
def columns() -> tuple[Column, ...]:
    """The ledger's columns in export order, with the other headers each one is known by."""
    text = (resources.files("hazardloop.hazards") / "data" / "ledger_columns.csv").read_text("utf-8")
    return tuple(
        Column(r["field"], r["header"], r["kind"], int(r["width"]), tuple(a for a in r["aliases"].split("|") if a))
        for r in csv.DictReader(io.StringIO(text))
    )


def _norm(header: str) -> str:
    """Headers differ in width of brackets, spaces, line breaks and required-marks (*); not in meaning."""
    text = unicodedata.normalize("NFKC", header)
    return re.sub(r"[\s*:：]", "", text).lower()


@lru_cache(maxsize=1)
def _header_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for column in columns():
        for name in (column.field, column.header, *column.aliases):
            aliases.setdefault(_norm(name), column.field)
    return aliases


REQUIRED = ("description", "found_at")  # and an area, by name or code


class LedgerImportReport(BaseModel):
    created: int
    numbers: list[str]
    warnings: list[str] = []


# ---------------------------------------------------------------- text safety


def neutralise(text: str) -> str:
    """Text as it may stand in a spreadsheet cell without being run as a formula."""
    return "'" + text if text.startswith(_FORMULA_LEADS) else text


def restore(text: str) -> str:
    """The inverse of neutralise: drop the one apostrophe that it added, and only that."""
    return text[1:] if len(text) > 1 and text[0] == "'" and text[1] in "=+-@\t\r'" else text


# ---------------------------------------------------------------- export


@dataclass
class _Names:
    """What the ledger shows instead of ids: area names, people's names, names kept from an import."""

    areas: dict[int, Area]
    people: dict[int, str]
    kept: dict[int, dict[str, str]] = field(default_factory=dict)


def _person_labels(db: Session) -> dict[int, str]:
    rows = db.execute(select(User.id, User.username, User.display_name)).all()
    shared = Counter(r.display_name for r in rows)
    # a display name two accounts share would import ambiguously, so it carries the username then
    return {r.id: r.display_name if shared[r.display_name] == 1 else f"{r.display_name}({r.username})" for r in rows}


def _kept_names(db: Session, hazard_ids: list[int]) -> dict[int, dict[str, str]]:
    kept: dict[int, dict[str, str]] = {}
    for start in range(0, len(hazard_ids), 500):
        chunk = hazard_ids[start : start + 500]
        query = select(HazardEvent.hazard_id, HazardEvent.data).where(
            HazardEvent.kind == IMPORT_EVENT, HazardEvent.hazard_id.in_(chunk)
        )
        for hazard_id, data in db.execute(query):
            if data and data.get("names"):
                kept[hazard_id] = data["names"]
    return kept


def _local(value: dt.datetime | None) -> dt.datetime | None:
    """A naive Beijing time to the second, as Excel holds it (a sheet has no time zones)."""
    return None if value is None else value.astimezone(BEIJING).replace(tzinfo=None, microsecond=0)


def _coded_name(table: dict[str, Any], code: str | None) -> str:
    if code is None:
        return ""
    item = table.get(code)
    return item.name_zh if item else code


def _values(h: Hazard, names: _Names, now: dt.datetime) -> dict[str, Any]:
    """One hazard as the ledger shows it: field → text, number, bool or naive Beijing datetime."""
    area = names.areas.get(h.area_id)
    kept = names.kept.get(h.id, {})
    state = HazardState(h.state)

    def person(user_id: int | None, key: str) -> str:
        return names.people.get(user_id, "") if user_id is not None else kept.get(key, "")

    return {
        "number": h.number,
        "area": area.name_zh if area else "",
        "area_code": area.code if area else "",
        "location": h.location,
        "source": SOURCE_NAMES.get(HazardSource(h.source), h.source),
        "description": h.description,
        "found_at": _local(h.found_at),
        "reporter_name": h.reporter_name,
        "level": _coded_name(policy().levels, h.level),
        "category": _coded_name(categories(), h.category),
        "accident_type": _coded_name(accident_types(), h.accident_type),
        "judgement_basis": h.judgement_basis,
        "responsible_department": h.responsible_department,
        "responsible_person": person(h.responsible_person_id, "responsible_person"),
        "measures": h.measures,
        "interim_measures": h.interim_measures,
        "deadline": _local(h.deadline),
        "funds_budget": h.funds_budget,
        "funds_actual": h.funds_actual,
        "state": STATE_NAMES[state],
        "overdue": h.is_overdue(now),
        "overdue_days": h.days_overdue(now),
        "completed_at": _local(h.completed_at),
        "completion_note": h.completion_note,
        "accepted_by": person(h.accepted_by_id, "accepted_by"),
        "accepted_at": _local(h.accepted_at),
        "acceptance_opinion": h.acceptance_opinion,
        "closed_at": _local(h.closed_at),
        "fast_path": h.fast_path,
        "reopen_count": h.reopen_count,
        "production_suspended": h.production_suspended,
        "supervised": h.supervised,
        "supervising_unit": h.supervising_unit,
        "source_ref": h.source_ref,
        "rejected_reason": h.rejected_reason,
        "root_cause": h.root_cause,
        "lessons": h.lessons,
    }


def _selected(
    db: Session, actor: User, filters: service.HazardFilter | None, now: dt.datetime
) -> tuple[list[Hazard], _Names]:
    authz.require(actor, "hazard.export")
    hazards, _ = service.list_for_user(db, actor=actor, filters=filters, limit=None, now=now)
    hazards.reverse()  # a ledger reads oldest first; the list shows newest first
    areas = {a.id: a for a in plant.list_areas(db, actor=actor)}
    people = _person_labels(db)
    missing = [h.id for h in hazards if h.responsible_person_id is None or h.accepted_by_id is None]
    return hazards, _Names(areas, people, _kept_names(db, missing))


def _cell_text(value: Any) -> str:
    """A value as CSV text that import reads back to the same value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, int):
        return str(value)
    return neutralise(str(value))


def export_csv(
    db: Session, *, actor: User, filters: service.HazardFilter | None = None, now: dt.datetime | None = None
) -> bytes:
    """The filtered ledger as CSV, UTF-8 with a BOM: without it Excel on Chinese Windows reads GBK."""
    now = now or utcnow()
    hazards, names = _selected(db, actor, filters, now)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.header for c in columns()])
    for seq, hazard in enumerate(hazards, start=1):
        values = _values(hazard, names, now) | {"seq": seq}
        writer.writerow([_cell_text(values.get(c.field)) for c in columns()])
    return out.getvalue().encode("utf-8-sig")


def _xlsx_styles() -> dict[str, Any]:
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

    thin = Side(style="thin", color="999999")
    return {
        "title": Font(bold=True, size=14),
        "header_font": Font(bold=True),
        "header_fill": PatternFill("solid", fgColor="DDEBF7"),
        "header_align": Alignment(horizontal="center", vertical="center", wrap_text=True),
        "border": Border(left=thin, right=thin, top=thin, bottom=thin),
        "wrap": Alignment(vertical="top", wrap_text=True),
        "top": Alignment(vertical="top"),
    }


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, str):
        return neutralise(ILLEGAL_CHARACTERS_RE.sub("", value))  # control characters are not allowed in XML
    return value


def _column_styles(ws: Any, styles: dict[str, Any]) -> list[Any]:
    """One style per column, built once: setting fonts and borders cell by cell costs most of an export."""
    from openpyxl.cell import WriteOnlyCell

    templates = []
    for column in columns():
        cell = WriteOnlyCell(ws)
        cell.border = styles["border"]
        if column.kind == "datetime":
            cell.number_format = "yyyy-mm-dd hh:mm"
            cell.alignment = styles["top"]
        else:
            cell.alignment = styles["wrap"] if column.width >= 14 else styles["top"]
        templates.append(cell._style)  # the style's index array; copied, never rebuilt per cell
    return templates


def _data_row(ws: Any, values: dict[str, Any], templates: list[Any]) -> list[Any]:
    from openpyxl.cell import WriteOnlyCell

    row: list[Any] = []
    for column, template in zip(columns(), templates, strict=True):
        cell = WriteOnlyCell(ws, _xlsx_value(values.get(column.field)))
        cell._style = copy(template)
        row.append(cell)
    return row


def _statistics_sheet(wb: Any, hazards: list[Hazard], styles: dict[str, Any], now: dt.datetime) -> None:
    """统计: hazards by state and level, the table a monthly safety meeting asks for first."""
    from openpyxl.cell import WriteOnlyCell

    ws = wb.create_sheet("统计")
    ws.column_dimensions["A"].width = 16
    levels = list(policy().levels.values())
    counts = Counter((h.state, h.level if h.level in policy().levels else None) for h in hazards)
    header = ["状态", *(lv.name_zh for lv in levels), "未定级", "合计"]
    cells = []
    for text in header:
        cell = WriteOnlyCell(ws, text)
        cell.font, cell.fill, cell.border = styles["header_font"], styles["header_fill"], styles["border"]
        cells.append(cell)
    ws.append(cells)
    for state in HazardState:
        row = [counts[(state.value, lv.code)] for lv in levels] + [counts[(state.value, None)]]
        ws.append([STATE_NAMES[state], *row, sum(row)])
    totals = [sum(counts[(s.value, lv.code)] for s in HazardState) for lv in levels]
    totals.append(sum(counts[(s.value, None)] for s in HazardState))
    ws.append(["合计", *totals, len(hazards)])
    ws.append([])
    ws.append(["超期未整改", sum(1 for h in hazards if h.is_overdue(now))])
    ws.append(["重大隐患", sum(1 for h in hazards if legal_level(h.level) == "major")])


def export_xlsx(
    db: Session, *, actor: User, filters: service.HazardFilter | None = None, now: dt.datetime | None = None
) -> bytes:
    """The filtered ledger as the 隐患排查治理台账 workbook (write-only mode: 10k rows in seconds)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    now = now or utcnow()
    hazards, names = _selected(db, actor, filters, now)
    styles = _xlsx_styles()
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(TITLE)
    last = get_column_letter(len(columns()))
    for index, column in enumerate(columns(), start=1):
        ws.column_dimensions[get_column_letter(index)].width = column.width
    ws.freeze_panes = "C3"  # header and 序号/隐患编号 stay in view
    enterprise = plant.current_enterprise(db)
    stamp = now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    title = WriteOnlyCell(ws, f"{enterprise.name_zh if enterprise else ''}{TITLE}（导出时间：{stamp} 北京时间）")
    title.font = styles["title"]
    ws.append([title])
    ws.merged_cells.add(f"A1:{last}1")
    header = []
    for column in columns():
        cell = WriteOnlyCell(ws, column.header)
        cell.font, cell.fill = styles["header_font"], styles["header_fill"]
        cell.alignment, cell.border = styles["header_align"], styles["border"]
        header.append(cell)
    ws.append(header)
    templates = _column_styles(ws, styles)
    for seq, hazard in enumerate(hazards, start=1):
        ws.append(_data_row(ws, _values(hazard, names, now) | {"seq": seq}, templates))
    ws.auto_filter.ref = f"A2:{last}{len(hazards) + 2}"
    _statistics_sheet(wb, hazards, styles, now)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# ---------------------------------------------------------------- import: reading the file


@dataclass
class _Sheet:
    fields: list[str | None]  # per column: our field, or None when the column is not ours
    headers: list[str]
    rows: list[tuple[int, list[Any]]]  # (row number as the user sees it, cell values)


def _aliases(mapping: dict[str, str] | None) -> dict[str, str]:
    known = {c.field for c in columns()}
    aliases = dict(_header_aliases())
    for header, target in (mapping or {}).items():
        if target not in known:
            raise InvalidInput("mapping", f"'{target}' is not a ledger field; known: {', '.join(sorted(known))}")
        aliases[_norm(header)] = target
    return aliases


def _header_fields(cells: list[Any], aliases: dict[str, str]) -> list[str | None]:
    return [aliases.get(_norm(str(c))) if c is not None else None for c in cells]


def _find_header(grid: list[list[Any]], aliases: dict[str, str]) -> int:
    """The row among the first few that names the most ledger fields (a title block may sit above)."""
    best, best_count = -1, 0
    for index, cells in enumerate(grid[:HEADER_SCAN_ROWS]):
        count = len({f for f in _header_fields(cells, aliases) if f})
        if count > best_count:
            best, best_count = index, count
    return best


def _sheet(grid: list[list[Any]], aliases: dict[str, str], numbers: list[int]) -> _Sheet:
    at = _find_header(grid, aliases)
    if at < 0:
        raise InvalidInput("header", "no header row with ledger columns (隐患描述, 发现时间, 所属区域 …) was found")
    fields = _header_fields(grid[at], aliases)
    seen: dict[str, int] = {}
    for index, name in enumerate(fields):
        if name is None:
            continue
        if name in seen:  # two columns for one field: keep the first, as a person reading left to right would
            fields[index] = None
        seen.setdefault(name, index)
    missing = [f for f in REQUIRED if f not in seen]
    if "area" not in seen and "area_code" not in seen:
        missing.append("area")
    if missing:
        headers = {c.field: c.header for c in columns()}
        found = ", ".join(str(c) for c in grid[at] if c not in (None, ""))
        raise InvalidInput("header", f"missing column(s): {', '.join(headers[m] for m in missing)} (found: {found})")
    rows = [(numbers[i], cells) for i, cells in enumerate(grid) if i > at and not all(_blank(c) for c in cells)]
    if len(rows) > MAX_ROWS:
        raise InvalidInput("file", f"{len(rows)} rows; at most {MAX_ROWS} per import")
    return _Sheet(fields, [str(c or "") for c in grid[at]], rows)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read_xlsx(content: bytes, aliases: dict[str, str]) -> _Sheet:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a corrupt file; all mean the same to a user
        raise InvalidInput("file", f"not a readable Excel .xlsx file ({type(exc).__name__})") from exc
    try:
        # read-only mode yields every row from 1, empty ones included, so positions are the sheet's rows
        grid = [list(values) for values in workbook.worksheets[0].iter_rows(values_only=True)]
    finally:
        workbook.close()
    return _sheet(grid, aliases, list(range(1, len(grid) + 1)))


def _read_csv(content: bytes, aliases: dict[str, str]) -> _Sheet:
    """CSV in UTF-8 or GBK, separated by , ; or tab: the separator is the one whose header names most fields.

    (csv.Sniffer guesses from quote patterns and is easily misled by Chinese text full of ；and ，.)
    """
    text = _decode(content)
    best: tuple[int, str] = (-1, ",")
    for delimiter in (",", ";", "\t"):
        head = list(csv.reader(io.StringIO(text[:65536]), delimiter=delimiter))[:HEADER_SCAN_ROWS]
        at = _find_header(head, aliases)
        count = len({f for f in _header_fields(head[at], aliases) if f}) if at >= 0 else 0
        best = max(best, (count, delimiter), key=lambda b: b[0])
    try:
        grid: list[list[Any]] = list(csv.reader(io.StringIO(text), delimiter=best[1]))
    except csv.Error as exc:
        raise InvalidInput("file", f"not a readable CSV file ({exc})") from exc
    # Excel shows one record per row, even when a quoted cell holds line breaks
    return _sheet(grid, aliases, list(range(1, len(grid) + 1)))


def _read(content: bytes, filename: str, aliases: dict[str, str]) -> _Sheet:
    if not content:
        raise InvalidInput("file", "the file is empty")
    if filename.lower().endswith((".xlsx", ".xlsm")) or content[:2] == b"PK":
        return _read_xlsx(content, aliases)
    return _read_csv(content, aliases)


# ---------------------------------------------------------------- import: checking each row


class _Bad(ValueError):
    """One cell that cannot be read; becomes a RowError with the row number."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat(sep=" ")
    return restore(str(value).replace("\r\n", "\n").strip())


def _aware(value: dt.datetime) -> dt.datetime:
    return (value if value.tzinfo else value.replace(tzinfo=BEIJING)).astimezone(dt.UTC)


def _parse_datetime(value: Any, *, end_of_day: bool = False) -> dt.datetime | None:
    if _blank(value):
        return None
    if isinstance(value, dt.datetime):  # an Excel date cell; round off the serial number's float noise
        return _aware((value + dt.timedelta(microseconds=500_000)).replace(microsecond=0))
    if isinstance(value, dt.date):
        value = value.isoformat()
    if isinstance(value, int | float):
        raise _Bad(f"'{value}' is a number, not a date")
    text = unicodedata.normalize("NFKC", str(value)).strip()
    try:
        return _aware(dt.datetime.fromisoformat(text))
    except ValueError:
        pass
    date_part, _, time_part = text.partition(" ")
    for date_format in _DATE_FORMATS:
        try:
            day = dt.datetime.strptime(date_part, date_format)
        except ValueError:
            continue
        if not time_part:
            return _aware(day.replace(hour=23, minute=59, second=59) if end_of_day else day)
        for time_format in _TIME_FORMATS:
            try:
                moment = dt.datetime.strptime(time_part.strip(), time_format)
            except ValueError:
                continue
            return _aware(day.replace(hour=moment.hour, minute=moment.minute, second=moment.second))
    raise _Bad(f"'{text}' is not a date/time (write e.g. 2026-05-01 08:30 or 2026/5/1)")


def _parse_number(value: Any) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        text = unicodedata.normalize("NFKC", str(value)).strip().replace(",", "").replace("元", "")
        factor = 10_000.0 if text.endswith("万") else 1.0
        try:
            number = float(text.removesuffix("万")) * factor
        except ValueError:
            raise _Bad(f"'{value}' is not a number") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise _Bad(f"'{value}' is not an amount of zero or more")
    return number


def _parse_int(value: Any) -> int:
    number = _parse_number(value)
    if number is None:
        return 0
    if not number.is_integer():
        raise _Bad(f"'{value}' is not a whole number")
    return int(number)


def _parse_bool(value: Any) -> bool:
    text = _text(value).lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise _Bad(f"'{text}' is neither 是 nor 否")


def _by_code_or_name(table: dict[str, Any], what: str) -> Callable[[Any], str | None]:
    index = {}
    for code, item in table.items():
        for key in (code, item.name_zh, item.name_en):
            index.setdefault(_norm(key), code)

    def parse(value: Any) -> str | None:
        text = _text(value)
        if not text:
            return None
        code = index.get(_norm(text))
        if code is None:
            raise _Bad(f"unknown {what} '{text}'")
        return code

    return parse


def _state_parser() -> Callable[[Any], HazardState | None]:
    index = {_norm(s.value): s for s in HazardState}
    index |= {_norm(name): s for s, name in STATE_NAMES.items()}
    index |= {_norm(name): s for name, s in STATE_ALIASES.items()}

    def parse(value: Any) -> HazardState | None:
        text = _text(value)
        if not text:
            return None
        if _norm(text) not in index:
            raise _Bad(f"unknown state '{text}'; use one of {', '.join(STATE_NAMES.values())}")
        return index[_norm(text)]

    return parse


def _source_parser() -> Callable[[Any], HazardSource]:
    index = {_norm(s.value): s for s in HazardSource}
    index |= {_norm(name): s for s, name in SOURCE_NAMES.items()}
    index |= {_norm(name): s for name, s in SOURCE_ALIASES.items()}

    def parse(value: Any) -> HazardSource:
        text = _text(value)
        if not text:
            return HazardSource.INSPECTION  # a ledger row is, by default, a finding of 隐患排查
        if _norm(text) not in index:
            raise _Bad(f"unknown source '{text}'; use one of {', '.join(SOURCE_NAMES.values())}")
        return index[_norm(text)]

    return parse


@dataclass
class _People:
    """Resolves a name in the ledger to an account: username, then unique display name, then name(username)."""

    by_username: dict[str, User]
    by_display: dict[str, list[User]]

    @classmethod
    def load(cls, db: Session) -> _People:
        users = list(db.scalars(select(User).where(User.is_machine.is_(False))))
        by_display: dict[str, list[User]] = {}
        for user in users:
            by_display.setdefault(user.display_name, []).append(user)
        return cls({u.username: u for u in users}, by_display)

    def find(self, text: str) -> User | None:
        """The account, or None for a name with no account; _Bad when the name fits several."""
        if text in self.by_username:
            return self.by_username[text]
        matches = self.by_display.get(text, [])
        if len(matches) > 1:
            raise _Bad(
                f"'{text}' fits {len(matches)} accounts ({', '.join(u.username for u in matches)}); write the username"
            )
        if matches:
            return matches[0]
        tagged = re.fullmatch(r"(.*)[(（]([^()（）]+)[)）]", text)
        return self.by_username.get(tagged.group(2)) if tagged else None


@dataclass
class _Context:
    """Everything a row is checked against, loaded once for the whole file."""

    areas_by_code: dict[str, Area]
    areas_by_name: dict[str, list[Area]]
    people: _People
    taken: set[str]
    now: dt.datetime
    parsers: dict[str, Callable[[Any], Any]]


def _context(db: Session, actor: User, now: dt.datetime) -> _Context:
    areas = plant.list_areas(db, actor=actor)  # only the areas the actor was granted
    by_name: dict[str, list[Area]] = {}
    for area in areas:
        by_name.setdefault(area.name_zh, []).append(area)
    return _Context(
        areas_by_code={a.code: a for a in areas},
        areas_by_name=by_name,
        people=_People.load(db),
        taken=set(db.scalars(select(Hazard.number))),
        now=now,
        parsers={
            "level": _by_code_or_name(policy().levels, "level"),
            "category": _by_code_or_name(categories(), "category"),
            "accident_type": _by_code_or_name(accident_types(), "accident type (GB 6441)"),
            "state": _state_parser(),
            "source": _source_parser(),
        },
    )


_TEXT_LIMITS = {
    "number": 32,
    "location": 255,
    "reporter_name": 128,
    "responsible_department": 128,
    "supervising_unit": 128,
    "source_ref": 128,
    "description": 4000,
}


@dataclass
class _Row:
    number: int
    values: dict[str, Any]
    kept_names: dict[str, str]


def _area(record: dict[str, Any], ctx: _Context) -> Area:
    code = _text(record.get("area_code"))
    if code:
        if code not in ctx.areas_by_code:
            raise _Bad(f"no area with code '{code}' among the areas you were granted")
        return ctx.areas_by_code[code]
    text = _text(record.get("area"))
    if not text:
        raise _Bad("is empty")
    if text in ctx.areas_by_code:
        return ctx.areas_by_code[text]
    matches = ctx.areas_by_name.get(text, [])
    if len(matches) > 1:
        raise _Bad(f"'{text}' names {len(matches)} areas; give the area code ({', '.join(a.code for a in matches)})")
    if not matches:
        raise _Bad(f"no area '{text}' among the areas you were granted")
    return matches[0]


def _cell(field_name: str, kind: str, value: Any, ctx: _Context) -> Any:
    if kind == "text":
        text = _text(value)
        limit = _TEXT_LIMITS.get(field_name)
        if limit and len(text) > limit:
            raise _Bad(f"longer than {limit} characters")
        return text
    if kind == "datetime":
        return _parse_datetime(value, end_of_day=field_name == "deadline")
    if kind == "number":
        return _parse_number(value)
    if kind == "int":
        return _parse_int(value)
    if kind == "bool":
        return _parse_bool(value)
    if kind in ctx.parsers:
        return ctx.parsers[kind](value)
    return _text(value)  # person: resolved afterwards, together with the area


def _check_row(number: int, record: dict[str, Any], ctx: _Context) -> tuple[_Row, list[RowError]]:
    errors: list[RowError] = []
    values: dict[str, Any] = {}
    kinds = {c.field: c.kind for c in columns()}
    for name, raw in record.items():
        kind = kinds[name]
        if kind in ("derived", "area", "area_code"):
            continue
        try:
            values[name] = _cell(name, kind, raw, ctx)
        except _Bad as exc:
            errors.append(RowError(number, name, str(exc)))
    try:
        values["area_id"] = _area(record, ctx).id
    except _Bad as exc:
        errors.append(RowError(number, "area_code" if _text(record.get("area_code")) else "area", str(exc)))
    for name in REQUIRED:
        if not values.get(name) and not any(e.field == name for e in errors):
            errors.append(RowError(number, name, "is empty"))
    description = values.get("description") or ""
    if description and len(description) < 2:
        errors.append(RowError(number, "description", "needs at least 2 characters"))
    found_at = values.get("found_at")
    if found_at and found_at > ctx.now + dt.timedelta(minutes=5):
        errors.append(RowError(number, "found_at", "lies in the future"))
    kept: dict[str, str] = {}
    if not errors:
        kept = _resolve_people(number, values, ctx, errors)
    return _Row(number, values, kept), errors


def _resolve_people(number: int, values: dict[str, Any], ctx: _Context, errors: list[RowError]) -> dict[str, str]:
    kept: dict[str, str] = {}
    state = values.get("state") or (HazardState.CLOSED if values.get("closed_at") else HazardState.REPORTED)
    values["state"] = state
    for name in ("responsible_person", "accepted_by"):
        text = values.pop(name, "")
        values[f"{name}_id"] = None
        if not text:
            continue
        try:
            user = ctx.people.find(text)
        except _Bad as exc:
            errors.append(RowError(number, name, str(exc)))
            continue
        if user is None:
            kept[name] = text
            continue
        if name == "responsible_person" and state in OPEN_STATES and not authz.can_see_area(user, values["area_id"]):
            errors.append(RowError(number, name, f"{user.username} has no access to this area; grant it first"))
            continue
        values[f"{name}_id"] = user.id
    return kept


def _check_numbers(rows: list[_Row], ctx: _Context) -> list[RowError]:
    errors: list[RowError] = []
    first_row: dict[str, int] = {}
    for row in rows:
        number = row.values.get("number")
        if not number:
            continue
        if number in ctx.taken:
            errors.append(RowError(row.number, "number", f"{number} already exists; nothing is overwritten"))
        elif number in first_row:
            errors.append(RowError(row.number, "number", f"{number} appears again (first on row {first_row[number]})"))
        first_row.setdefault(number, row.number)
    return errors


# ---------------------------------------------------------------- import: storing


_NUMBER_PATTERN = re.compile(r"YH-(\d{4})-(\d+)")


def _advance_counters(db: Session, numbers: Iterable[str]) -> None:
    """Imported YH-<year>-<seq> numbers move the year's counter past them, so next_number never repeats one."""
    highest: dict[int, int] = {}
    for number in numbers:
        match = _NUMBER_PATTERN.fullmatch(number)
        if match:
            year, seq = int(match.group(1)), int(match.group(2))
            highest[year] = max(highest.get(year, 0), seq)
    for year, seq in highest.items():
        counter = db.execute(
            select(HazardCounter).where(HazardCounter.year == year).with_for_update()
        ).scalar_one_or_none()
        if counter is None:
            db.add(HazardCounter(year=year, last=seq))
        elif counter.last < seq:
            counter.last = seq


_COPIED = (
    "location", "description", "found_at", "reporter_name", "level", "category", "accident_type", "judgement_basis",
    "responsible_department", "responsible_person_id", "measures", "interim_measures", "deadline", "funds_budget",
    "funds_actual", "completed_at", "completion_note", "accepted_by_id", "accepted_at", "acceptance_opinion",
    "closed_at", "fast_path", "reopen_count", "production_suspended", "supervised", "supervising_unit", "source_ref",
    "rejected_reason", "root_cause", "lessons",
)  # fmt: skip
_OPTIONAL_TEXT = frozenset(
    {"judgement_basis", "responsible_department", "measures", "interim_measures", "completion_note",
     "acceptance_opinion", "supervising_unit", "source_ref", "rejected_reason", "root_cause", "lessons"}
)  # fmt: skip


def _hazard(row: _Row, actor: User, now: dt.datetime) -> Hazard:
    values = row.values
    hazard = Hazard(
        number=values.get("number") or None,
        state=values["state"].value,
        area_id=values["area_id"],
        source=values.get("source", HazardSource.INSPECTION).value,
        created_at=now,
        updated_at=now,
        reporter_name="",
        location="",
        fast_path=False,
        reopen_count=0,
        production_suspended=False,
        supervised=False,
    )
    for name in _COPIED:
        if name in values:
            value = values[name]
            setattr(hazard, name, None if name in _OPTIONAL_TEXT and value == "" else value)
    if not hazard.reporter_name:
        hazard.reporter_name = actor.display_name
    hazard.is_major = legal_level(hazard.level) == "major"
    return hazard


def import_ledger(
    db: Session,
    *,
    actor: User,
    content: bytes,
    filename: str,
    mapping: dict[str, str] | None = None,
    now: dt.datetime | None = None,
) -> LedgerImportReport:
    """Store every row of a ledger, or none: ImportRejected names every bad row and field.

    mapping ({their header: our field}) overrides the header aliases of ledger_columns.csv.
    """
    authz.require(actor, "hazard.import")
    now = now or utcnow()
    sheet = _read(content, filename, _aliases(mapping))
    ctx = _context(db, actor, now)
    rows: list[_Row] = []
    errors: list[RowError] = []
    for number, cells in sheet.rows:
        record = {f: cells[i] for i, f in enumerate(sheet.fields) if f and i < len(cells)}
        row, row_errors = _check_row(number, record, ctx)
        rows.append(row)
        errors.extend(row_errors)
    errors.extend(_check_numbers(rows, ctx))
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: e.row))
    if not rows:
        raise InvalidInput("file", "the ledger has a header but no rows")
    return _store(db, actor, rows, filename, now)


def _store(db: Session, actor: User, rows: list[_Row], filename: str, now: dt.datetime) -> LedgerImportReport:
    _advance_counters(db, (r.values["number"] for r in rows if r.values.get("number")))
    hazards = [_hazard(row, actor, now) for row in rows]
    for hazard in hazards:
        if hazard.number is None:
            hazard.number = service.next_number(db, hazard.found_at.astimezone(BEIJING).year)
    db.add_all(hazards)
    db.flush()
    warnings: list[str] = []
    for row, hazard in zip(rows, hazards, strict=True):
        data: dict[str, Any] = {"filename": filename, "row": row.number}
        if row.kept_names:
            data["names"] = row.kept_names
            warnings.extend(f"row {row.number}: no account for '{n}'; kept as text" for n in row.kept_names.values())
        service.add_event(
            db, hazard, actor=actor, kind=IMPORT_EVENT, at=now, note=f"imported from {filename}",
            to_state=hazard.state, data=data,
        )  # fmt: skip
    numbers = [h.number for h in hazards]
    audit.record(
        db,
        actor=actor,
        action="hazard.import",
        target_type="hazard",
        after={"count": len(hazards), "filename": filename, "first": numbers[0], "last": numbers[-1]},
        note=f"{len(hazards)} hazards imported from {filename}",
    )
    db.commit()
    return LedgerImportReport(created=len(hazards), numbers=numbers, warnings=warnings)

"""The 报警台's filters: what travels in the console URL, the alarm filter it means, and its exports.

A cockpit number links here with the same filters it counted by (analytics/metrics.ALARM_LIST_FILTERS),
so the console lists exactly the alarms behind the number, and "export" hands over the same list.

Every filter becomes a field of alarms.service.AlarmFilter, and the list comes from
service.list_for_user: the alarms service applies the reader's area scope and runs all of the
filtering in the database, so the console, the CSV and /api/v1/alarms cannot disagree.

Bad values are not refused — a stale shared link still opens — but they are ignored visibly: the
console names each field it could not read."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy.orm import Session

from hazardloop.alarms import service
from hazardloop.alarms.models import Alarm, Severity
from hazardloop.auth.models import User
from hazardloop.hazards.ledger import BEIJING, neutralise

STATES = ("active", "unacknowledged", "acknowledged", "cleared", "shelved")
TYPE_FAMILIES = service.TYPE_FAMILIES
VERDICTS = service.VERDICT_FILTERS
EXPORT_LIMIT = 50_000  # rows in one export; the file says when it was cut
#: Excel column widths (characters), in the order of _row_values; reasons and comments wrap.
XLSX_WIDTHS = (8, 14, 18, 12, 8, 40, 19, 19, 19, 7, 10, 10, 8, 8, 19, 12, 30, 19)


def parse_instant(text: str) -> dt.datetime:
    """'2026-11-28' (plant midnight) or '2026-11-28T08:30[:15]' (plant time, Beijing) → UTC."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=BEIJING)
    return value.astimezone(dt.UTC)


def _show_instant(value: dt.datetime) -> str:
    """Back to the plant-time text the form and the URL carry (date only at midnight)."""
    local = value.astimezone(BEIJING).replace(tzinfo=None)
    return local.date().isoformat() if local.time() == dt.time(0) else local.isoformat(timespec="seconds")


@dataclass(frozen=True)
class ConsoleQuery:
    state: str | None = None  # one of STATES
    area_id: int | None = None
    type: str | None = None  # one of TYPE_FAMILIES
    severity: Severity | None = None
    verdict: str | None = None  # a Verdict value, or "none" for not yet judged
    raised_from: dt.datetime | None = None  # first_at >= raised_from (UTC)
    raised_to: dt.datetime | None = None  # first_at < raised_to
    ignored: tuple[str, ...] = field(default=())  # fields whose value could not be read

    @classmethod
    def parse(cls, params: Any) -> ConsoleQuery:  # noqa: ANN401 - Starlette QueryParams or a dict
        ignored: list[str] = []

        def text(name: str) -> str | None:
            return (params.get(name) or "").strip() or None

        def pick(name: str, allowed: Any) -> str | None:  # noqa: ANN401
            value = text(name)
            if value is not None and value not in allowed:
                ignored.append(name)
                return None
            return value

        def instant(name: str) -> dt.datetime | None:
            value = text(name)
            try:
                return parse_instant(value) if value else None
            except ValueError:
                ignored.append(name)
                return None

        area = text("area_id")
        if area is not None and not (area.isdigit() and len(area) < 10):
            ignored.append("area_id")
            area = None
        severity = pick("severity", {s.value for s in Severity})
        return cls(
            state=pick("state", STATES),
            area_id=int(area) if area else None,
            type=pick("type", TYPE_FAMILIES),
            severity=Severity(severity) if severity else None,
            verdict=pick("verdict", VERDICTS),
            raised_from=instant("raised_from"),
            raised_to=instant("raised_to"),
            ignored=tuple(ignored),
        )

    @property
    def any(self) -> bool:
        return bool(self.params())

    def params(self) -> str:
        """The filters as the console URL carries them (empty ones left out)."""
        values = {
            "state": self.state,
            "area_id": self.area_id,
            "type": self.type,
            "severity": self.severity.value if self.severity else None,
            "verdict": self.verdict,
            "raised_from": _show_instant(self.raised_from) if self.raised_from else None,
            "raised_to": _show_instant(self.raised_to) if self.raised_to else None,
        }
        return urlencode({k: v for k, v in values.items() if v is not None})

    def form_value(self, name: str) -> str:
        """A raise-window bound as <input type="datetime-local"> shows it."""
        value = getattr(self, name)
        return "" if value is None else value.astimezone(BEIJING).replace(tzinfo=None).isoformat(timespec="seconds")

    def service_filter(self) -> service.AlarmFilter:
        """The console's filters as the alarms service reads them (a state is one or two flags)."""
        return service.AlarmFilter(
            active={"active": True, "cleared": False}.get(self.state or ""),
            acknowledged={"acknowledged": True, "unacknowledged": False}.get(self.state or ""),
            area_id=self.area_id,
            severity=self.severity,
            shelved=True if self.state == "shelved" else None,
            verdict=self.verdict,
            type_family=self.type,
            raised_from=self.raised_from,
            raised_to=self.raised_to,
        )


def list_alarms(db: Session, *, actor: User, query: ConsoleQuery, now: dt.datetime, limit: int | None,
                offset: int = 0) -> tuple[list[Alarm], int]:
    """The matching alarms, active first then newest first (service.list_for_user), and their total."""
    return service.list_for_user(db, actor=actor, filters=query.service_filter(), limit=limit, offset=offset,
                                 now=now)


# ---------------------------------------------------------------- exports


def _row_values(a: Alarm, area_names: dict[int, str]) -> tuple[Any, ...]:
    """One alarm's export row; the header keys (alarm_pages.CSV_HEADER_KEYS) follow this order."""
    return (a.id, a.tag, area_names.get(a.area_id, a.area_id), a.type, a.severity, a.reason, a.first_at, a.last_at,
            a.cleared_at, a.count, a.value, a.peak, a.unit, a.acknowledged, a.acknowledged_at, a.verdict,
            a.verdict_comment, a.shelved_until)


def _cut_note(shown: int, total: int) -> str:
    return f"# {shown} of {total} rows; narrow the filters for the rest"


def _cell(value: Any) -> str:  # noqa: ANN401
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    return neutralise(str(value))


def export_csv(db: Session, *, actor: User, query: ConsoleQuery, now: dt.datetime, headers: list[str],
               area_names: dict[int, str]) -> bytes:
    """The filtered list as CSV (UTF-8 with a BOM, for Excel on Chinese Windows), times in plant time.

    ``headers`` are the translated column names, in the order of the values written below."""
    rows, total = list_alarms(db, actor=actor, query=query, now=now, limit=EXPORT_LIMIT)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    for a in rows:
        writer.writerow([_cell(v) for v in _row_values(a, area_names)])
    if total > len(rows):
        writer.writerow([_cut_note(len(rows), total)])
    return out.getvalue().encode("utf-8-sig")


def _xlsx_cell(value: Any, yes_no: tuple[str, str]) -> Any:  # noqa: ANN401
    """Excel keeps numbers and times as such (sortable, filterable); text is made formula-safe."""
    if isinstance(value, bool):
        return yes_no[0] if value else yes_no[1]
    if isinstance(value, dt.datetime):
        return value.astimezone(BEIJING).replace(tzinfo=None)  # Excel has no time zones: plant time
    if isinstance(value, str):
        return neutralise(ILLEGAL_CHARACTERS_RE.sub("", value))  # control characters are not allowed in XML
    return value


def export_xlsx(db: Session, *, actor: User, query: ConsoleQuery, now: dt.datetime, headers: list[str],
                area_names: dict[int, str], title: str, yes_no: tuple[str, str]) -> bytes:
    """The filtered list as an Excel workbook: the same rows as the CSV, with a title naming the export
    time, a frozen header, an auto-filter and real date cells, for the 报警台账 a safety meeting reviews."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    rows, total = list_alarms(db, actor=actor, query=query, now=now, limit=EXPORT_LIMIT)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title[:31])  # Excel's limit on sheet names
    last = get_column_letter(len(headers))
    for index, width in enumerate(XLSX_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.freeze_panes = "C3"
    stamp = now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    heading = WriteOnlyCell(ws, f"{title} ({stamp})")
    heading.font = Font(bold=True, size=14)
    ws.append([heading])
    ws.merged_cells.add(f"A1:{last}1")
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    header_cells = []
    for text in headers:
        cell = WriteOnlyCell(ws, text)
        cell.font, cell.fill = bold, fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        header_cells.append(cell)
    ws.append(header_cells)
    for a in rows:
        cells = []
        for value in _row_values(a, area_names):
            cell = WriteOnlyCell(ws, _xlsx_cell(value, yes_no))
            if isinstance(value, dt.datetime):
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
            cells.append(cell)
        ws.append(cells)
    ws.auto_filter.ref = f"A2:{last}{len(rows) + 2}"
    if total > len(rows):
        ws.append([_cut_note(len(rows), total)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()

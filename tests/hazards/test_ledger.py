"""台账 export and import: what a safety manager sees in Excel, and that a ledger comes back whole."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hazardloop.auth.models import AuditEvent, User
from hazardloop.auth.roles import Role
from hazardloop.errors import ImportRejected
from hazardloop.hazards import ledger
from hazardloop.hazards.models import Hazard, HazardEvent, HazardState
from hazardloop.hazards.service import HazardFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))
from world import World, build_world  # noqa: E402

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
TRICKY = ["配电箱未接地, 门未关", '标有"危险"的阀门', "第一行\n第二行", '=HYPERLINK("http://x")', "+86 电话",
          "-20℃ 冷库", "@SUM(A1)", "'已引用", "'=双重", "普通描述"]  # fmt: skip
LEVELS = ["general", "notable", "major", None]
CATEGORIES = ["electrical", "fire", "confined_space", "hazardous_chemicals", None]
STATES = list(HazardState)
COMPARED = (
    "number", "state", "area_id", "location", "source", "description", "found_at", "reporter_name", "level",
    "is_major", "category", "accident_type", "judgement_basis", "responsible_department", "responsible_person_id",
    "measures", "interim_measures", "deadline", "funds_budget", "funds_actual", "completed_at", "completion_note",
    "accepted_by_id", "accepted_at", "acceptance_opinion", "closed_at", "fast_path", "reopen_count",
    "production_suspended", "supervised", "supervising_unit", "source_ref", "rejected_reason", "root_cause", "lessons",
)  # fmt: skip


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


def seed(db: Session, world: World, count: int) -> None:
    """Hazards in every state, level, category and area, with text that CSV and Excel find awkward."""
    manager = world.users[Role.SAFETY_MANAGER]
    rectifier = world.users[Role.RECTIFIER]
    hazards = []
    for i in range(count):
        area = world.area_a if i % 3 else world.area_b
        state = STATES[i % len(STATES)]
        level = LEVELS[i % len(LEVELS)]
        found = NOW - dt.timedelta(days=i % 400, minutes=i * 7 % 1440, seconds=i % 60)
        closed = state is HazardState.CLOSED
        hazards.append(
            Hazard(
                number=f"YH-{found.year}-{i + 1:05d}" if i % 5 else f"OLD/{i}",
                state=state.value,
                area_id=area,
                location=f"{i % 17}号泵房" if i % 4 else "",
                source=["inspection", "report", "sensor_alarm", "camera", "ai_draft", "external_check"][i % 6],
                description=f"{TRICKY[i % len(TRICKY)]} #{i}",
                found_at=found,
                reporter_name=["张三", "李四, 王五", "=cmd"][i % 3],
                created_at=NOW,
                updated_at=NOW,
                level=level,
                is_major=level == "major",
                category=CATEGORIES[i % len(CATEGORIES)],
                accident_type=f"{i % 20 + 1:02d}" if i % 7 else None,
                judgement_basis="工贸10号令 第四条" if level == "major" else None,
                responsible_department="维修车间" if i % 2 else None,
                responsible_person_id=(rectifier.id if area == world.area_a else world.admin.id) if i % 2 else None,
                measures=f"加装接地线;\n复测 {i}" if i % 2 else None,
                interim_measures="设置警示带" if i % 3 == 0 else None,
                deadline=found + dt.timedelta(days=7 + i % 30, hours=3) if i % 2 else None,
                funds_budget=[None, 0.0, 1200.5, 35000.0, 12.34][i % 5],
                funds_actual=[None, 980.25][i % 2] if closed else None,
                completed_at=found + dt.timedelta(days=3) if closed else None,
                completion_note="已整改完毕" if closed else None,
                accepted_by_id=manager.id if closed else None,
                accepted_at=found + dt.timedelta(days=4) if closed else None,
                acceptance_opinion="验收通过" if closed else None,
                closed_at=found + dt.timedelta(days=4, hours=1) if closed else None,
                fast_path=closed and i % 4 == 0,
                reopen_count=i % 3 if state is HazardState.REOPENED else 0,
                production_suspended=i % 11 == 0,
                supervised=i % 13 == 0,
                supervising_unit="市应急管理局" if i % 13 == 0 else None,
                source_ref=f"JC-{i}" if i % 9 == 0 else None,
                rejected_reason="重复上报" if state is HazardState.REJECTED else None,
                root_cause="巡检不到位" if closed else None,
                lessons="加强培训" if closed else None,
            )
        )
    db.add_all(hazards)
    db.commit()


def snapshot(db: Session) -> dict[str, dict[str, Any]]:
    return {h.number: {f: getattr(h, f) for f in COMPARED} for h in db.scalars(select(Hazard))}


def wipe_hazards(db: Session) -> None:
    """Delete every hazard fast. On SQLite each delete would otherwise scan the whole table for the
    unindexed self-references (duplicate_of_id, ...), which makes 10,000 deletes take minutes."""
    db.commit()
    sqlite = db.get_bind().dialect.name == "sqlite"
    if sqlite:
        db.connection().exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction: takes effect
    db.execute(delete(HazardEvent))
    db.execute(delete(Hazard))
    db.commit()
    if sqlite:
        db.connection().exec_driver_sql("PRAGMA foreign_keys=ON")
        db.commit()


@pytest.fixture(autouse=True)
def _fast_teardown(db: Session) -> Any:
    yield
    db.rollback()
    wipe_hazards(db)  # before the shared fixture wipes the tables the slow way


def count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Hazard)) or 0


def csv_file(rows: list[list[str]], encoding: str = "utf-8-sig", delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue().encode(encoding)


HEADER = ["隐患编号", "所属区域", "隐患描述", "发现时间", "隐患级别", "隐患类别", "状态", "整改责任人", "整改期限"]


def good_row(number: str = "", description: str = "消防通道堵塞") -> list[str]:
    return [number, "罐区", description, "2026-05-01 08:30", "一般隐患", "消防安全", "待整改", "rectifier", "2026/5/20"]


# ---------------------------------------------------------------- round trips


def test_ten_thousand_hazards_come_back_whole_from_the_excel_ledger(db: Session, world: World) -> None:
    seed(db, world, 10_000)
    before = snapshot(db)
    started = time.perf_counter()
    content = ledger.export_xlsx(db, actor=world.admin, filters=None, now=NOW)
    exported = time.perf_counter() - started
    wipe_hazards(db)
    report = ledger.import_ledger(db, actor=world.admin, content=content, filename="台账.xlsx", now=NOW)
    assert report.created == 10_000
    assert snapshot(db) == before
    assert exported < 15  # a few seconds on a laptop; generous for a loaded CI runner


def test_csv_round_trip_restores_text_that_looks_like_formulas(db: Session, world: World) -> None:
    seed(db, world, 600)
    before = snapshot(db)
    content = ledger.export_csv(db, actor=world.admin, now=NOW)
    assert content.startswith(b"\xef\xbb\xbf")
    wipe_hazards(db)
    ledger.import_ledger(db, actor=world.admin, content=content, filename="台账.csv", now=NOW)
    assert snapshot(db) == before
    assert ledger.export_csv(db, actor=world.admin, now=NOW) == content


def test_exported_cells_never_start_a_formula(db: Session, world: World) -> None:
    seed(db, world, 40)
    sheet = load_workbook(io.BytesIO(ledger.export_xlsx(db, actor=world.admin, now=NOW))).worksheets[0]
    texts = [c.value for row in sheet.iter_rows(min_row=3) for c in row if isinstance(c.value, str)]
    assert '\'=HYPERLINK("http://x") #3' in texts
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    assert not any(t.startswith(("=", "+", "-", "@")) for t in texts)
    rows = list(csv.reader(io.StringIO(ledger.export_csv(db, actor=world.admin, now=NOW).decode("utf-8-sig"))))
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_excel_ledger_has_title_chinese_header_filter_and_statistics(db: Session, world: World) -> None:
    seed(db, world, 30)
    book = load_workbook(io.BytesIO(ledger.export_xlsx(db, actor=world.admin, now=NOW)))
    sheet = book.worksheets[0]
    assert sheet["A1"].value.startswith("测试化工隐患排查治理台账")
    assert [c.value for c in sheet[2]][:5] == ["序号", "隐患编号", "所属区域", "具体部位", "隐患来源"]
    assert sheet.freeze_panes == "C3"
    assert sheet.auto_filter.ref == f"A2:{sheet.cell(2, sheet.max_column).column_letter}32"
    assert isinstance(sheet["G3"].value, dt.datetime)  # 发现时间 is a date cell, not text
    assert {c.value for c in sheet["T"][2:]} <= set(ledger.STATE_NAMES.values())
    stats = book["统计"]
    assert stats["A1"].value == "状态"
    assert [r for r in stats.iter_rows(values_only=True) if r and r[0] == "合计"][0][-1] == 30


# ---------------------------------------------------------------- import checks


def test_bad_rows_are_all_named_and_nothing_is_stored(db: Session, world: World) -> None:
    before = count(db)
    rows = [
        HEADER,
        good_row(),
        ["", "火星基地", "描述", "2026-05-01", "", "", "", "", ""],
        ["", "罐区", "", "昨天", "超级隐患", "", "飞走了", "", ""],
        good_row(),
        ["", "锅炉房", "描述", "2026-05-01", "", "不存在的类别", "", "", "2026-13-01"],
    ]
    with pytest.raises(ImportRejected) as caught:
        ledger.import_ledger(db, actor=world.users[Role.SAFETY_MANAGER], content=csv_file(rows), filename="x.csv")
    found = {(e.row, e.field) for e in caught.value.errors}
    assert found == {
        (3, "area"),
        (4, "description"),
        (4, "found_at"),
        (4, "level"),
        (4, "state"),
        (6, "area"),  # 锅炉房 exists but was not granted to this manager
        (6, "category"),
        (6, "deadline"),
    }
    assert count(db) == before


def test_gbk_csv_with_semicolons_is_read(db: Session, world: World) -> None:
    content = csv_file([HEADER, good_row(description="配电柜门；未关闭")], encoding="gbk", delimiter=";")
    report = ledger.import_ledger(db, actor=world.admin, content=content, filename="台账.csv", now=NOW)
    hazard = db.scalar(select(Hazard).where(Hazard.number == report.numbers[0]))
    assert hazard.description == "配电柜门；未关闭"
    assert hazard.state == HazardState.ASSIGNED
    assert hazard.deadline == dt.datetime(2026, 5, 20, 15, 59, 59, tzinfo=dt.UTC)  # end of the day, Beijing time


def test_header_below_a_title_row_and_excel_date_cells(db: Session, world: World) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["某某化工有限公司隐患排查治理台账"])
    sheet.append([])
    sheet.append(["序号", "隐患描述", "区域", "检查日期", "级别", "整改资金"])
    sheet.append([1, "储罐呼吸阀堵塞", "TANK", dt.datetime(2026, 3, 2, 9, 15), "重大隐患", "1.5万"])
    sheet.append([])
    sheet.append([2, "叉车无证驾驶", "罐区", dt.date(2026, 3, 3), "general", 800])
    out = io.BytesIO()
    book.save(out)
    ledger.import_ledger(db, actor=world.admin, content=out.getvalue(), filename="old.xlsx", now=NOW)
    hazards = {h.description: h for h in db.scalars(select(Hazard))}
    assert hazards["储罐呼吸阀堵塞"].found_at == dt.datetime(2026, 3, 2, 1, 15, tzinfo=dt.UTC)
    assert hazards["储罐呼吸阀堵塞"].is_major and hazards["储罐呼吸阀堵塞"].funds_budget == 15000
    assert hazards["叉车无证驾驶"].funds_budget == 800


def test_row_numbers_are_the_rows_the_user_sees(db: Session, world: World) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["台账"])
    sheet.append(["隐患描述", "所属区域", "发现时间"])
    sheet.append(["好的一行", "罐区", "2026-01-01"])
    sheet.append([])
    sheet.append(["缺少区域", "", "2026-01-01"])
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(ImportRejected) as caught:
        ledger.import_ledger(db, actor=world.admin, content=out.getvalue(), filename="a.xlsx", now=NOW)
    assert [(e.row, e.field) for e in caught.value.errors] == [(5, "area")]


def test_custom_mapping_overrides_the_known_headers(db: Session, world: World) -> None:
    rows = [["问题", "车间", "日期", "备注"], ["管道泄漏", "TANK", "2026-04-01", "无关"]]
    mapping = {"问题": "description", "车间": "area", "日期": "found_at"}
    report = ledger.import_ledger(db, actor=world.admin, content=csv_file(rows), filename="m.csv", mapping=mapping)
    assert report.created == 1
    assert db.scalar(select(Hazard.description)) == "管道泄漏"


def test_numbers_already_in_the_register_are_rejected_not_overwritten(db: Session, world: World) -> None:
    ledger.import_ledger(db, actor=world.admin, content=csv_file([HEADER, good_row("YH-2026-00007")]), filename="a")
    again = csv_file([HEADER, good_row("YH-2026-00007", "另一条"), good_row("X-1"), good_row("X-1")])
    with pytest.raises(ImportRejected) as caught:
        ledger.import_ledger(db, actor=world.admin, content=again, filename="b.csv")
    assert {(e.row, e.field) for e in caught.value.errors} == {(2, "number"), (4, "number")}
    assert db.scalar(select(Hazard.description)) == "消防通道堵塞"


def test_new_numbers_continue_after_imported_ones(db: Session, world: World) -> None:
    content = csv_file([HEADER, good_row("YH-2026-00040"), good_row()])
    report = ledger.import_ledger(db, actor=world.admin, content=content, filename="a.csv", now=NOW)
    assert report.numbers == ["YH-2026-00040", "YH-2026-00041"]


def test_import_writes_one_audit_record_and_a_timeline_event_per_hazard(db: Session, world: World) -> None:
    content = csv_file([HEADER, good_row(), good_row(), good_row()])
    audits = db.scalar(select(func.count()).select_from(AuditEvent))
    ledger.import_ledger(db, actor=world.admin, content=content, filename="三月台账.csv", now=NOW)
    records = list(db.scalars(select(AuditEvent).where(AuditEvent.seq > audits)))
    assert [(r.action, r.after["count"], r.after["filename"]) for r in records] == [
        ("hazard.import", 3, "三月台账.csv")
    ]
    notes = list(db.scalars(select(HazardEvent.note)))
    assert notes == ["imported from 三月台账.csv"] * 3


def test_a_person_without_account_is_kept_and_exported_again(db: Session, world: World) -> None:
    rows = [HEADER + ["验收人"], good_row()[:7] + ["老王", "2026-05-20", "rectifier"]]
    report = ledger.import_ledger(db, actor=world.admin, content=csv_file(rows), filename="a.csv", now=NOW)
    assert report.warnings == ["row 2: no account for '老王'; kept as text"]
    hazard = db.scalar(select(Hazard))
    assert hazard.responsible_person_id is None
    assert hazard.accepted_by_id == world.users[Role.RECTIFIER].id
    exported = ledger.export_csv(db, actor=world.admin, now=NOW).decode("utf-8-sig")
    assert "老王" in exported


def test_a_name_shared_by_two_accounts_is_a_row_error(db: Session, world: World) -> None:
    db.get(User, world.users[Role.VIEWER].id).display_name = "同名"
    db.get(User, world.users[Role.OPERATOR].id).display_name = "同名"
    db.commit()
    with pytest.raises(ImportRejected) as caught:
        ledger.import_ledger(db, actor=world.admin, content=csv_file([HEADER, good_row()[:7] + ["同名"]]),
                             filename="a.csv")  # fmt: skip
    assert [(e.row, e.field) for e in caught.value.errors] == [(2, "responsible_person")]
    assert "write the username" in caught.value.errors[0].message


def test_a_username_wins_over_a_display_name(db: Session, world: World) -> None:
    db.get(User, world.users[Role.OPERATOR].id).display_name = "rectifier"
    db.commit()
    ledger.import_ledger(db, actor=world.admin, content=csv_file([HEADER, good_row()]), filename="a.csv", now=NOW)
    assert db.scalar(select(Hazard.responsible_person_id)) == world.users[Role.RECTIFIER].id


# ---------------------------------------------------------------- filters, scope, roles, HTTP


def test_export_follows_the_filters_and_the_actors_areas(db: Session, world: World) -> None:
    seed(db, world, 120)
    officer = world.users[Role.SAFETY_OFFICER]  # granted area A only
    rows = list(csv.DictReader(io.StringIO(ledger.export_csv(db, actor=officer, now=NOW).decode("utf-8-sig"))))
    assert rows and {r["区域编码"] for r in rows} == {"TANK"}
    closed = ledger.export_csv(db, actor=world.admin, filters=HazardFilter(state=HazardState.CLOSED), now=NOW)
    states = {r["状态"] for r in csv.DictReader(io.StringIO(closed.decode("utf-8-sig")))}
    assert states == {"已销号"}


def test_viewer_may_export_but_not_import_and_rectifier_may_not_export(client, world: World) -> None:  # noqa: ANN001
    r = client.get("/api/v1/hazards/export.xlsx", headers=world.auth(Role.VIEWER))
    assert r.status_code == 200
    assert "filename*=UTF-8''%E9%9A%90%E6%82%A3" in r.headers["content-disposition"]
    upload = {"file": ("a.csv", csv_file([HEADER, good_row()]), "text/csv")}
    assert client.post("/api/v1/hazards/import", files=upload, headers=world.auth(Role.VIEWER)).status_code == 403
    assert client.get("/api/v1/hazards/export.csv", headers=world.auth(Role.RECTIFIER)).status_code == 403


def test_import_over_http_with_mapping_and_filtered_export(client, world: World) -> None:  # noqa: ANN001
    content = csv_file([["问题", "区域", "发现时间"], ["管道泄漏", "TANK", "2026-04-01"]])
    r = client.post(
        "/api/v1/hazards/import",
        files={"file": ("台账.csv", content, "text/csv")},
        data={"mapping": json.dumps({"问题": "description"})},
        headers=world.auth(Role.SAFETY_MANAGER),
    )
    assert r.status_code == 201, r.text
    assert r.json()["created"] == 1
    r = client.get("/api/v1/hazards/export.csv?q=泄漏", headers=world.auth(Role.SAFETY_MANAGER))
    assert r.status_code == 200 and "管道泄漏" in r.content.decode("utf-8-sig")


def test_bad_rows_over_http_answer_422_with_every_row(client, world: World) -> None:  # noqa: ANN001
    content = csv_file([HEADER, good_row(), ["", "罐区", "", "", "", "", "", "", ""]])
    r = client.post("/api/v1/hazards/import", files={"file": ("a.csv", content)}, headers=world.auth(Role.ADMIN))
    assert r.status_code == 422
    assert {(e["row"], e["field"]) for e in r.json()["detail"]["rows"]} == {(3, "description"), (3, "found_at")}


def test_oversized_upload_is_refused_naming_the_limit(app, client, world: World) -> None:  # noqa: ANN001
    app.state.settings.max_upload_bytes = 1024
    content = csv_file([HEADER] + [good_row()] * 100)
    r = client.post("/api/v1/hazards/import", files={"file": ("a.csv", content)}, headers=world.auth(Role.ADMIN))
    assert r.status_code == 422
    assert "1024 bytes" in r.text

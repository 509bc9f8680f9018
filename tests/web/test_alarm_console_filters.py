"""The 报警台 filtered by its URL: every cockpit alarm card opens a console listing exactly the alarms
behind its number, each filter narrows the list in the database, and the CSV export is that list."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))

from world import PASSWORD, World, build_world  # noqa: E402

from hazardloop.alarms import service  # noqa: E402
from hazardloop.alarms.models import Verdict  # noqa: E402
from hazardloop.alarms.service import SensorRef  # noqa: E402
from hazardloop.analytics import metrics  # noqa: E402
from hazardloop.auth.roles import Role  # noqa: E402
from hazardloop.db import utcnow  # noqa: E402
from hazardloop.hazards.ledger import BEIJING  # noqa: E402
from hazardloop.plant.models import Sensor  # noqa: E402

DAY = dt.timedelta(days=1)


def _ref(db, sensor_id: int) -> SensorRef:  # noqa: ANN001
    s = db.get(Sensor, sensor_id)
    return SensorRef(id=s.id, tag=s.tag, area_id=s.area_id, unit=s.unit)


class Alarms:
    """A fortnight of alarms around the real clock (the console and the cockpit read utcnow())."""

    def __init__(self, db, world: World) -> None:  # noqa: ANN001
        self.db, self.world = db, world
        self.now = utcnow()
        self.midnight = metrics.plant_day_start(self.now)
        self.ids: dict[str, int] = {}

    def raise_(self, name: str, *, sensor: str, kind: str, at: dt.datetime, cleared: bool = False) -> int:
        sensor_id = self.world.sensor_a if sensor == "a" else self.world.sensor_b
        alarm, _ = service.raise_or_update(self.db, sensor=_ref(self.db, sensor_id), alarm_type=kind, at=at,
                                           value=30.0, reason=name)
        if cleared:
            service.clear(self.db, sensor_id=sensor_id, alarm_type=kind, at=at + dt.timedelta(minutes=5))
        self.ids[name] = alarm.id
        return alarm.id

    @property
    def chief(self):  # noqa: ANN201
        """A safety manager of every area: the world's people are granted area A only."""
        manager = self.world.users[Role.SAFETY_MANAGER]
        manager.all_areas = True
        self.db.commit()
        return manager

    def judge(self, name: str, verdict: Verdict, at: dt.datetime) -> None:
        service.give_verdict(self.db, actor=self.chief, alarm_id=self.ids[name], verdict=verdict, now=at)

    def acknowledge(self, name: str, at: dt.datetime) -> None:
        service.acknowledge(self.db, actor=self.chief, alarm_id=self.ids[name], now=at)


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


@pytest.fixture
def alarms(db, world: World) -> Alarms:  # noqa: ANN001
    a = Alarms(db, world)
    today = a.midnight + (a.now - a.midnight) / 2
    a.raise_("today", sensor="a", kind="limit_hh", at=today)
    a.raise_("yesterday", sensor="b", kind="limit_hh", at=a.midnight - dt.timedelta(hours=1), cleared=True)
    a.raise_("false_a", sensor="a", kind="limit_h", at=a.midnight - 5 * DAY, cleared=True)
    a.judge("false_a", Verdict.FALSE_ALARM, a.midnight - 5 * DAY + dt.timedelta(minutes=3))
    a.raise_("true_b", sensor="b", kind="limit_h", at=a.midnight - 6 * DAY, cleared=True)
    a.judge("true_b", Verdict.TRUE_ALARM, a.midnight - 6 * DAY + dt.timedelta(minutes=9))
    a.raise_("acked_b", sensor="b", kind="statistical", at=a.midnight - 7 * DAY)
    a.acknowledge("acked_b", a.midnight - 7 * DAY + dt.timedelta(minutes=1))
    a.raise_("fault_a", sensor="a", kind="sensor_fault:stuck", at=a.midnight - 3 * DAY)
    a.raise_("silent_b", sensor="b", kind="silent", at=a.midnight - 2 * DAY)
    a.raise_("old_false_a", sensor="a", kind="limit_l", at=a.midnight - 40 * DAY, cleared=True)
    a.judge("old_false_a", Verdict.FALSE_ALARM, a.midnight - 40 * DAY + dt.timedelta(minutes=2))
    return a


def login(client, username: str) -> None:  # noqa: ANN001
    response = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def listed(client, href: str) -> tuple[set[int], int]:  # noqa: ANN001
    """(alarm ids shown, total the console states) of one console URL."""
    page = client.get(href)
    assert page.status_code == 200, href
    total = re.search(r'data-testid="alarm-shown" data-total="(\d+)"', page.text)
    assert total, href
    return {int(i) for i in re.findall(r'data-alarm-id="(\d+)"', page.text)}, int(total.group(1))


def _cards(page: str) -> dict[str, tuple[str, str]]:
    found = re.findall(r'href="([^"]*)" data-testid="kpi-([a-z_]+)" data-value="([^"]*)"', page)
    return {key: (value, href.replace("&amp;", "&")) for href, key, value in found}


def test_each_alarm_card_opens_exactly_its_alarms(client, alarms: Alarms, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    today = alarms.now.astimezone(BEIJING).date()
    first, last = today - dt.timedelta(days=20), today - DAY  # a window that ended at midnight: fixed numbers
    page = client.get("/cockpit", params={"period": "custom", "start": first.isoformat(), "end": last.isoformat()})
    cards = _cards(page.text)
    ids = alarms.ids

    value, href = cards["alarms_today"]
    assert href.startswith("/alarms?") and listed(client, href) == ({ids["today"]}, 1) and value == "1"

    value, href = cards["false_alarm_rate"]  # 1 false of 2 judged in the window; the old one is outside
    assert value == "50.0" and listed(client, href) == ({ids["false_a"]}, 1)

    value, href = cards["mean_minutes_to_ack"]  # acknowledged by a verdict or by hand: 3, 9 and 1 minutes
    assert value == "4.3" and listed(client, href) == ({ids["false_a"], ids["true_b"], ids["acked_b"]}, 3)

    data = json.loads(re.search(r'<script type="application/json" id="cockpit-data">(.*?)</script>',
                                page.text, re.S).group(1))
    active = {"a": {ids["today"], ids["fault_a"]}, "b": {ids["acked_b"], ids["silent_b"]}}
    for area in data["areas"]:
        expected = active["a" if area["id"] == world.area_a else "b"]
        assert area["drill_alarms"]["exact"] and area["active_alarms"] == len(expected)
        assert listed(client, area["drill_alarms"]["href"]) == (expected, len(expected))


def test_each_filter_narrows_the_list_in_the_console(client, alarms: Alarms, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    ids = alarms.ids
    assert listed(client, "/alarms")[1] == len(ids)
    assert listed(client, "/alarms?type=sensor_fault")[0] == {ids["fault_a"], ids["silent_b"]}
    assert listed(client, "/alarms?type=statistical")[0] == {ids["acked_b"]}
    limits = {ids[n] for n in ("today", "yesterday", "false_a", "true_b", "old_false_a")}
    assert listed(client, "/alarms?type=limit")[0] == limits
    assert listed(client, "/alarms?verdict=false_alarm")[0] == {ids["false_a"], ids["old_false_a"]}
    assert listed(client, "/alarms?verdict=none&state=active")[0] == {
        ids["today"], ids["fault_a"], ids["silent_b"], ids["acked_b"]}
    assert listed(client, "/alarms?state=unacknowledged&state=x")[0] >= {ids["today"], ids["yesterday"]}
    cleared = listed(client, f"/alarms?state=cleared&area_id={world.area_b}")[0]
    assert cleared == {ids["yesterday"], ids["true_b"]}
    day = (alarms.midnight - 6 * DAY).astimezone(BEIJING).date()
    window = f"raised_from={day.isoformat()}&raised_to={(day + DAY).isoformat()}"
    assert listed(client, f"/alarms?{window}")[0] == {ids["true_b"]}
    severity = service.severity_for("limit_hh").value
    assert listed(client, f"/alarms?severity={severity}")[0] >= {ids["today"], ids["yesterday"]}


def test_the_api_takes_the_same_filters_and_lists_the_same_alarms(client, alarms: Alarms, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    day = (alarms.midnight - 6 * DAY).astimezone(BEIJING).date()
    cases = (
        ("type=sensor_fault", {"type_family": "sensor_fault"}),
        ("type=limit&verdict=false_alarm", {"type_family": "limit", "verdict": "false_alarm"}),
        ("verdict=none&state=active", {"verdict": "none", "active": "true"}),
        (f"raised_from={day}&raised_to={day + DAY}",
         {"raised_from": f"{day}T00:00:00+08:00", "raised_to": f"{day + DAY}T00:00:00+08:00"}),
    )
    for console, api in cases:
        answer = client.get("/api/v1/alarms", params={**api, "limit": 500}, headers=world.auth(Role.ADMIN)).json()
        shown = {a["id"] for a in answer["items"]}
        assert shown and listed(client, f"/alarms?{console}") == (shown, answer["total"]), console


def test_unreadable_filters_are_named_and_ignored(client, alarms: Alarms) -> None:  # noqa: ANN001
    login(client, "admin")
    page = client.get("/alarms", params={"state": "burning", "raised_from": "yesterday", "type": "limit"}).text
    notice = re.search(r'data-testid="filter-ignored">([^<]*)<', page).group(1)
    assert "state" in notice and "raised_from" in notice and "type" not in notice
    assert 'value="limit" selected' in page


def test_the_filters_stay_in_the_polling_url_and_the_export_link(client, alarms: Alarms) -> None:  # noqa: ANN001
    login(client, "admin")
    page = client.get("/alarms?state=active&type=limit").text
    assert 'hx-get="/alarms?state=active&amp;type=limit"' in page
    assert 'href="/alarms/export.csv?state=active&amp;type=limit"' in page
    partial = client.get("/alarms?state=active&type=limit", headers={"HX-Request": "true"}).text
    assert {int(i) for i in re.findall(r'data-alarm-id="(\d+)"', partial)} == {alarms.ids["today"]}


def test_csv_export_is_the_filtered_list(client, alarms: Alarms) -> None:  # noqa: ANN001
    login(client, "admin")
    response = client.get("/alarms/export.csv?type=limit&state=cleared")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["编号", "位号", "区域"]
    shown, total = listed(client, "/alarms?type=limit&state=cleared")
    assert {int(r[0]) for r in rows[1:]} == shown and len(rows) - 1 == total == 4
    false_row = next(r for r in rows if r[0] == str(alarms.ids["false_a"]))
    assert false_row[rows[0].index("研判")] == "false_alarm" and false_row[rows[0].index("区域")].startswith("TANK")


def test_an_operator_filtering_by_another_area_sees_nothing_of_it(client, alarms: Alarms, world: World) -> None:  # noqa: ANN001
    login(client, "operator")  # granted area A only
    assert listed(client, f"/alarms?area_id={world.area_b}") == (set(), 0)
    rows = list(csv.reader(io.StringIO(client.get("/alarms/export.csv").content.decode("utf-8-sig"))))
    assert {int(r[0]) for r in rows[1:]} == {alarms.ids[n] for n in ("today", "false_a", "fault_a", "old_false_a")}


def test_a_plain_form_post_lands_back_on_the_same_filtered_console(client, alarms: Alarms) -> None:  # noqa: ANN001
    login(client, "operator")
    alarm_id = alarms.ids["today"]
    answer = client.post(f"/alarms/{alarm_id}/acknowledge", follow_redirects=False,
                         headers={"Referer": "http://testserver/alarms?state=active&type=limit&evil=1"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/alarms?state=active&type=limit#alarm-{alarm_id}"
    unfiltered = client.post(f"/alarms/{alarms.ids['fault_a']}/acknowledge", follow_redirects=False,
                             headers={"Referer": "http://testserver/hazards?state=CLOSED"})
    assert unfiltered.headers["location"] == f"/alarms#alarm-{alarms.ids['fault_a']}"


def test_excel_export_is_the_same_filtered_list_with_real_times(client, alarms: Alarms) -> None:  # noqa: ANN001
    import datetime as dt

    from openpyxl import load_workbook

    login(client, "admin")
    page = client.get("/alarms?state=active&type=limit").text
    assert 'href="/alarms/export.xlsx?state=active&amp;type=limit"' in page
    response = client.get("/alarms/export.xlsx?type=limit&state=cleared")
    assert response.status_code == 200 and "spreadsheetml" in response.headers["content-type"]
    assert response.headers["content-disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet.title == "报警台账" and sheet["A1"].value.startswith("报警台账")
    grid = [list(r) for r in sheet.iter_rows(min_row=2, values_only=True)]
    header, rows = grid[0], grid[1:]
    csv_rows = list(csv.reader(io.StringIO(client.get("/alarms/export.csv?type=limit&state=cleared")
                                           .content.decode("utf-8-sig"))))
    assert header == csv_rows[0]
    assert sorted(r[0] for r in rows) == sorted(int(r[0]) for r in csv_rows[1:]) and len(rows) == 4
    first = header.index("首次报警时间")
    assert all(isinstance(r[first], dt.datetime) for r in rows)  # dates Excel can sort and filter
    by_id = {str(r[0]): r for r in csv_rows[1:]}
    assert all(r[first].strftime("%Y-%m-%d %H:%M:%S") == by_id[str(r[0])][first] for r in rows)  # plant time
    client.cookies.set("hl_lang", "en")
    english = load_workbook(io.BytesIO(client.get("/alarms/export.xlsx?type=limit&state=cleared").content)).active
    assert english.title == "Alarm ledger" and english["B2"].value == "Tag"


def test_excel_export_keeps_hostile_text_as_text(client, alarms: Alarms, db) -> None:  # noqa: ANN001
    from openpyxl import load_workbook

    from hazardloop.alarms.models import Alarm

    alarm = db.get(Alarm, alarms.ids["today"])
    alarm.reason = '=HYPERLINK("http://evil.example","x")\x07'
    db.commit()
    login(client, "admin")
    sheet = load_workbook(io.BytesIO(client.get("/alarms/export.xlsx").content)).active
    header = [c.value for c in sheet[2]]
    row = next(r for r in sheet.iter_rows(min_row=3) if r[0].value == alarms.ids["today"])
    cell = row[header.index("原因")]
    assert cell.data_type == "s" and cell.value == "'" + '=HYPERLINK("http://evil.example","x")'

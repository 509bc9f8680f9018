"""The 驾驶舱 period picker: for a chosen window the KPI cards show exactly what the aggregate
readers (hazards/stats.py, alarms/stats.py) count over that window, and link to that window's list."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from hazardloop.alarms import stats as alarm_stats
from hazardloop.auth.models import User
from hazardloop.demo.build import DEMO_PASSWORD, build_demo
from hazardloop.hazards import stats as hazard_stats
from hazardloop.hazards.ledger import BEIJING
from hazardloop.web.cockpit_pages import choose_period


@pytest.fixture
def demo_world(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path, seed=1, days=1, hazards_per_day=0.5)


@pytest.fixture
def small_demo(db, tmp_path: Path) -> None:  # noqa: ANN001
    """The demo plant with few hazards, for checks that need the plant but not the numbers."""
    build_demo(db, data_dir=tmp_path, seed=1, days=1, hazards_per_day=0.05)


def _manager_page(client, **params: str) -> str:  # noqa: ANN001
    client.post("/login", data={"username": "manager", "password": DEMO_PASSWORD, "next": "/"})
    answer = client.get("/cockpit", params=params)
    assert answer.status_code == 200
    return answer.text


def _card(page: str, key: str) -> tuple[str, str]:
    """(data-value, href) of one KPI card."""
    found = re.search(rf'href="([^"]*)" data-testid="kpi-{key}" data-value="([^"]*)"', page)
    assert found, key
    return found.group(2), found.group(1).replace("&amp;", "&")


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=BEIJING).astimezone(dt.UTC)


def _expected(db, since: dt.datetime, until: dt.datetime) -> dict[str, str]:  # noqa: ANN001
    manager = db.query(User).filter_by(username="manager").one()
    closed = hazard_stats.closures(db, actor=manager, since=since, until=until)
    raised = alarm_stats.raised_between(db, actor=manager, since=since, until=until)
    judged = raised.true_alarms + raised.false_alarms

    def shown(value: float | None) -> str:
        return "" if value is None else str(value)

    return {
        "on_time_rate": shown(round(100.0 * closed.on_time / closed.with_deadline, 1) if closed.with_deadline
                              else None),
        "mean_days_to_close": shown(None if closed.mean_days_to_close is None else
                                    round(closed.mean_days_to_close, 1)),
        "false_alarm_rate": shown(round(100.0 * raised.false_alarms / judged, 1) if judged else None),
        "mean_minutes_to_ack": shown(None if raised.mean_minutes_to_ack is None else
                                     round(raised.mean_minutes_to_ack, 1)),
        "_closed": str(closed.closed),
    }


def test_custom_period_cards_equal_the_stats_over_those_plant_days(client, db, demo_world) -> None:  # noqa: ANN001
    today = dt.datetime.now(BEIJING).date()
    first, last = today - dt.timedelta(days=120), today - dt.timedelta(days=30)
    page = _manager_page(client, period="custom", start=first.isoformat(), end=last.isoformat())
    expected = _expected(db, _midnight(first), _midnight(last + dt.timedelta(days=1)))
    assert int(expected["_closed"]) > 0  # the demo year closed hazards in this window: the check means something
    for key in ("on_time_rate", "mean_days_to_close", "false_alarm_rate", "mean_minutes_to_ack"):
        assert _card(page, key)[0] == expected[key], key
    _, href = _card(page, "on_time_rate")
    end = (last + dt.timedelta(days=1)).isoformat()
    assert f"closed_from={first.isoformat()}" in href and f"closed_to={end}" in href
    assert f"{first.isoformat()} 至 {last.isoformat()}" in page


def test_presets_differ_and_each_matches_its_window(client, db, demo_world) -> None:  # noqa: ANN001
    shown = {}
    for key in ("7", "90", "year"):
        page = _manager_page(client, period=key)
        chosen = choose_period(key, None, None, dt.datetime.now(dt.UTC))
        # the page was computed a moment earlier than `chosen`; the closures of a demo built at midnight agree
        expected = _expected(db, chosen.period.since, chosen.period.until)
        assert _card(page, "mean_days_to_close")[0] == expected["mean_days_to_close"], key
        shown[key] = expected["_closed"]
        assert f'id="pp-{key}" name="period" value="{key}" checked' in page
    assert int(shown["7"]) < int(shown["90"])


def test_this_year_starts_on_january_first_plant_time() -> None:
    now = dt.datetime(2026, 3, 10, 17, 0, tzinfo=dt.UTC)  # 11 March 01:00 in Beijing
    chosen = choose_period("year", None, None, now)
    assert chosen.period.since == dt.datetime(2025, 12, 31, 16, 0, tzinfo=dt.UTC)
    assert chosen.last_day == dt.date(2026, 3, 11)


def test_bad_custom_dates_fall_back_to_30_days_and_say_so(client, small_demo) -> None:  # noqa: ANN001
    page = _manager_page(client, period="custom", start="2026-05-01", end="2026-04-01")
    assert 'data-testid="period-invalid"' in page and 'id="pp-30" name="period" value="30" checked' in page


def add_second_site(db) -> None:  # noqa: ANN001
    """The demo plant has one site; a second one with an area makes the selector matter."""
    from hazardloop.plant import service as plant
    from hazardloop.plant.models import AreaCreate, SiteCreate

    admin = db.query(User).filter_by(username="admin").one()
    site = plant.create_site(db, actor=admin, data=SiteCreate(code="S2", name_zh="二厂区", name_en="Works No. 2"))
    plant.create_area(db, actor=admin, data=AreaCreate(site_id=site.id, code="S2-TANK", name_zh="二厂罐区",
                                                       name_en="Tank farm 2", risk_grade="orange",
                                                       polygon=[[50, 50], [400, 50], [400, 300], [50, 300]]))


def test_every_site_is_offered_on_the_plan(client, db, small_demo) -> None:  # noqa: ANN001
    assert 'id="plan-site"' not in _manager_page(client)  # one site: nothing to choose
    add_second_site(db)
    page = _manager_page(client, period="90")
    options = page.split('id="plan-site"')[1].split("</select>")[0]
    assert re.findall(r'<option value="\d+"[^>]*>(S\d) ·', options) == ["S1", "S2"]
    second = re.search(r'<option value="(\d+)"[^>]*>S2 ·', options).group(1)
    chosen = _manager_page(client, period="90", site=second)
    assert f'data-site="{second}"' in chosen and 'name="period" value="90"' in chosen


def test_the_heatmap_follows_the_period_and_the_plan_says_it_does_not(client, db, demo_world) -> None:  # noqa: ANN001
    import json

    from hazardloop.hazards import service as hazards

    manager = db.query(User).filter_by(username="manager").one()
    today = dt.datetime.now(BEIJING).date()
    first, last = today - dt.timedelta(days=120), today - dt.timedelta(days=30)
    page = _manager_page(client, period="custom", start=first.isoformat(), end=last.isoformat())
    data = json.loads(re.search(r'id="cockpit-data">(.*?)</script>', page, re.S).group(1))
    f = hazards.HazardFilter(found_from=_midnight(first), found_to=_midnight(last + dt.timedelta(days=1)))
    in_window = [h for h in hazards.list_for_user(db, actor=manager, filters=f, limit=None)[0] if h.category]
    assert 0 < sum(c["count"] for c in data["heatmap"]) == len(in_window)
    everything = [h for h in hazards.list_for_user(db, actor=manager, limit=None)[0] if h.category]
    assert len(everything) > len(in_window)  # the window mattered
    cell = data["heatmap"][0]
    assert f"found_from={first.isoformat()}" in cell["drill"]["href"] and cell["drill"]["exact"]
    assert f"{first.isoformat()} 至 {last.isoformat()}" in page.split('data-testid="heatmap-hint"')[1][:200]
    assert "风险等级" in page.split('data-testid="plan-hint"')[1][:200]


def test_an_empty_english_unit_stays_empty_instead_of_showing_the_chinese_one() -> None:
    from hazardloop.web.i18n import translate

    assert translate("cockpit.unit.count", "zh-CN") == "项"
    assert translate("cockpit.unit.count", "en") == ""
    assert translate("no.such.key", "en") == "no.such.key"

"""The 驾驶舱 in a real browser: every chart draws, and a number clicked opens the list that has that many rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hazardloop.demo.build import DEMO_PASSWORD, build_demo

pytestmark = pytest.mark.browser

CHARTS = ("chart-plan", "chart-heatmap", "chart-trend", "chart-progress", "chart-top")


@pytest.fixture
def demo_world(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path, seed=1, days=1, hazards_per_day=0.5)


def _login_to_cockpit(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/cockpit")
    page.fill("input[name=username]", "manager")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/cockpit")
    page.wait_for_selector("#cockpit[data-ready='1']")


def _list_total(page) -> int:  # noqa: ANN001
    """The total the hazard list states in its summary line."""
    page.wait_for_url(re.compile(r"/hazards\?"))
    text = page.inner_text("[data-testid=hazard-count]")
    numbers = re.findall(r"\d+", text)
    assert numbers, text
    return int(numbers[0])


def test_manager_sees_every_chart_drawn(browser, live_server, demo_world, screenshot) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _login_to_cockpit(page, live_server)
    for chart in CHARTS:
        assert page.locator(f"#{chart} canvas").count() >= 1, chart
    assert page.get_attribute("#chart-heatmap", "data-empty") is None
    assert page.get_attribute("#chart-trend", "data-empty") is None
    assert "未闭环隐患" in page.inner_text("[data-testid=kpis]")
    page.wait_for_timeout(1200)  # let the charts' entry animation finish before the picture
    assert screenshot(page, "cockpit-zh") > 20_000
    page.click("a.lang")
    page.wait_for_selector("#cockpit[data-ready='1']")
    assert "Open hazards" in page.inner_text("[data-testid=kpis]")
    page.wait_for_timeout(1200)
    assert screenshot(page, "cockpit-en") > 20_000


def test_clicking_the_overdue_kpi_opens_a_list_of_that_many(browser, live_server, demo_world,
                                                            screenshot) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _login_to_cockpit(page, live_server)
    shown = int(page.get_attribute("[data-testid=kpi-overdue_hazards]", "data-value"))
    page.click("[data-testid=kpi-overdue_hazards]")
    assert "overdue=true" in page.url
    assert _list_total(page) == shown
    page.goto(f"{live_server}/hazards")
    assert screenshot(page, "hazard-list") > 20_000
    page.locator("[data-testid=hazard-row] a").first.click()
    page.wait_for_url(re.compile(r"/hazards/\d+$"))
    assert screenshot(page, "hazard-detail") > 20_000


def test_clicking_a_heatmap_cell_opens_its_area_and_category(browser, live_server, demo_world) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _login_to_cockpit(page, live_server)
    page.locator("#chart-heatmap").scroll_into_view_if_needed()
    cell = page.evaluate(
        """() => {
            const chart = echarts.getInstanceByDom(document.getElementById('chart-heatmap'));
            const datum = chart.getOption().series[0].data[0];
            const [x, y] = chart.convertToPixel({seriesIndex: 0}, datum.value.slice(0, 2));
            const box = document.getElementById('chart-heatmap').getBoundingClientRect();
            return {x: box.left + x, y: box.top + y, count: datum.value[2]};
        }"""
    )
    page.mouse.click(cell["x"], cell["y"])
    page.wait_for_url(re.compile(r"/hazards\?area_id=\d+&category=\w+"))
    assert _list_total(page) == cell["count"]


def test_every_count_card_equals_the_service_query_and_the_list_it_opens(browser, live_server, db,
                                                                          demo_world) -> None:  # noqa: ANN001
    """The numbers as the browser shows them, against the hazard and alarm services asked directly
    (the same actor, so the same area scope), then against the list each card opens."""
    from hazardloop.alarms import service as alarms
    from hazardloop.analytics.metrics import plant_day_start
    from hazardloop.auth.models import User
    from hazardloop.db import utcnow
    from hazardloop.hazards import service as hazards

    manager = db.query(User).filter_by(username="manager").one()
    now = utcnow()

    def hazard_total(**f: object) -> int:
        return hazards.list_for_user(db, actor=manager, filters=hazards.HazardFilter(**f), limit=1, now=now)[1]

    expected = {
        "open_hazards": hazard_total(open_only=True),
        "overdue_hazards": hazard_total(overdue=True),
        "major_open": hazard_total(major=True, open_only=True),
        "alarms_today": alarms.list_for_user(
            db, actor=manager, filters=alarms.AlarmFilter(raised_from=plant_day_start(now)), limit=1, now=now
        )[1],
    }
    assert expected["open_hazards"] > 0 and expected["alarms_today"] >= 0
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _login_to_cockpit(page, live_server)
    for key, count in expected.items():
        card = page.locator(f"[data-testid=kpi-{key}]")
        assert int(card.get_attribute("data-value")) == count, key
        assert str(count) in card.inner_text(), key
    for key in ("open_hazards", "major_open"):
        page.click(f"[data-testid=kpi-{key}]")
        assert _list_total(page) == expected[key], key
        page.go_back()
        page.wait_for_selector("#cockpit[data-ready='1']")
    page.click("[data-testid=kpi-alarms_today]")
    page.wait_for_url(re.compile(r"/alarms\?"))
    assert int(page.get_attribute("[data-testid=alarm-shown]", "data-total")) == expected["alarms_today"]

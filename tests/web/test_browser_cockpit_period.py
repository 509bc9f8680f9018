"""The 驾驶舱 period picker and site selector in a real browser: a preset applies at once, custom
dates apply with the button, the cards still lead to their lists, and every site's plan can be drawn."""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_cockpit_period import add_second_site  # noqa: E402

from hazardloop.demo.build import DEMO_PASSWORD, build_demo  # noqa: E402
from hazardloop.hazards.ledger import BEIJING  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_world(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path, seed=1, days=1, hazards_per_day=0.5)
    add_second_site(db)


def _login(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/cockpit")
    page.fill("input[name=username]", "manager")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/cockpit")
    page.wait_for_selector("#cockpit[data-ready='1']")


def _plan_areas(page) -> list[str]:  # noqa: ANN001
    """The area codes the plan has drawn (cockpit.js notes them on the chart element)."""
    return (page.get_attribute("#chart-plan", "data-areas") or "").split()


def test_period_presets_and_custom_dates_change_the_cards(browser, live_server, demo_world,
                                                          screenshot) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _login(page, live_server)
    assert page.is_checked("#pp-30")
    page.check("#pp-90")
    page.wait_for_url(re.compile(r"period=90"))
    page.wait_for_selector("#cockpit[data-ready='1']")
    ninety = page.inner_text("[data-testid=kpi-mean_days_to_close] .kpi-sub")

    today = dt.datetime.now(BEIJING).date()
    first, last = today - dt.timedelta(days=200), today - dt.timedelta(days=150)
    page.check("#pp-custom")
    page.fill("#pp-start", first.isoformat())
    page.fill("#pp-end", last.isoformat())
    page.click("[data-testid=period-apply]")
    page.wait_for_url(re.compile(r"period=custom"))
    page.wait_for_selector("#cockpit[data-ready='1']")
    assert f"{first.isoformat()} 至 {last.isoformat()}" in page.inner_text("[data-testid=period-text]")
    assert page.inner_text("[data-testid=kpi-mean_days_to_close] .kpi-sub") != ninety
    href = page.get_attribute("[data-testid=kpi-on_time_rate]", "href")
    assert f"closed_from={first.isoformat()}" in href
    assert screenshot(page, "cockpit-period") > 20_000
    page.click("[data-testid=kpi-on_time_rate]")
    page.wait_for_url(re.compile(r"/hazards\?.*closed_from="))


def test_site_selector_draws_the_other_sites_plan(browser, live_server, demo_world) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _login(page, live_server)
    assert "TANK" in _plan_areas(page) and "S2-TANK" not in _plan_areas(page)
    page.select_option("[data-testid=site-select]", label="S2 · 二厂区")
    page.wait_for_function("document.getElementById('chart-plan').dataset.areas === 'S2-TANK'")
    assert _plan_areas(page) == ["S2-TANK"] and "site=" in page.url
    page.check("#pp-7")  # the chosen site survives a period change
    page.wait_for_url(re.compile(r"period=7"))
    page.wait_for_selector("#cockpit[data-ready='1']")
    assert _plan_areas(page) == ["S2-TANK"]

"""The 报警台 in a real browser, as an operator on the demo plant: an alarm raised while the page is
open appears by itself; the operator acknowledges it, judges it, shelves it for maintenance, ends
the shelf and turns it into a hazard draft, each without leaving the console."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hazardloop.alarms import service
from hazardloop.alarms.models import Alarm
from hazardloop.alarms.service import SensorRef
from hazardloop.db import utcnow
from hazardloop.demo.build import DEMO_PASSWORD, build_demo
from hazardloop.hazards.models import Hazard
from hazardloop.plant.models import Area, Sensor
from hazardloop.readings.views import store_for

pytestmark = pytest.mark.browser

POLL_WAIT_MS = 15_000  # the table polls every 5 s


@pytest.fixture
def demo_world(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path, seed=1, days=1, hazards_per_day=0.1)


def _raise(db, app) -> Alarm:  # noqa: ANN001
    """A high-high alarm on a tank-farm gas detector, after 20 minutes of readings climbing to it."""
    tank = db.query(Area).filter_by(code="TANK").one()
    sensor = db.query(Sensor).filter_by(area_id=tank.id, kind="combustible_gas").order_by(Sensor.tag).first()
    feed = getattr(app.state, "live_feed", None)
    if feed is not None:  # these readings are for the chart only: live detection must not raise its own alarm
        feed.stop()
    end = int(utcnow().timestamp() * 1000)
    ts = np.arange(end - 20 * 60_000, end, 5_000, dtype=np.int64)
    climb = np.linspace(8.0, 62.0, len(ts)) + np.random.default_rng(1).normal(0, 1.5, len(ts))
    store_for(app.state).insert(np.full(len(ts), sensor.id), ts, climb)
    alarm, _ = service.raise_or_update(
        db, sensor=SensorRef(id=sensor.id, tag=sensor.tag, area_id=sensor.area_id, unit=sensor.unit),
        alarm_type="limit_hh", at=utcnow(), value=62.0, reason=f"{sensor.tag} 高于高高限（浏览器测试）",
    )
    return alarm


def test_operator_works_a_live_alarm_from_the_console(browser, live_server, app, demo_world, db,
                                                      screenshot) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{live_server}/alarms")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/alarms")
    page.wait_for_selector("[data-testid=alarm-table]")

    alarm = _raise(db, app)  # after the page loaded: only the live refresh can show it
    row = f"#alarm-{alarm.id}"
    page.wait_for_selector(row, timeout=POLL_WAIT_MS)
    assert "高于高高限（浏览器测试）" in page.inner_text(row)

    page.click(f"{row} [data-testid=ack-form] button")
    page.wait_for_selector(f"{row} [data-testid=acked]")

    page.click(f"{row} .al-verdict:not(.al-shelve) summary")
    page.check(f"{row} input[name=verdict][value=true_alarm]")
    page.fill(f"{row} textarea[name=comment]", "现场确认泄漏，已关阀")
    page.click(f"{row} [data-testid=verdict-form] button[type=submit]")
    page.wait_for_selector(f"{row} [data-testid=verdict]")

    page.click(f"{row} .al-shelve summary")
    page.fill(f"{row} [data-testid=shelve-form] input[name=reason]", "动火作业票 2026-118")
    page.select_option(f"{row} [data-testid=shelve-form] select[name=hours]", "2")
    page.click(f"{row} [data-testid=shelve-form] button[type=submit]")
    page.wait_for_selector(f"{row} .is-shelved")
    assert screenshot(page, "alarm-console") > 20_000
    page.click(f"{row} [data-testid=unshelve-form] button")
    page.wait_for_selector(f"{row} [data-testid=shelve-form]", state="attached")

    page.click(f"{row} [data-testid=to-hazard-form] button")
    page.wait_for_selector(f"{row} [data-testid=hazard-link]")

    db.expire_all()
    stored = db.get(Alarm, alarm.id)
    assert stored.acknowledged and stored.verdict == "true_alarm" and stored.verdict_comment == "现场确认泄漏，已关阀"
    assert stored.shelve_reason == "动火作业票 2026-118" and not stored.is_shelved(utcnow())
    hazard = db.get(Hazard, stored.hazard_id)
    assert hazard.state == "DRAFT" and hazard.source_ref == f"alarm:{alarm.id}"
    page.click(f"{row} [data-testid=hazard-link]")
    page.wait_for_url(f"{live_server}/hazards/{hazard.id}")

    page.goto(f"{live_server}/alarms/{alarm.id}")
    page.wait_for_selector("#alarm-chart[data-ready='1']")
    drawn = page.evaluate(
        """() => { const o = echarts.getInstanceByDom(document.getElementById('alarm-chart')).getOption();
            return {legend: o.legend[0].data, tooltip: o.tooltip[0].trigger, area: o.series[0].markArea.data.length,
                    title: o.title[0].text, points: o.series[0].data.length}; }"""
    )
    assert drawn["legend"] and drawn["tooltip"] == "axis" and drawn["area"] == 1 and drawn["points"] > 10
    assert "高于高高限（浏览器测试）" in drawn["title"]  # the reason, on the chart itself
    page.wait_for_timeout(800)  # the chart's entry animation
    assert screenshot(page, "alarm-detail") > 20_000

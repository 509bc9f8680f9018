"""系统管理 in a real browser, on the demo plant: an admin adds a sensor with alarm limits, a user
with one area (who then logs in and sees only that area), and a webhook channel whose "send test
message" reaches an HTTP server this test runs."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hazardloop.auth.models import User
from hazardloop.demo.build import DEMO_PASSWORD, build_demo
from hazardloop.plant.models import Sensor

pytestmark = pytest.mark.browser

SECRET = "webhook-signing-secret-42"


@pytest.fixture
def demo_world(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path, seed=1, days=1, hazards_per_day=0.1)


def _login(page, base: str, username: str, password: str = DEMO_PASSWORD, landing: str = "/cockpit") -> None:  # noqa: ANN001
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{landing}*")


def _field_error(page, name: str) -> str:  # noqa: ANN001
    return page.inner_text(f"[data-testid=field-{name}] [role=alert]")


def test_admin_adds_a_sensor_with_limits_and_sees_errors_beside_fields(
    browser, live_server, demo_world, db, screenshot
) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, live_server, "admin")
    page.click("[data-testid=nav-admin]")
    page.click("[data-testid=tab-sensors]")
    page.wait_for_selector("[data-testid=sensor-admin-table]")
    assert screenshot(page, "admin-sensors") > 20_000
    everything = page.locator("[data-testid=sensor-row]").count()
    page.select_option("#filter-area", label="BOIL · 锅炉房")  # HTMX swaps the table only
    page.wait_for_url("**/admin/sensors?area_id=*")
    page.wait_for_function(f"document.querySelectorAll('[data-testid=sensor-row]').length < {everything}")
    codes = page.locator("[data-testid=sensor-row] td:nth-child(4)").all_inner_texts()
    assert codes and set(codes) == {"BOIL"}
    page.click("[data-testid=new-sensor]")
    page.fill("#f-tag", "GT-900")
    page.fill("#f-name", "新增储罐可燃气体")
    page.select_option("#f-kind", "combustible_gas")
    page.fill("#f-unit", "%LEL")
    page.select_option("#f-area_id", label="TANK · 罐区")
    page.fill("#f-range_min", "0")
    page.fill("#f-range_max", "100")
    page.fill("#f-h", "60")
    page.fill("#f-hh", "50")
    page.fill("#f-deadband", "2")
    page.fill("#f-on_delay_s", "5")
    page.click("[data-testid=save]")
    page.wait_for_selector("[data-testid=field-hh] [role=alert]")
    assert "H=60.0 must be below HH=50.0" in _field_error(page, "hh")
    assert page.get_attribute("#f-hh", "aria-invalid") == "true"
    assert screenshot(page, "admin-sensor-form") > 20_000
    page.fill("#f-h", "25")
    page.click("[data-testid=save]")
    page.wait_for_selector("[data-testid=done-banner]")
    sensor = db.query(Sensor).filter_by(tag="GT-900").one()
    assert (sensor.h, sensor.hh, sensor.deadband, sensor.on_delay_s, sensor.unit) == (25.0, 50.0, 2.0, 5.0, "%LEL")


def test_new_user_with_one_area_logs_in_and_sees_only_that_area(
    browser, live_server, demo_world, db, screenshot
) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, live_server, "admin")
    page.goto(f"{live_server}/admin/users")
    page.click("[data-testid=new-user]")
    page.fill("#f-username", "boiler.li")
    page.fill("#f-display_name", "李锅炉")
    page.select_option("#f-role", "safety_officer")
    page.fill("#f-password", "boiler-pass-1")
    page.get_by_label("BOIL · 锅炉房").check()
    page.fill("#f-department", "动力车间")
    page.click("[data-testid=save]")
    page.wait_for_selector("[data-testid=done-banner]")
    assert screenshot(page, "admin-user-form") > 20_000
    page.goto(f"{live_server}/admin/users")
    assert "李锅炉" in page.inner_text("[data-testid=user-table]")
    assert screenshot(page, "admin-users") > 20_000
    assert db.query(User).filter_by(username="boiler.li").one().role == "safety_officer"

    page.click("header button[type=submit]")  # log out
    _login(page, live_server, "boiler.li", "boiler-pass-1")
    assert "nav-admin" not in page.content()
    page.goto(f"{live_server}/plant")
    page.wait_for_selector(".area-link")
    links = page.locator(".area-link").all_inner_texts()
    assert links and all("BOIL" in text for text in links)


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[str, list]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/hazardloop-hook", received
    server.shutdown()
    thread.join(timeout=5)


def test_send_test_message_reaches_the_webhook_server(
    browser, live_server, demo_world, hook_server, screenshot
) -> None:  # noqa: ANN001
    url, received = hook_server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, live_server, "admin")
    page.goto(f"{live_server}/admin/channels")
    page.click("[data-testid=new-channel]")
    page.select_option("#kind-picker", "webhook")
    page.wait_for_url("**/admin/channels/new?kind=webhook")
    page.fill("#f-name", "值班系统 webhook")
    page.fill("#f-webhook_url", url)
    page.fill("#f-secret", SECRET)
    page.click("[data-testid=save]")
    page.wait_for_selector("[data-testid=done-banner]")
    assert SECRET not in page.content()
    page.click("[data-testid=channel] [data-testid=test-button]")
    page.wait_for_selector("[data-testid=test-result]")
    assert page.get_attribute("[data-testid=test-result]", "data-status") == "sent"
    assert "送达" in page.inner_text("[data-testid=test-result]")
    assert screenshot(page, "admin-channels") > 10_000
    assert len(received) == 1
    headers, body = received[0]
    stamp = headers["x-hazardloop-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["x-hazardloop-signature"] == f"sha256={expected}"
    assert "测试" in json.loads(body)["text"]


def test_english_admin_shows_the_refusal_in_english(browser, live_server, demo_world) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    _login(page, live_server, "admin")
    page.goto(f"{live_server}/lang/en?next=/admin/sensors/new")
    page.wait_for_selector("text=New sensor")
    page.fill("#f-tag", "GT-901")
    page.select_option("#f-kind", "h2s")
    page.fill("#f-unit", "%LEL")
    page.fill("#f-range_min", "0")
    page.fill("#f-range_max", "50")
    page.click("[data-testid=save]")
    page.wait_for_selector("[data-testid=field-unit] [role=alert]")
    error = _field_error(page, "unit")
    assert error.startswith("Please check this field") and "ppm" in error
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling on a phone
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") in {"A", "BUTTON", "INPUT", "SELECT"}


def test_admin_prints_qr_labels_for_every_area(browser, live_server, demo_world, db, screenshot) -> None:  # noqa: ANN001
    from hazardloop.plant.models import Area

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, live_server, "admin")
    page.goto(f"{live_server}/admin/plant")
    page.click("[data-testid=area-qr]")
    page.wait_for_selector("[data-testid=qr-sheet]")
    labels = page.locator("[data-testid=qr-label]")
    assert labels.count() == db.query(Area).count() > 3
    box = labels.first.locator("svg").bounding_box()
    assert box is not None and 120 <= box["width"] <= 200 and abs(box["width"] - box["height"]) < 1  # square
    first_area = labels.first.get_attribute("data-area")
    assert f"/hazards/new?area={first_area}" in labels.first.inner_text()
    assert screenshot(page, "admin-area-qr") > 20_000
    page.emulate_media(media="print")  # what the printer gets: labels only, no navigation or buttons
    assert not page.locator("nav.ad-tabs").is_visible() and not page.locator("[data-testid=qr-print]").is_visible()
    assert labels.first.is_visible()

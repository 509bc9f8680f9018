"""What a person sees in a real browser: login, the four-colour site plan, the sensors of an area."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazardloop.demo.build import DEMO_PASSWORD, build_demo

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_world(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path, seed=1, days=1, hazards_per_day=0.1)


def _login(page, base: str, username: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/plant")
    assert "/login" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/plant")


def test_officer_logs_in_and_sees_only_granted_areas_on_the_plan(
    browser, live_server, demo_world, screenshot
) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, live_server, "officer")
    page.wait_for_selector(".site-plan[data-ready='1']")
    links = page.locator(".area-link").all_inner_texts()
    assert any("TANK" in text for text in links) and not any("BOIL" in text for text in links)
    page.wait_for_selector("[data-testid=sensor-table]")
    assert "位号" in page.inner_text("[data-testid=sensor-table]")
    page.locator(".area-link", has_text="REACT").click()
    page.wait_for_function("document.querySelector('#area-detail h2').innerText.includes('REACT')")
    assert screenshot(page, "plant") > 10_000


def test_language_switch_renders_the_page_in_english(browser, live_server, demo_world) -> None:  # noqa: ANN001
    page = browser.new_page()
    _login(page, live_server, "viewer")
    page.click("a.lang")
    page.wait_for_selector("text=Plant & sensors")
    assert "Log out" in page.inner_text("header")


def test_wrong_password_shows_the_error_in_chinese(browser, live_server, demo_world, screenshot) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{live_server}/login")
    assert screenshot(page, "login") > 5_000
    page.fill("input[name=username]", "officer")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert "用户名或密码错误" in page.inner_text("[role=alert]")

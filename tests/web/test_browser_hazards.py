"""An inspector on a phone: report a hazard with a photo, see the AI suggestion, then grade and assign it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from hazardloop.demo.build import DEMO_PASSWORD, build_demo

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def demo_world(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path / "demo", seed=1, days=1, hazards_per_day=0.1)


def open_move(page, target: str):  # noqa: ANN001, ANN201
    """Unfold a move's form (a lone move is already unfolded) and return the form."""
    details = page.locator(f"[data-testid=move-{target}]")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    return details.locator("form")


def test_officer_reports_confirms_and_assigns_a_hazard_on_a_phone(
    browser, live_server, demo_world, tmp_path: Path, screenshot
) -> None:  # noqa: ANN001
    photo = tmp_path / "现场.jpg"
    Image.new("RGB", (800, 600), (180, 90, 40)).save(photo, format="JPEG")
    page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(f"{live_server}/hazards/new?area=TANK")
    page.fill("input[name=username]", "officer")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/hazards/new?area=TANK")
    assert "TANK" in page.locator("select[name=area_id] option:checked").inner_text()

    page.fill("input[name=location]", "1号配电室")
    page.locator("textarea[name=description]").press_sequentially("配电箱未接地，电线裸露", delay=20)
    page.wait_for_selector("[data-testid=suggestion-box]")
    assert "电气安全" in page.inner_text("[data-testid=suggested-category]")
    assert "匹配" in page.inner_text("[data-testid=suggested-category]")
    page.check("[data-testid=accept-ai]")
    page.set_input_files("input[name=photo]", str(photo))
    assert screenshot(page, "hazard-report-phone") > 10_000
    page.click("[data-testid=report-submit]")

    page.wait_for_selector("[data-testid=reported-banner]")
    assert "待审核" in page.inner_text("[data-testid=hazard-state]")
    page.wait_for_selector("[data-testid=thumbnail]")
    confirm = open_move(page, "CONFIRMED")
    assert confirm.locator("select[name=category]").input_value() == "electrical"  # the accepted suggestion
    assert confirm.locator("select[name=accident_type]").input_value() == "05"  # prefilled from the AI
    page.screenshot(path=str(tmp_path / "2-detail.png"), full_page=True)
    confirm.locator("button[type=submit]").click()

    page.wait_for_selector("[data-testid=done-banner]")
    assert "已定级" in page.inner_text("[data-testid=hazard-state]")
    assign = open_move(page, "ASSIGNED")
    assign.locator("select[name=responsible_person_id]").select_option(index=1)
    assign.locator("textarea[name=measures]").fill("加装接地线，裸露电线穿管保护")
    assign.locator("button[type=submit]").click()

    page.wait_for_selector("[data-testid=done-banner]")
    assert "待整改" in page.inner_text("[data-testid=hazard-state]")
    assert page.inner_text("[data-testid=field-responsible] dd") != "—"
    page.screenshot(path=str(tmp_path / "3-assigned.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing sideways on a phone

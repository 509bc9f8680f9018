"""One hazard through the whole closed loop to CLOSED in a real browser (issue #6, "Done when").

Each role logs in through the login page, in its own browser context, switches the language with
the link in the top bar and then uses only what the pages show: an operator reports with a photo,
the safety officer grades and assigns with a deadline, the rectifier finds the task under "My
tasks", starts, records the after-photo and submits, and the officer accepts. Expected words come
from the i18n catalogue, so one test body checks both languages and catches a string left in the
other one.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from PIL import Image

from hazardloop.demo.build import DEMO_PASSWORD, build_demo
from hazardloop.hazards import workflow
from hazardloop.hazards.models import HazardState
from hazardloop.web.i18n import translate

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 900}
NAMES = {  # demo/build.py DEMO_PEOPLE display names
    "operator": "赵中控 Zhao (operator)",
    "officer": "李巡检 Li (safety officer)",
    "rectifier": "张维修 Zhang (rectifier)",
    "manager": "王安全 Wang (safety manager)",
}


@pytest.fixture
def demo_world(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path / "demo", seed=1, days=1, hazards_per_day=0.1)


def _photo(tmp_path: Path, name: str, colour: tuple[int, int, int]) -> Path:
    path = tmp_path / name
    Image.new("RGB", (800, 600), colour).save(path, format="JPEG")
    return path


def rule_name(source: HazardState, target: HazardState, lang: str) -> str:
    rule = next(r for r in workflow.rules() if r.source is source and r.target is target)
    return rule.name_zh if lang == "zh-CN" else rule.name_en


class Person:
    """One role at its own browser: logged in through the login page, in the language it chose there."""

    def __init__(self, browser, live_server: str, username: str, lang: str) -> None:  # noqa: ANN001
        self.base = live_server
        self.lang = lang
        self.context = browser.new_context(viewport=DESKTOP)
        self.page = self.context.new_page()
        page = self.page
        page.goto(f"{live_server}/login")
        if page.get_attribute("html", "lang") != lang:
            page.click("header a.lang")
            page.wait_for_function(f"document.documentElement.lang === {lang!r}")
        assert page.inner_text("h1") == translate("login.title", lang)
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_selector("[data-testid=who]")
        assert NAMES[username] in page.inner_text("[data-testid=who]")
        assert page.get_attribute("html", "lang") == lang

    def t(self, key: str, **values: object) -> str:
        return translate(key, self.lang, **values)

    def open_register(self) -> None:
        self.page.click(f"nav a:has-text('{self.t('nav.hazards')}')")
        self.page.wait_for_selector("[data-testid=hazard-results]")

    def open_hazard(self, number: str) -> None:
        """From the register, by typing the number into the search box, as a person told it would."""
        self.open_register()
        self.page.fill("input[name=q]", number)
        self.page.locator(f"[data-testid=hazard-row] a:text-is('{number}')").click()
        self.page.wait_for_selector("[data-testid=hazard-number]")
        assert self.page.inner_text("[data-testid=hazard-number]") == number

    def move(self, target: HazardState):  # noqa: ANN201
        """Unfold a move's form (a lone move is already unfolded) and return it."""
        details = self.page.locator(f"[data-testid=move-{target.value}]")
        if details.get_attribute("open") is None:
            details.locator("summary").click()
        return details.locator("form")

    def submit(self, form, target: HazardState) -> None:  # noqa: ANN001
        form.locator("button[type=submit]").click()
        self.page.wait_for_selector("[data-testid=done-banner], [data-testid=move-error]")
        errors = self.page.locator("[data-testid=move-error]")
        assert errors.count() == 0, errors.first.inner_text()
        assert self.page.inner_text("[data-testid=done-banner]") == self.t(
            "hazard.moved_ok", state=self.t(f"state.{target.value}")
        )
        self.expect_state(target)

    def expect_state(self, state: HazardState) -> None:
        assert self.page.inner_text("[data-testid=hazard-state]") == self.t(f"state.{state.value}")

    def close(self) -> None:
        self.context.close()


def report(person: Person, photo: Path, description: str) -> str:
    """Report from the register's button, with a photo; returns the hazard number."""
    page = person.page
    person.open_register()
    page.click("[data-testid=report-link]")
    page.locator("select[name=area_id]").select_option(
        label=page.locator("select[name=area_id] option", has_text="TANK").first.inner_text()
    )
    page.fill("input[name=location]", "1号配电室 / Switch room 1")
    page.fill("textarea[name=description]", description)
    page.set_input_files("input[name=photo]", str(photo))
    page.click("[data-testid=report-submit]")
    page.wait_for_selector("[data-testid=reported-banner]")
    person.expect_state(HazardState.REPORTED)
    page.wait_for_selector("[data-testid=thumbnail]")
    return page.inner_text("[data-testid=hazard-number]")


def grade(person: Person, level: str) -> None:
    form = person.move(HazardState.CONFIRMED)
    form.locator("select[name=level]").select_option(level)
    form.locator("select[name=category]").select_option("electrical")
    form.locator("select[name=accident_type]").select_option("05")
    if level == "major":
        form.locator("textarea[name=judgement_basis]").fill(
            "重大事故隐患判定标准 第三条 / major-hazard criteria art. 3"
        )
    person.submit(form, HazardState.CONFIRMED)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_hazard_goes_round_the_whole_loop_to_closed(
    browser, live_server, demo_world, tmp_path: Path, screenshot, lang: str
) -> None:  # noqa: ANN001
    suffix = "" if lang == "zh-CN" else "-en"
    before = _photo(tmp_path, "before.jpg", (180, 90, 40))
    after = _photo(tmp_path, "after.jpg", (60, 140, 60))

    # 1. an operator on the round reports it with a photo
    operator = Person(browser, live_server, "operator", lang)
    number = report(operator, before, "配电箱未接地，电线裸露 / switch box not earthed, bare wires")
    operator.close()

    # 2. the safety officer grades it and issues the rectification notice with a deadline
    officer = Person(browser, live_server, "officer", lang)
    officer.open_hazard(number)
    grade(officer, "general")
    assign = officer.move(HazardState.ASSIGNED)
    assign.locator("select[name=responsible_person_id]").select_option(
        label=assign.locator("select[name=responsible_person_id] option", has_text=NAMES["rectifier"]).inner_text()
    )
    deadline = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    assign.locator("input[name=deadline]").fill(deadline)
    assign.locator("textarea[name=measures]").fill("加装接地线，裸露电线穿管保护")
    officer.submit(assign, HazardState.ASSIGNED)
    assert officer.page.inner_text("[data-testid=field-responsible] dd") == NAMES["rectifier"]
    assert deadline in officer.page.inner_text("[data-testid=field-deadline] dd")
    officer.close()

    # 3. the rectifier finds the task under "My tasks" in the top bar, starts and submits with an after-photo
    rectifier = Person(browser, live_server, "rectifier", lang)
    page = rectifier.page
    page.click(f"nav a:has-text('{rectifier.t('nav.my_tasks')}')")
    page.wait_for_url("**mine=true**")
    assert page.locator("[data-testid=filter-mine]").is_checked()
    rows = page.locator("[data-testid=hazard-row]")
    assert rows.count() >= 1
    for i in range(rows.count()):  # every row is the rectifier's own
        assert rows.nth(i).locator("[data-testid=row-responsible]").inner_text() == NAMES["rectifier"]
    row = page.locator("[data-testid=hazard-row]", has_text=number)
    assert row.count() == 1
    assert rectifier.t("state.ASSIGNED") in row.inner_text()
    assert row.locator("[data-testid=row-responsible]").inner_text() == NAMES["rectifier"]
    assert screenshot(page, f"closed-loop-rectifier-tasks{suffix}") > 10_000
    row.locator(f"a:text-is('{number}')").click()
    page.wait_for_selector("[data-testid=hazard-number]")
    start = rectifier.move(HazardState.RECTIFYING)
    rectifier.submit(start, HazardState.RECTIFYING)
    done = rectifier.move(HazardState.PENDING_ACCEPTANCE)
    done.locator("textarea[name=note]").fill("已加装接地线，电线穿管 / earthed, wires in conduit")
    done.locator("input[name=photo_after]").set_input_files(str(after))
    assert screenshot(page, f"closed-loop-rectification{suffix}") > 10_000
    rectifier.submit(done, HazardState.PENDING_ACCEPTANCE)
    assert page.locator("[data-testid=photos] [data-testid=thumbnail]").count() == 2  # before and after
    rectifier.close()

    # 4. the officer (not the rectifier: 谁整改不验收) accepts and closes it
    officer = Person(browser, live_server, "officer", lang)
    officer.open_hazard(number)
    officer.expect_state(HazardState.PENDING_ACCEPTANCE)
    accept = officer.move(HazardState.CLOSED)
    accept.locator("textarea[name=note]").fill("现场复查合格 / checked on site")
    officer.submit(accept, HazardState.CLOSED)
    assert screenshot(officer.page, f"closed-loop-closed{suffix}") > 10_000

    # 5. the timeline tells every step and who did it
    steps = [
        (HazardState.REPORTED, HazardState.CONFIRMED, "officer"),
        (HazardState.CONFIRMED, HazardState.ASSIGNED, "officer"),
        (HazardState.ASSIGNED, HazardState.RECTIFYING, "rectifier"),
        (HazardState.RECTIFYING, HazardState.PENDING_ACCEPTANCE, "rectifier"),
        (HazardState.PENDING_ACCEPTANCE, HazardState.CLOSED, "officer"),
    ]
    timeline = officer.page.locator("[data-testid=timeline] li")
    created = timeline.filter(has_text=officer.t("hazard.event.created"))
    assert NAMES["operator"] in created.first.inner_text()
    for source, target, who in steps:
        entry = timeline.filter(has_text=rule_name(source, target, lang))
        assert entry.count() == 1, (source, target)
        assert NAMES[who] in entry.inner_text()
    officer.page.locator("[data-testid=timeline]").scroll_into_view_if_needed()
    assert screenshot(officer.page, f"closed-loop-timeline{suffix}") > 10_000
    officer.close()


def test_a_major_hazard_asks_for_a_treatment_plan_and_the_managers_approval(
    browser, live_server, demo_world, tmp_path: Path, screenshot
) -> None:  # noqa: ANN001
    lang = "zh-CN"
    officer = Person(browser, live_server, "officer", lang)
    number = report(
        officer, _photo(tmp_path, "major.jpg", (200, 40, 40)), "储罐区可燃气体报警器失效 / gas detector dead"
    )
    grade(officer, "major")
    # a major hazard cannot be assigned straight away: the treatment plan comes first
    assert officer.page.locator(f"[data-testid=move-{HazardState.ASSIGNED.value}]").count() == 0
    plan = officer.move(HazardState.PLAN_PENDING)
    for part in workflow.TREATMENT_PLAN_PARTS:
        plan.locator(f"textarea[name=plan_{part}]").fill(f"{part}: 按方案执行")
    for part in workflow.FIVE_IMPLEMENTATIONS:
        plan.locator(f"input[name=five_{part}]").fill(f"{part}: 已落实")
    officer.submit(plan, HazardState.PLAN_PENDING)
    assert officer.page.locator("[data-testid=no-actions]").count() == 1  # only the manager approves
    officer.close()

    manager = Person(browser, live_server, "manager", lang)
    manager.open_hazard(number)
    approve = manager.move(HazardState.ASSIGNED)
    assert (
        rule_name(HazardState.PLAN_PENDING, HazardState.ASSIGNED, lang)
        in approve.locator("xpath=..").locator("summary").inner_text()
    )
    approve.locator("select[name=responsible_person_id]").select_option(
        label=approve.locator("select[name=responsible_person_id] option", has_text=NAMES["rectifier"]).inner_text()
    )
    approve.locator("textarea[name=measures]").fill("更换报警器并联锁")
    assert screenshot(manager.page, "closed-loop-major-plan-approval") > 10_000
    manager.submit(approve, HazardState.ASSIGNED)
    manager.close()


@pytest.mark.parametrize(("lang", "words"), [("zh-CN", "请选择隐患类别"), ("en", "Choose the hazard category")])
def test_a_refused_move_says_why_in_the_language_of_the_page(
    client, demo_world, tmp_path: Path, lang: str, words: str
) -> None:  # noqa: ANN001
    """The workflow explains refusals in English (the API's words); the page must not."""
    client.get(f"/lang/{lang}")
    client.post("/login", data={"username": "officer", "password": DEMO_PASSWORD, "next": "/hazards"})
    form = client.get("/hazards/new", params={"area": "TANK"}).text
    area_id = re.search(r'<option value="(\d+)" selected>TANK', form).group(1)  # the QR code's preselection
    reported = client.post("/hazards/new", data={"area_id": area_id, "description": "消防通道堵塞"})
    hazard_url = str(reported.url).split("?", 1)[0]
    refused = client.post(f"{hazard_url}/move", data={"to": "CONFIRMED", "level": "general", "accident_type": "01"})
    assert refused.status_code == 409
    banner = re.search(r'data-testid="move-error"[^>]*>(.*?)</p>', refused.text, re.S).group(1)
    assert words in banner
    assert "is required" not in banner  # the workflow's English stays out of the words shown

"""The hazard screens as a person uses them: the register, one hazard and its moves, the quick report."""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hazards"))

from helpers import make_hazard  # noqa: E402
from world import PASSWORD, World, build_world  # noqa: E402

from hazardloop.auth.roles import Role  # noqa: E402
from hazardloop.db import utcnow  # noqa: E402
from hazardloop.hazards.models import Attachment, Hazard, HazardState  # noqa: E402


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


def login(client, username: str) -> None:  # noqa: ANN001
    response = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/hazards"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def moves_shown(html: str) -> set[str]:
    return set(re.findall(r'data-testid="move-([A-Z_]+)"', html))


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 60, 40)).save(out, format="JPEG")
    return out.getvalue()


def test_list_filters_by_state_and_keeps_the_filters_in_the_export_links(client, db, world: World) -> None:  # noqa: ANN001
    reported = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None)
    closed = make_hazard(db, state=HazardState.CLOSED, area_id=world.area_a, responsible_id=None)
    login(client, "safety_officer")
    page = client.get("/hazards", params={"state": "REPORTED"}).text
    assert reported.number in page and closed.number not in page
    assert "/api/v1/hazards/export.xlsx?state=REPORTED" in page and "/api/v1/hazards/export.csv?state=REPORTED" in page
    assert "共 1 条" in page


def test_overdue_hazards_are_highlighted_and_filterable(client, db, world: World) -> None:  # noqa: ANN001
    late = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, responsible_id=None,
                       deadline=utcnow() - dt.timedelta(days=3))
    on_time = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, responsible_id=None,
                          deadline=utcnow() + dt.timedelta(days=3))
    login(client, "safety_officer")
    page = client.get("/hazards", params={"overdue": "true"}).text
    assert late.number in page and on_time.number not in page
    assert 'class="is-overdue' in page and "超期 3 天" in page


def test_an_htmx_filter_change_gets_only_the_results(client, db, world: World) -> None:  # noqa: ANN001
    make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None, description="消防通道堵塞")
    login(client, "safety_officer")
    partial = client.get("/hazards", params={"q": "消防"}, headers={"HX-Request": "true"}).text
    assert partial.lstrip().startswith('<section class="card" id="hazard-results"') and "消防通道堵塞" in partial
    empty = client.get("/hazards", params={"q": "不存在的隐患"}, headers={"HX-Request": "true"}).text
    assert 'data-testid="hazard-empty"' in empty


def test_a_scoped_user_never_sees_another_areas_hazard(client, db, world: World) -> None:  # noqa: ANN001
    mine = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None)
    other = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_b, responsible_id=None)
    login(client, "safety_officer")
    page = client.get("/hazards").text
    assert mine.number in page and other.number not in page
    assert client.get("/hazards", params={"area_id": world.area_b}).text.count('data-testid="hazard-row"') == 0
    missing = client.get(f"/hazards/{other.id}")
    assert missing.status_code == 404 and "无权查看" in missing.text


def test_detail_offers_exactly_the_moves_the_workflow_allows_each_role(client, db, world: World) -> None:  # noqa: ANN001
    rectifier = world.users[Role.RECTIFIER]
    reported = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None)
    assigned = make_hazard(db, state=HazardState.ASSIGNED, area_id=world.area_a, responsible_id=rectifier.id)
    login(client, "safety_officer")
    assert moves_shown(client.get(f"/hazards/{reported.id}").text) == {"CONFIRMED", "REJECTED", "CLOSED"}
    assert moves_shown(client.get(f"/hazards/{assigned.id}").text) == set()
    login(client, "rectifier")
    assert moves_shown(client.get(f"/hazards/{assigned.id}").text) == {"RECTIFYING"}
    assert moves_shown(client.get(f"/hazards/{reported.id}").text) == set()
    login(client, "viewer")
    page = client.get(f"/hazards/{reported.id}").text
    assert moves_shown(page) == set() and 'data-testid="no-actions"' in page and "comment-form" not in page


def test_each_move_form_shows_only_the_fields_its_rule_needs(client, db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None)
    login(client, "safety_officer")
    page = client.get(f"/hazards/{hazard.id}").text
    confirm = page.split('data-testid="move-CONFIRMED"')[1].split("</details>")[0]
    assert 'name="level"' in confirm and 'name="accident_type"' in confirm and 'name="measures"' not in confirm
    fast = page.split('data-testid="move-CLOSED"')[1].split("</details>")[0]
    assert 'name="photo_before"' in fast and 'name="photo_after"' in fast
    assert 'value="major"' not in fast  # 立查立改 is for general hazards only


def test_confirming_and_assigning_through_the_forms_moves_the_hazard(client, db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None)
    login(client, "safety_officer")
    form = {"to": "CONFIRMED", "level": "general", "category": "fire", "accident_type": "07"}
    response = client.post(f"/hazards/{hazard.id}/move", data=form, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/hazards/{hazard.id}?done=CONFIRMED"
    page = client.get(response.headers["location"]).text
    assert "已定级" in page and "消防安全" in page and 'data-testid="move-ASSIGNED"' in page
    rectifier = world.users[Role.RECTIFIER]
    deadline = (utcnow() + dt.timedelta(days=10)).date().isoformat()
    form = {"to": "ASSIGNED", "responsible_person_id": str(rectifier.id), "measures": "清理通道", "deadline": deadline}
    assert client.post(f"/hazards/{hazard.id}/move", data=form, follow_redirects=False).status_code == 303
    db.expire_all()
    stored = db.get(Hazard, hazard.id)
    assert stored.state == "ASSIGNED" and stored.responsible_person_id == rectifier.id
    beijing = dt.timezone(dt.timedelta(hours=8))
    assert stored.deadline.astimezone(beijing).strftime("%Y-%m-%d %H:%M") == f"{deadline} 23:59"


def test_a_refused_move_shows_the_reason_beside_its_form(client, db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None)
    login(client, "safety_officer")
    response = client.post(f"/hazards/{hazard.id}/move", data={"to": "REJECTED", "note": ""})
    assert response.status_code == 409
    assert 'data-testid="move-error"' in response.text and "give a reason" in response.text
    assert db.get(Hazard, hazard.id).state == "REPORTED"


def test_a_bad_field_is_named_and_the_typed_values_are_kept(client, db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=HazardState.CONFIRMED, area_id=world.area_a, responsible_id=None)
    login(client, "safety_officer")
    form = {"to": "ASSIGNED", "responsible_person_id": str(world.users[Role.RECTIFIER].id), "measures": "更换插座",
            "deadline": "2020-01-01"}
    response = client.post(f"/hazards/{hazard.id}/move", data=form)
    assert response.status_code == 422 and "the deadline must lie in the future" in response.text
    assert "更换插座" in response.text


def test_a_comment_appears_on_the_timeline(client, db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None)
    login(client, "operator")
    response = client.post(f"/hazards/{hazard.id}/comment", data={"text": "现场已拉警戒线"}, follow_redirects=False)
    assert response.status_code == 303
    assert "现场已拉警戒线" in client.get(f"/hazards/{hazard.id}").text


def test_the_report_form_presets_the_area_from_a_qr_code(client, world: World) -> None:  # noqa: ANN001
    login(client, "safety_officer")
    page = client.get("/hazards/new", params={"area": "TANK"}).text
    assert re.search(rf'<option value="{world.area_a}" selected>TANK', page)
    assert 'capture="environment"' in page and 'hx-trigger="keyup changed delay:600ms' in page


def test_the_suggestion_names_category_accident_type_and_why(client, world: World) -> None:  # noqa: ANN001
    login(client, "safety_officer")
    partial = client.post("/hazards/suggest", data={"description": "配电箱未接地，电线裸露"}).text
    assert "电气安全" in partial and "触电" in partial and "匹配：" in partial and "配电箱" in partial
    assert 'name="ai_category" value="electrical"' in partial
    text = "粉尘爆炸危险场所设置在非框架结构的多层建构筑物内"
    major = client.post("/hazards/suggest", data={"description": text}).text
    assert "重大隐患" in major and "第十一条" in major


def test_a_report_with_photo_and_accepted_suggestion_lands_on_its_page(client, db, world: World) -> None:  # noqa: ANN001
    login(client, "operator")
    response = client.post(
        "/hazards/new",
        data={"area_id": str(world.area_a), "location": "配电室", "description": "配电箱未接地，电线裸露",
              "accept_ai": "on", "ai_category": "electrical", "ai_level": "general"},
        files={"photo": ("现场.jpg", jpeg(), "image/jpeg")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    hazard_id = int(re.search(r"/hazards/(\d+)\?reported=1", response.headers["location"]).group(1))
    stored = db.get(Hazard, hazard_id)
    assert stored.state == "REPORTED" and stored.category == "electrical" and stored.level == "general"
    assert stored.ai_suggestion["category"]["code"] == "electrical" and stored.ai_model
    photos = db.query(Attachment).filter_by(hazard_id=hazard_id).all()
    assert [p.phase for p in photos] == ["before"]
    page = client.get(response.headers["location"]).text
    assert 'data-testid="reported-banner"' in page and 'data-testid="thumbnail"' in page


def test_a_second_report_of_the_same_thing_shows_the_possible_duplicate(client, db, world: World) -> None:  # noqa: ANN001
    first = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None,
                        description="配电箱未接地，电线裸露")
    login(client, "operator")
    response = client.post("/hazards/new", data={"area_id": str(world.area_a), "description": "配电箱未接地，电线裸露"},
                           follow_redirects=True)
    assert 'data-testid="duplicate-banner"' in response.text and first.number in response.text


def test_a_report_outside_ones_areas_is_refused_with_the_field(client, world: World) -> None:  # noqa: ANN001
    login(client, "operator")
    response = client.post("/hazards/new", data={"area_id": str(world.area_b), "description": "楼梯扶手松动"})
    assert response.status_code == 422 and 'data-testid="report-error"' in response.text


def test_pages_render_in_english(client, db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None)
    login(client, "safety_officer")
    client.get("/lang/en?next=/hazards")
    listing = client.get("/hazards").text
    assert "Hazard register" in listing and "Rectification deadline" in listing and "整改期限" not in listing
    detail = client.get(f"/hazards/{hazard.id}").text
    assert "Confirm and grade" in detail and "Electrical safety" in detail and "确认定级" not in detail
    assert "Report a hazard" in client.get("/hazards/new").text


def test_pages_ask_for_a_login(client, world: World) -> None:  # noqa: ANN001
    response = client.get("/hazards/new?area=TANK", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fhazards%2Fnew%3Farea%3DTANK"  # the QR code's area survives


def test_cockpit_drill_filters_narrow_the_list_and_its_export(client, db, world) -> None:  # noqa: ANN001
    from helpers import make_hazard

    from hazardloop.hazards.models import HazardState

    open_one = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, responsible_id=None)
    closed = make_hazard(db, state=HazardState.CLOSED, area_id=world.area_a, responsible_id=None)
    client.post("/login", data={"username": "admin", "password": "correct-horse-9"})
    page = client.get("/hazards", params={"open": "true"})
    assert page.status_code == 200 and open_one.number in page.text and closed.number not in page.text
    export = client.get("/api/v1/hazards/export.csv", params={"open_only": "true",
                                                               "found_from": "2020-01-01T00:00:00+08:00"})
    assert export.status_code == 200 and open_one.number in export.content.decode("utf-8-sig")
    assert "open_only=true" in page.text


# ---------------------------------------------------------------- my tasks


def test_my_tasks_lists_only_the_viewers_own_and_carries_over_to_the_export(client, db, world: World) -> None:  # noqa: ANN001
    rectifier, officer = world.users[Role.RECTIFIER], world.users[Role.SAFETY_OFFICER]
    mine = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, responsible_id=rectifier.id)
    done = make_hazard(db, state=HazardState.CLOSED, area_id=world.area_a, responsible_id=rectifier.id)
    theirs = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, responsible_id=officer.id)
    login(client, "safety_officer")
    everything = client.get("/hazards").text
    assert mine.number in everything and theirs.number in everything
    assert 'data-testid="nav-my-tasks"' in everything and 'href="/hazards?mine=true&amp;open=true"' in everything
    officer_tasks = client.get("/hazards", params={"mine": "true"}).text  # the same link shows each viewer their own
    assert theirs.number in officer_tasks and mine.number not in officer_tasks
    assert f"/api/v1/hazards/export.csv?responsible_person_id={officer.id}" in officer_tasks
    login(client, "rectifier")
    page = client.get("/hazards", params={"mine": "true", "open": "true"}).text
    assert mine.number in page and done.number not in page and theirs.number not in page
    assert re.search(r'name="mine" value="true" checked', page) and "共 1 条" in page
    assert 'class="active" data-testid="nav-my-tasks"' in page
    # the open-only filter the bar has no control for is kept (hidden) and shown as a removable chip
    assert '<input type="hidden" name="open" value="true">' in page and 'data-testid="filter-chips"' in page
    assert "仅未关闭" in page and 'href="/hazards?mine=true"' in page
    # a filter changed since (an HTMX swap of the results) is kept by the chip's remove link
    partial = client.get("/hazards", params={"mine": "true", "open": "true", "state": "RECTIFYING"},
                         headers={"HX-Request": "true"}).text
    assert 'href="/hazards?mine=true&amp;state=RECTIFYING"' in partial and mine.number in partial
    unchecked = client.get("/hazards", params={"open": "true"}).text  # box cleared: back to the whole register
    assert theirs.number in unchecked and not re.search(r'name="mine" value="true" checked', unchecked)


def test_cockpit_date_windows_show_as_chips_with_the_last_day_inclusive(client, db, world: World) -> None:  # noqa: ANN001
    login(client, "safety_officer")
    page = client.get("/hazards", params={"found_from": "2026-11-02", "found_to": "2026-11-09"}).text
    assert "发现日期 2026-11-02 至 2026-11-08" in page  # found_to is exclusive in the URL
    assert '<input type="hidden" name="found_from" value="2026-11-02">' in page


# ---------------------------------------------------------------- errors in the page's language


def banner(html: str, testid: str) -> str:
    """The visible text of an error banner (its tooltip, the service's English words, left out)."""
    match = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</p>', html, re.S)
    assert match, f"no {testid} banner"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def has_latin_words(text: str) -> bool:
    """English words left in a Chinese message; file-format names and units are the same in both."""
    return re.search(r"[A-Za-z]{3,}", re.sub(r"JPEG|PNG|WebP|HEIC|AVIF|PDF|MiB", "", text)) is not None


def has_chinese(text: str) -> bool:
    return re.search(r"[\u4e00-\u9fff]", text) is not None


REPORT_MISTAKES = [
    # (form, files, zh words, en words)
    ({"description": "楼梯扶手松动"}, None, "请选择隐患所在区域", "Choose the area"),
    ({"area_id": "abc", "description": "楼梯扶手松动"}, None, "请填写数字", "Enter a number"),
    ({"area_id": "AREA", "description": "松"}, None, "至少填写 2 个字", "at least 2 characters"),
    ({"area_id": "AREA", "description": "松" * 4001}, None, "最多 4000 个字", "At most 4000 characters"),
    ({"area_id": "AREA", "description": "楼梯扶手松动"}, {"photo": ("a.jpg", b"not a picture", "image/jpeg")},
     "这不是照片", "This is not a photo"),
    ({"area_id": "AREA", "description": "楼梯扶手松动"}, {"photo": ("a.jpg", jpeg()[:200], "image/jpeg")},
     "照片无法读取", "The photo cannot be read"),
    ({"area_id": "OTHER", "description": "楼梯扶手松动"}, None, "您没有该区域的权限", "no access to this area"),
]


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.parametrize(("form", "files", "zh", "en"), REPORT_MISTAKES)
def test_report_form_errors_are_in_the_pages_language(client, db, world: World, language, form, files, zh, en) -> None:  # noqa: ANN001, PLR0913
    login(client, "operator")
    client.get(f"/lang/{language}?next=/hazards/new")
    area = {"AREA": str(world.area_a), "OTHER": str(world.area_b)}
    data = {k: area.get(v, v) for k, v in form.items()}
    before = db.query(Hazard).count()
    response = client.post("/hazards/new", data=data, files=files)
    assert response.status_code == 422
    text = banner(response.text, "report-error")
    if language == "zh-CN":
        assert zh in text and not has_latin_words(text), text
    else:
        assert en in text and not has_chinese(text), text
    assert db.query(Hazard).count() == before  # nothing reported by a refused form
    assert form["description"][:50] in response.text  # what was typed is kept


def test_the_refused_field_is_marked_for_screen_readers(client, world: World) -> None:  # noqa: ANN001
    login(client, "operator")
    page = client.post("/hazards/new", data={"area_id": str(world.area_a), "description": "松"}).text
    assert re.search(r'<textarea id="r-description"[^>]*aria-invalid="true" aria-describedby="report-error"', page)
    assert not re.search(r'<select id="r-area"[^>]*aria-invalid', page)


def test_move_and_comment_errors_are_in_the_pages_language(client, db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=HazardState.CONFIRMED, area_id=world.area_a, responsible_id=None)
    login(client, "safety_officer")
    past = {"to": "ASSIGNED", "responsible_person_id": str(world.users[Role.RECTIFIER].id), "measures": "更换插座",
            "deadline": "2020-01-01"}
    zh = client.post(f"/hazards/{hazard.id}/move", data=past).text
    assert banner(zh, "move-error") == "整改期限不能早于今天 (整改期限)"
    nobody = client.post(f"/hazards/{hazard.id}/move", data={**past, "deadline": "", "responsible_person_id": "x"})
    assert nobody.status_code == 422 and banner(nobody.text, "move-error") == "请填写数字 (整改责任人)"
    empty = client.post(f"/hazards/{hazard.id}/comment", data={"text": "   "})
    assert empty.status_code == 422 and banner(empty.text, "comment-error") == "评论不能为空"
    client.get("/lang/en")
    en = client.post(f"/hazards/{hazard.id}/move", data=past).text
    assert banner(en, "move-error") == "The deadline cannot lie before today (Rectification deadline)"
    assert 'title="the deadline must lie in the future"' in en  # the service's words, for support
    assert db.get(Hazard, hazard.id).state == "CONFIRMED"


@pytest.mark.parametrize(("username", "shown"), [("rectifier", True), ("safety_officer", True),
                                                 ("safety_manager", True), ("operator", False), ("viewer", False)])
def test_my_tasks_is_offered_to_the_roles_that_can_hold_a_task(client, world: World, username: str,
                                                               shown: bool) -> None:  # noqa: ANN001
    """The roles the assign form offers (they may start a rectification); a viewer would only ever see none."""
    login(client, username)
    page = client.get("/hazards").text
    assert ('data-testid="nav-my-tasks"' in page) is shown
    assert ('data-testid="filter-mine"' in page) is shown


def test_a_photo_over_the_upload_limit_is_refused_naming_the_limit(client, db, world: World) -> None:  # noqa: ANN001
    client.app.state.settings.max_upload_bytes = 4 * 1024
    out = io.BytesIO()
    Image.effect_noise((300, 300), 60).convert("RGB").save(out, format="JPEG", quality=95)
    assert len(out.getvalue()) > 4 * 1024
    login(client, "operator")
    response = client.post("/hazards/new", data={"area_id": str(world.area_a), "description": "楼梯扶手松动"},
                           files={"photo": ("big.jpg", out.getvalue(), "image/jpeg")})
    assert response.status_code == 422
    assert banner(response.text, "report-error") == "现场照片: 照片超过 4 KiB 的上传上限，请降低相机分辨率后重拍"
    assert db.query(Hazard).count() == 0

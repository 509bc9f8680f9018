"""The 系统管理 pages through their forms: what an administrator sees and what a refusal looks like.

Every change goes through the same services as the API, so the checks here are what the page adds:
which roles see the section, errors beside the field that caused them, secrets never shown back,
and CSV exports of the lists.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))

from world import PASSWORD, World, build_world  # noqa: E402

from hazardloop.auth.models import User  # noqa: E402
from hazardloop.notify.models import Channel  # noqa: E402
from hazardloop.plant.models import Sensor  # noqa: E402

SECRET = "s3cret-signing-key-0123456789"


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


def login(client, username: str) -> None:  # noqa: ANN001
    response = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def field_error(html: str, name: str) -> str:
    """The error text drawn beside one field ('' when there is none)."""
    block = re.search(rf'data-testid="field-{name}">(.*?)</div>', html, re.S)
    assert block, f"no field {name}"
    found = re.search(r'class="ad-error"[^>]*>(.*?)</p>', block.group(1), re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)) if found else ""


def sensor_form(**overrides: str) -> dict[str, str]:
    values = {"tag": "GT-301", "name": "新测点", "kind": "combustible_gas", "unit": "%LEL", "area_id": "",
              "range_min": "0", "range_max": "100", "ll": "", "l": "", "h": "25", "hh": "50",
              "deadband": "1", "on_delay_s": "5", "off_delay_s": "0", "sample_period_s": "", "enabled": "on"}
    return {**values, **overrides}


@pytest.mark.parametrize(("username", "sees"), [("admin", True), ("safety_manager", True), ("operator", False),
                                                ("viewer", False)])
def test_admin_link_shows_only_for_roles_that_may_administer(client, world: World, username: str,
                                                              sees: bool) -> None:  # noqa: ANN001
    login(client, username)
    page = client.get("/alarms").text
    assert ('data-testid="nav-admin"' in page) is sees
    answer = client.get("/admin", follow_redirects=True)
    assert (answer.status_code == 200) is sees


def test_operator_gets_a_plain_refusal_not_the_form(client, world: World) -> None:  # noqa: ANN001
    login(client, "operator")
    for path in ("/admin/sensors/new", "/admin/users", "/admin/channels"):
        answer = client.get(path)
        assert answer.status_code == 403 and "无权" in answer.text and "edit-form" not in answer.text
    assert client.post("/admin/sensors", data=sensor_form(area_id=str(world.area_a))).status_code == 403


def test_sensor_limits_out_of_order_are_shown_beside_the_field(client, db, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    answer = client.post("/admin/sensors", data=sensor_form(area_id=str(world.area_a), h="60", hh="50"))
    assert answer.status_code == 422
    assert "H=60.0 must be below HH=50.0" in field_error(answer.text, "hh")
    assert field_error(answer.text, "tag") == ""
    assert 'value="60"' in answer.text  # the typed values stay in the form
    answer = client.post("/admin/sensors", data=sensor_form(area_id=str(world.area_a), range_max="abc"))
    assert answer.status_code == 422 and "请输入数字" in field_error(answer.text, "range_max")
    assert db.query(Sensor).filter_by(tag="GT-301").count() == 0


def test_sensor_created_and_edited_through_the_form(client, db, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    answer = client.post("/admin/sensors", data=sensor_form(area_id=str(world.area_a)), follow_redirects=False)
    assert answer.status_code == 303
    sensor = db.query(Sensor).filter_by(tag="GT-301").one()
    assert (sensor.h, sensor.hh, sensor.ll, sensor.deadband, sensor.on_delay_s) == (25.0, 50.0, None, 1.0, 5.0)
    edited = sensor_form(area_id=str(world.area_a), ll="", h="30", hh="", deadband="2")
    edited.pop("tag")
    answer = client.post(f"/admin/sensors/{sensor.id}", data=edited, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    db.expire_all()
    sensor = db.get(Sensor, sensor.id)
    assert (sensor.h, sensor.hh, sensor.deadband) == (30.0, None, 2.0)
    assert "已保存" in client.get(answer.headers["location"]).text


def test_duplicate_tag_is_refused_beside_the_tag(client, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    answer = client.post("/admin/sensors", data=sensor_form(tag="GT-101", area_id=str(world.area_a)))
    assert answer.status_code == 422 and "GT-101" in field_error(answer.text, "tag")


def test_sensor_list_filters_and_csv_export_agree(client, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    page = client.get("/admin/sensors", params={"area_id": world.area_b})
    assert "GT-201" in page.text and "GT-101" not in page.text
    partial = client.get("/admin/sensors", params={"area_id": world.area_b},
                         headers={"HX-Request": "true", "HX-Target": "sensor-list"}).text
    assert partial.lstrip().startswith('<section class="card" id="sensor-list"')
    exported = client.get("/admin/sensors.csv", params={"area_id": world.area_b})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [r["tag"] for r in rows] == ["GT-201"] and rows[0]["area"] == "BOIL"
    assert not client.get("/admin/sensors", params={"kind": "h2s"}).text.count('data-testid="sensor-row"')


def test_tag_import_lists_each_bad_row_and_stores_nothing(client, db, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    content = ("位号,名称,类型,单位,区域,量程下限,量程上限,高限,高高限\n"
               "GT-401,新罐,combustible_gas,%LEL,TANK,0,100,25,50\n"
               "GT-402,错单位,combustible_gas,ppm,TANK,0,100,25,50\n").encode()
    answer = client.post("/admin/sensors/import", files={"file": ("tags.csv", content, "text/csv")},
                         headers={"HX-Request": "true"})
    assert answer.status_code == 422 and 'data-testid="import-errors"' in answer.text
    assert re.search(r'<td class="num">3</td><td class="mono">unit</td>', answer.text)
    assert db.query(Sensor).filter(Sensor.tag.in_(["GT-401", "GT-402"])).count() == 0
    good = content.decode().splitlines()[:2]
    answer = client.post("/admin/sensors/import", files={"file": ("tags.csv", "\n".join(good).encode(), "text/csv")},
                         headers={"HX-Request": "true"})
    assert answer.status_code == 200 and "新建 1 个" in answer.text


def test_user_created_with_an_area_scope_and_exported(client, db, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    answer = client.post("/admin/users", data={"username": "li.new", "display_name": "李新", "role": "safety_officer",
                                               "password": "short", "area_ids": [str(world.area_b)]})
    assert answer.status_code == 422 and field_error(answer.text, "password")
    assert "short" not in answer.text  # a password is never sent back into the page
    answer = client.post("/admin/users", data={"username": "li.new", "display_name": "李新", "role": "safety_officer",
                                               "password": "long-enough-1", "area_ids": [str(world.area_b)]},
                         follow_redirects=False)
    assert answer.status_code == 303
    user = db.query(User).filter_by(username="li.new").one()
    assert user.area_ids == {world.area_b} and not user.all_areas
    rows = list(csv.DictReader(io.StringIO(client.get("/admin/users.csv").content.decode("utf-8-sig"))))
    assert {"username": "li.new", "areas": "BOIL"}.items() <= next(r for r in rows if r["username"] == "li.new").items()


def test_deactivating_a_user_ends_their_login(client, db, world: World) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    target = world.users[next(r for r in world.users if r.value == "operator")]
    with TestClient(client.app) as other:
        login(other, "operator")
        assert other.get("/alarms").status_code == 200
        login(client, "admin")
        answer = client.post(f"/admin/users/{target.id}/active", data={"active": "0"}, follow_redirects=False)
        assert answer.status_code == 303
        assert other.get("/alarms", follow_redirects=False).status_code == 303  # back to the login
    db.expire_all()
    assert db.get(User, target.id).is_active is False
    answer = client.post(f"/admin/users/{world.admin.id}/active", data={"active": "0"})
    assert answer.status_code == 409  # not yourself


def test_password_reset_lets_the_user_log_in_with_the_new_one(client, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    target = world.users[next(r for r in world.users if r.value == "viewer")]
    assert client.post(f"/admin/users/{target.id}/password", data={"new_password": "abc"}).status_code == 422
    answer = client.post(f"/admin/users/{target.id}/password", data={"new_password": "brand-new-pass"},
                         follow_redirects=False)
    assert answer.status_code == 303
    client.post("/logout")
    answer = client.post("/login", data={"username": "viewer", "password": "brand-new-pass", "next": "/"},
                         follow_redirects=False)
    assert answer.status_code == 303


def test_channel_secret_is_stored_but_never_shown_back(client, db, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    form = {"kind": "webhook", "name": "值班 webhook", "enabled": "on", "webhook_url": "http://127.0.0.1:9/hook",
            "secret": "too-short"}
    answer = client.post("/admin/channels", data=form)
    assert answer.status_code == 422 and field_error(answer.text, "secret") and "too-short" not in answer.text
    answer = client.post("/admin/channels", data={**form, "secret": SECRET}, follow_redirects=False)
    assert answer.status_code == 303
    channel = db.query(Channel).one()
    for path in ("/admin/channels", f"/admin/channels/{channel.id}"):
        assert SECRET not in client.get(path).text
    # saved again with the secret left blank: the stored one is kept
    answer = client.post(f"/admin/channels/{channel.id}", data={"name": "值班", "enabled": "on",
                                                               "webhook_url": "http://127.0.0.1:9/hook2",
                                                               "secret": ""}, follow_redirects=False)
    assert answer.status_code == 303
    db.expire_all()
    channel = db.get(Channel, channel.id)
    assert channel.config["secret"] == SECRET and channel.config["webhook_url"].endswith("/hook2")


def test_robot_url_credential_is_masked_on_the_edit_form(client, db, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdef-123456"
    answer = client.post("/admin/channels", data={"kind": "wecom", "name": "企业微信", "enabled": "on",
                                                  "webhook_url": url, "format": "text"}, follow_redirects=False)
    assert answer.status_code == 303
    channel = db.query(Channel).one()
    page = client.get(f"/admin/channels/{channel.id}").text
    assert "abcdef-123456" not in page and "key=***" in page


def test_english_admin_page_has_no_stray_chinese_labels(client, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    client.cookies.set("hl_lang", "en")
    page = client.get("/admin/sensors/new").text
    assert "High-high limit HH" in page and "Deadband" in page and "高高限" not in page
    labels = re.findall(r'<label for="(f-[a-z_]+)"', page)
    ids = set(re.findall(r'id="(f-[a-z_]+)"', page))
    assert labels and set(labels) <= ids  # every label is bound to an input


def test_robot_without_a_secret_can_be_edited_with_the_secret_left_blank(client, db, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    url = "https://oapi.dingtalk.com/robot/send?access_token=tok-123"
    form = {"kind": "dingtalk", "name": "钉钉", "enabled": "on", "webhook_url": url, "keyword": "隐患",
            "format": "text"}
    assert client.post("/admin/channels", data=form, follow_redirects=False).status_code == 303
    channel = db.query(Channel).one()
    page = client.get(f"/admin/channels/{channel.id}").text
    masked = re.search(r'id="f-webhook_url" name="webhook_url"\s+type="text"\s+value="([^"]+)"', page).group(1)
    answer = client.post(f"/admin/channels/{channel.id}", data={**form, "webhook_url": masked.replace("&amp;", "&"),
                                                                "keyword": "安全", "secret": ""},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    db.expire_all()
    stored = db.get(Channel, channel.id).config
    assert stored["webhook_url"] == url and stored["keyword"] == "安全" and "secret" not in stored


def test_plant_page_gives_each_area_its_qr_report_link_and_unique_field_ids(client, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    page = client.get("/admin/plant").text
    links = re.findall(r'data-testid="area-report-link"[^>]*>([^<]+)</a>', page)
    assert "http://testserver/hazards/new?area=TANK" in links
    # what it opens (the form with TANK preselected) is test_hazard_pages' QR-code test
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # site and area forms on one page: each label finds its own input
    for target in re.findall(r'<label for="([^"]+)"', page):
        assert target in ids


def test_area_list_exports_as_csv_with_each_report_link(client, world: World) -> None:  # noqa: ANN001
    login(client, "admin")
    assert 'href="/admin/areas.csv"' in client.get("/admin/plant").text
    response = client.get("/admin/areas.csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert response.status_code == 200 and {r["code"] for r in rows} >= {"TANK"}
    tank = next(r for r in rows if r["code"] == "TANK")
    assert tank["report_link"] == "http://testserver/hazards/new?area=TANK" and tank["sensors"] == "1"
    assert len(rows) == 2
    login(client, "operator")  # as sensors.csv: anyone who may read the plant, within their own areas
    scoped = client.get("/admin/areas.csv").content.decode("utf-8-sig")
    assert [r["code"] for r in csv.DictReader(io.StringIO(scoped))] == ["TANK"]


def test_qr_label_sheet_encodes_each_areas_report_link(client, world: World) -> None:  # noqa: ANN001
    import segno

    login(client, "admin")
    assert 'href="/admin/areas/qr"' in client.get("/admin/plant").text
    page = client.get("/admin/areas/qr").text
    labels = re.findall(r'data-testid="qr-label" data-area="([^"]+)"', page)
    assert sorted(labels) == sorted({"TANK", *labels}) and len(labels) == 2
    tank = page[page.index('data-area="TANK"'):]
    tank = tank[:tank.index("</figure>")]
    expected = segno.make("http://testserver/hazards/new?area=TANK", error="q", boost_error=False)
    assert expected.svg_inline(scale=4, border=2, omitsize=True) in tank  # the code drawn is the area's report link
    assert "http://testserver/hazards/new?area=TANK" in tank
    one = client.get(f"/admin/areas/qr?area_id={world.area_a}").text
    assert re.findall(r'data-testid="qr-label" data-area="([^"]+)"', one) == ["TANK"]
    login(client, "operator")  # area scope applies: an operator prints labels for their own areas only
    scoped = client.get("/admin/areas/qr").text
    assert re.findall(r'data-testid="qr-label" data-area="([^"]+)"', scoped) == ["TANK"]


def test_admin_asks_for_normal_to_be_relearned_from_the_sensor_page(client, world: World, db) -> None:  # noqa: ANN001
    from hazardloop.alarms import learning

    login(client, "admin")
    page = client.get("/admin/sensors").text
    assert 'data-testid="relearn-form"' in page and 'action="/admin/sensors/relearn"' in page
    refused = client.post("/admin/sensors/relearn", data={"hours": "a lot"}, follow_redirects=True)
    assert "720" in refused.text and learning.pending_relearn(db) is None
    done = client.post("/admin/sensors/relearn", data={"hours": "12"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/admin/sensors?done=relearn"
    db.expire_all()
    assert learning.pending_relearn(db) == 12.0
    assert "重新学习" in client.get(done.headers["location"]).text
    login(client, "operator")
    assert client.post("/admin/sensors/relearn", data={"hours": "12"}).status_code == 403

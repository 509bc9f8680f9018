"""Tag lists import whole or not at all, with an error per bad row."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook
from world import World

from hazardloop.auth.roles import Role

HEADER = "位号,名称,类型,单位,区域,设备,量程下限,量程上限,低低报,低报,高报,高高报,回差,报警延时\n"


def _post(client, world: World, content: bytes, filename: str = "tags.csv"):  # noqa: ANN001, ANN202
    return client.post(
        "/api/v1/plant/sensors/import", files={"file": (filename, content)}, headers=world.auth(Role.ADMIN)
    )


def _tags(client, world: World) -> set[str]:  # noqa: ANN001
    return {s["tag"] for s in client.get("/api/v1/plant/sensors", headers=world.auth(Role.ADMIN)).json()}


def test_chinese_csv_tag_list_imports(client, world: World) -> None:
    csv = (
        HEADER + "GT-102,罐区可燃气体,可燃气体,%LEL,TANK,T-101,0,100,,,20,50,2,5\n"
        "AT-103,罐区硫化氢,h2s,ppm,TANK,,0,100,,,10,20,1,5\n"
    )
    response = _post(client, world, csv.encode("utf-8"))
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 2
    assert {"GT-102", "AT-103"} <= _tags(client, world)


def test_gbk_encoded_csv_from_excel_imports(client, world: World) -> None:
    csv = HEADER + "GT-104,罐区可燃气体,可燃气体,%LEL,TANK,,0,100,,,20,50,2,5\n"
    assert _post(client, world, csv.encode("gbk")).status_code == 200
    assert "GT-104" in _tags(client, world)


def test_existing_tags_are_updated_not_duplicated(client, world: World) -> None:
    csv = HEADER + "GT-101,罐区可燃气体,可燃气体,%LEL,TANK,T-101,0,100,,,25,50,2,5\n"
    report = _post(client, world, csv.encode()).json()
    assert (report["created"], report["updated"]) == (0, 1)
    sensor = client.get(f"/api/v1/plant/sensors/{world.sensor_a}", headers=world.auth(Role.ADMIN)).json()
    assert sensor["h"] == 25


def test_bad_rows_are_all_named_and_nothing_is_stored(client, world: World) -> None:
    csv = HEADER + (
        "GT-110,好的一行,可燃气体,%LEL,TANK,,0,100,,,20,50,2,5\n"
        "GT-111,单位错误,可燃气体,ppm,TANK,,0,100,,,20,50,2,5\n"
        "GT-112,限值顺序错,可燃气体,%LEL,TANK,,0,100,,,60,50,2,5\n"
        "GT-113,未知区域,可燃气体,%LEL,NOWHERE,,0,100,,,20,50,2,5\n"
        "GT-114,不是数字,可燃气体,%LEL,TANK,,0,abc,,,20,50,2,5\n"
        "GT-110,重复位号,可燃气体,%LEL,TANK,,0,100,,,20,50,2,5\n"
        "GT-115,超量程,可燃气体,%LEL,TANK,,0,100,,,20,150,2,5\n"
        "GT-116,设备不在区域,可燃气体,%LEL,TANK,B-201,0,100,,,20,50,2,5\n"
    )
    before = _tags(client, world)
    response = _post(client, world, csv.encode())
    assert response.status_code == 422
    rows = {(r["row"], r["field"]) for r in response.json()["detail"]["rows"]}
    assert {(3, "unit"), (4, "hh"), (5, "area"), (6, "range_max"), (7, "tag"), (8, "hh"), (9, "equipment")} <= rows
    assert not any(row == 2 for row, _ in rows)
    assert _tags(client, world) == before


def test_excel_tag_list_imports(client, world: World) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Tag", "Name", "Kind", "Unit", "Area", "Equipment", "range_min", "range_max", "H", "HH"])
    sheet.append(["TT-120", "Tank temperature", "temperature", "°C", "BOIL", "B-201", -20, 150, 80, 100])
    buffer = io.BytesIO()
    book.save(buffer)
    assert _post(client, world, buffer.getvalue(), "tags.xlsx").status_code == 200
    assert "TT-120" in _tags(client, world)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"foo,bar\n1,2\n", "missing column"),
        (b"PK\x03\x04 not really a zip", "Excel"),
        (b"\xff\xfe\x00garbage\x81\x82", ""),
    ],
)
def test_malformed_files_get_a_clear_error(client, world: World, content: bytes, message: str) -> None:
    response = _post(client, world, content)
    assert response.status_code == 422
    assert message in response.text


def test_oversized_upload_is_refused(client, world: World, app) -> None:  # noqa: ANN001
    app.state.settings.max_upload_bytes = 1000
    response = _post(client, world, HEADER.encode() + b"x" * 2000)
    assert response.status_code == 422 and "upload limit" in response.text


def test_api_rejects_nan_and_wrong_units_naming_the_field(client, world: World) -> None:
    body = {
        "tag": "GT-130",
        "kind": "combustible_gas",
        "unit": "ppm",
        "area_id": world.area_a,
        "range_min": 0,
        "range_max": 100,
    }
    response = client.post("/api/v1/plant/sensors", json=body, headers=world.auth(Role.ADMIN))
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "unit"
    raw = '{"tag":"GT-131","kind":"combustible_gas","unit":"%LEL","area_id":AREA,"range_min":NaN,"range_max":100}'
    response = client.post(
        "/api/v1/plant/sensors",
        content=raw.replace("AREA", str(world.area_a)),
        headers={**world.auth(Role.ADMIN), "content-type": "application/json"},
    )
    assert response.status_code == 422


def test_deleting_an_area_with_sensors_is_refused_with_the_reason(client, world: World) -> None:
    response = client.delete(f"/api/v1/plant/areas/{world.area_a}", headers=world.auth(Role.ADMIN))
    assert response.status_code == 409 and "sensors" in response.json()["detail"]


def test_area_polygon_must_lie_on_the_site_plan(client, world: World) -> None:
    body = {"site_id": world.site_id, "code": "OUT", "name_zh": "外面", "polygon": [[0, 0], [5000, 0], [0, 10]]}
    response = client.post("/api/v1/plant/areas", json=body, headers=world.auth(Role.ADMIN))
    assert response.status_code == 422 and "outside the site plan" in response.text

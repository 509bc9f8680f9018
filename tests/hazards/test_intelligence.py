"""Suggestions on report, recurring patterns and the labels people's gradings leave behind."""

from __future__ import annotations

from world import World

from hazardloop.auth.roles import Role


def _report(client, world: World, text: str, role: Role = Role.OPERATOR, area: int | None = None) -> dict:  # noqa: ANN001
    r = client.post("/api/v1/hazards", json={"area_id": area or world.area_a, "description": text},
                    headers=world.auth(role))
    assert r.status_code == 201, r.text
    return r.json()


def test_suggestion_explains_itself(client, world: World) -> None:
    r = client.post("/api/v1/hazards/suggest", json={"text": "配电箱未接地"}, headers=world.auth(Role.OPERATOR))
    body = r.json()
    assert r.status_code == 200
    assert body["category"]["code"] == "electrical" and "接地" in body["category"]["explanation"]
    assert body["accident_type"]["code"] == "05" and body["accident_type"]["name_zh"] == "触电"
    assert body["level"]["code"] in ("general", "major")


def test_report_stores_the_ai_suggestion_and_confirmation_makes_a_label(client, world: World) -> None:
    hazard = _report(client, world, "灭火器过期两个，重新置换")
    assert hazard["ai_suggestion"]["category"]["code"] == "fire" and hazard["ai_model"]
    r = client.post(f"/api/v1/hazards/{hazard['id']}/transition", headers=world.auth(Role.SAFETY_OFFICER),
                    json={"to": "CONFIRMED", "level": "general", "category": "fire", "accident_type": "08"})
    assert r.status_code == 200
    points = client.get("/api/v1/hazards/suggestion-accuracy", headers=world.auth(Role.SAFETY_MANAGER)).json()
    assert sum(p["n"] for p in points) == 1 and points[0]["accuracy"] == 1.0


def test_a_changed_suggestion_counts_against_accuracy(client, world: World) -> None:
    hazard = _report(client, world, "配电箱未接地")
    client.post(f"/api/v1/hazards/{hazard['id']}/transition", headers=world.auth(Role.SAFETY_OFFICER),
                json={"to": "CONFIRMED", "level": "general", "category": "fire", "accident_type": "08"})
    points = client.get("/api/v1/hazards/suggestion-accuracy", headers=world.auth(Role.SAFETY_MANAGER)).json()
    assert points[0]["accepted"] == 0


def test_recurring_reports_form_a_named_pattern(client, world: World) -> None:
    for text in ("灭火器过期", "灭火器过期未更换", "东侧灭火器过期", "灭火器压力不足且过期"):
        _report(client, world, text)
    _report(client, world, "消防通道堵塞")
    patterns = client.get("/api/v1/hazards/patterns", headers=world.auth(Role.SAFETY_MANAGER)).json()
    assert patterns and "灭火器" in patterns[0]["name"] and "罐区" in patterns[0]["name"]
    assert len(patterns[0]["hazard_ids"]) >= 3
    assert client.get("/api/v1/hazards/patterns", headers=world.auth(Role.VIEWER)).status_code == 200


def test_patterns_respect_area_scope(client, world: World) -> None:
    client.patch(f"/api/v1/users/{world.users[Role.SAFETY_MANAGER].id}", json={"all_areas": True},
                 headers=world.auth(Role.ADMIN))
    for text in ("灭火器过期", "灭火器过期未更换", "东侧灭火器过期"):
        _report(client, world, text, role=Role.SAFETY_MANAGER, area=world.area_b)
    assert client.get("/api/v1/hazards/patterns", headers=world.auth(Role.OPERATOR)).json() == []

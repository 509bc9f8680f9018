"""Every role against every plant/auth endpoint, inside and outside its granted area.

The expected answer is derived from the permission table (auth/data/permissions.toml) and the
area grants, not written out by hand, so the table and the enforcement cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from world import World, gas_sensor

from hazardloop.auth.roles import Role, roles_for


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: Callable[[World], str]
    permission: str
    area: str | None  # "a" = in the scoped users' area, "b" = outside it, None = not area-bound
    body: Callable[[World], dict] | None = None
    ok: int = 200


def _sensor_body(area: str) -> Callable[[World], dict]:
    def body(w: World) -> dict:
        area_id = w.area_a if area == "a" else w.area_b
        return gas_sensor(f"NEW-{area}", area_id).model_dump()

    return body


ENDPOINTS = [
    Endpoint("get area a", "GET", lambda w: f"/api/v1/plant/areas/{w.area_a}", "plant.read", "a"),
    Endpoint("get area b", "GET", lambda w: f"/api/v1/plant/areas/{w.area_b}", "plant.read", "b"),
    Endpoint("get equipment a", "GET", lambda w: f"/api/v1/plant/equipment/{w.equipment_a}", "plant.read", "a"),
    Endpoint("get equipment b", "GET", lambda w: f"/api/v1/plant/equipment/{w.equipment_b}", "plant.read", "b"),
    Endpoint("get sensor a", "GET", lambda w: f"/api/v1/plant/sensors/{w.sensor_a}", "plant.read", "a"),
    Endpoint("get sensor b", "GET", lambda w: f"/api/v1/plant/sensors/{w.sensor_b}", "plant.read", "b"),
    Endpoint("get site", "GET", lambda w: f"/api/v1/plant/sites/{w.site_id}", "plant.read", "a"),
    Endpoint(
        "create site",
        "POST",
        lambda w: "/api/v1/plant/sites",
        "plant.write",
        None,
        lambda w: {"code": "S9", "name_zh": "新厂区"},
        201,
    ),
    Endpoint(
        "create area",
        "POST",
        lambda w: "/api/v1/plant/areas",
        "plant.write",
        None,
        lambda w: {"site_id": w.site_id, "code": "NEW", "name_zh": "新区域"},
        201,
    ),
    Endpoint(
        "patch area a",
        "PATCH",
        lambda w: f"/api/v1/plant/areas/{w.area_a}",
        "plant.write",
        "a",
        lambda w: {"risk_grade": "orange"},
    ),
    Endpoint(
        "patch area b",
        "PATCH",
        lambda w: f"/api/v1/plant/areas/{w.area_b}",
        "plant.write",
        "b",
        lambda w: {"risk_grade": "orange"},
    ),
    Endpoint(
        "create equipment a",
        "POST",
        lambda w: "/api/v1/plant/equipment",
        "plant.write",
        "a",
        lambda w: {"area_id": w.area_a, "code": "P-1", "name_zh": "泵"},
        201,
    ),
    Endpoint(
        "create equipment b",
        "POST",
        lambda w: "/api/v1/plant/equipment",
        "plant.write",
        "b",
        lambda w: {"area_id": w.area_b, "code": "P-2", "name_zh": "泵"},
        201,
    ),
    Endpoint("create sensor a", "POST", lambda w: "/api/v1/plant/sensors", "sensor.write", "a", _sensor_body("a"), 201),
    Endpoint("create sensor b", "POST", lambda w: "/api/v1/plant/sensors", "sensor.write", "b", _sensor_body("b"), 201),
    Endpoint(
        "patch sensor a",
        "PATCH",
        lambda w: f"/api/v1/plant/sensors/{w.sensor_a}",
        "sensor.write",
        "a",
        lambda w: {"h": 25},
    ),
    Endpoint(
        "patch sensor b",
        "PATCH",
        lambda w: f"/api/v1/plant/sensors/{w.sensor_b}",
        "sensor.write",
        "b",
        lambda w: {"h": 25},
    ),
    Endpoint("delete sensor a", "DELETE", lambda w: f"/api/v1/plant/sensors/{w.sensor_a}", "sensor.write", "a", ok=204),
    Endpoint("delete sensor b", "DELETE", lambda w: f"/api/v1/plant/sensors/{w.sensor_b}", "sensor.write", "b", ok=204),
    Endpoint("list users", "GET", lambda w: "/api/v1/users", "user.read", None),
    Endpoint(
        "create user",
        "POST",
        lambda w: "/api/v1/users",
        "user.write",
        None,
        lambda w: {"username": "newbie", "display_name": "新人", "role": "viewer", "password": "longenough1"},
        201,
    ),
    Endpoint(
        "patch user",
        "PATCH",
        lambda w: f"/api/v1/users/{w.users[Role.VIEWER].id}",
        "user.write",
        None,
        lambda w: {"display_name": "改名"},
    ),
    Endpoint("list tokens", "GET", lambda w: "/api/v1/tokens", "token.write", None),
    Endpoint(
        "create token",
        "POST",
        lambda w: "/api/v1/tokens",
        "token.write",
        None,
        lambda w: {"user_id": w.users[Role.OPERATOR].id, "name": "scada"},
        201,
    ),
    Endpoint("read audit", "GET", lambda w: "/api/v1/audit", "audit.read", None),
    Endpoint("verify audit", "GET", lambda w: "/api/v1/audit/verify", "audit.read", None),
]


def expected_status(role: Role, endpoint: Endpoint) -> int:
    if role not in roles_for(endpoint.permission):
        return 403
    if endpoint.area == "b" and role is not Role.ADMIN:
        return 404  # outside the grant: answered as not found, so nothing about it leaks
    return endpoint.ok


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_role_reaches_only_what_it_was_granted(client, world: World, role: Role, endpoint: Endpoint) -> None:
    body = endpoint.body(world) if endpoint.body else None
    audit_before = client.get("/api/v1/audit?limit=1", headers=world.auth(Role.ADMIN)).json()[0]["seq"]
    response = client.request(endpoint.method, endpoint.path(world), json=body, headers=world.auth(role))
    assert response.status_code == expected_status(role, endpoint), response.text
    audit_after = client.get("/api/v1/audit?limit=1", headers=world.auth(Role.ADMIN)).json()[0]["seq"]
    if response.status_code >= 400 or endpoint.method == "GET":
        assert audit_after == audit_before, "a refused or read-only request must write nothing"
    else:
        assert audit_after > audit_before, "every write lands in the audit log"


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN], ids=lambda r: r.value)
@pytest.mark.parametrize("collection", ["areas", "equipment", "sensors", "sites"])
def test_lists_show_only_granted_areas(client, world: World, role: Role, collection: str) -> None:
    rows = client.get(f"/api/v1/plant/{collection}", headers=world.auth(role)).json()
    if collection == "areas":
        assert {r["id"] for r in rows} == {world.area_a}
    elif collection == "sites":
        assert {r["id"] for r in rows} == {world.site_id}
    else:
        assert {r["area_id"] for r in rows} == {world.area_a}


def test_admin_lists_every_area(client, world: World) -> None:
    rows = client.get("/api/v1/plant/areas", headers=world.auth(Role.ADMIN)).json()
    assert {r["id"] for r in rows} == {world.area_a, world.area_b}


def test_all_areas_user_sees_every_area(client, world: World, db) -> None:  # noqa: ANN001
    manager = world.users[Role.SAFETY_MANAGER]
    client.patch(f"/api/v1/users/{manager.id}", json={"all_areas": True}, headers=world.auth(Role.ADMIN))
    rows = client.get("/api/v1/plant/sensors", headers=world.auth(Role.SAFETY_MANAGER)).json()
    assert {r["tag"] for r in rows} == {"GT-101", "GT-201"}


def test_scope_holds_for_a_role_granted_writes_by_the_table(client, world: World, monkeypatch) -> None:  # noqa: ANN001
    """An enterprise may let safety officers edit sensors; they still edit only their own areas."""
    from hazardloop.auth import roles

    table = dict(roles.permission_table())
    table["sensor.write"] = table["sensor.write"] | {Role.SAFETY_OFFICER}
    monkeypatch.setattr(roles, "permission_table", lambda: table)
    own = client.patch(
        f"/api/v1/plant/sensors/{world.sensor_a}", json={"h": 22}, headers=world.auth(Role.SAFETY_OFFICER)
    )
    other = client.patch(
        f"/api/v1/plant/sensors/{world.sensor_b}", json={"h": 22}, headers=world.auth(Role.SAFETY_OFFICER)
    )
    moved = client.patch(
        f"/api/v1/plant/sensors/{world.sensor_a}",
        json={"area_id": world.area_b},
        headers=world.auth(Role.SAFETY_OFFICER),
    )
    assert (own.status_code, other.status_code, moved.status_code) == (200, 404, 404)


def test_services_refuse_without_going_through_http(db, world: World) -> None:  # noqa: ANN001
    from hazardloop.auth.authz import OutOfScope, PermissionDenied
    from hazardloop.plant import service

    with pytest.raises(PermissionDenied):
        service.create_sensor(db, actor=world.users[Role.VIEWER], data=gas_sensor("X-1", world.area_a))
    with pytest.raises(OutOfScope):
        service.get_sensor(db, actor=world.users[Role.OPERATOR], sensor_id=world.sensor_b)


def test_unauthenticated_requests_are_refused(client, world: World) -> None:
    assert client.get("/api/v1/plant/sensors").status_code == 401
    assert client.get("/api/v1/plant/sensors", headers={"Authorization": "Bearer hl_bogus_x"}).status_code == 401


def test_revoked_and_deactivated_credentials_stop_working(client, world: World) -> None:
    admin = world.auth(Role.ADMIN)
    tokens = client.get("/api/v1/tokens", headers=admin).json()
    operator_token = next(t for t in tokens if t["user_id"] == world.users[Role.OPERATOR].id)
    assert client.delete(f"/api/v1/tokens/{operator_token['id']}", headers=admin).status_code == 200
    assert client.get("/api/v1/auth/me", headers=world.auth(Role.OPERATOR)).status_code == 401
    client.patch(f"/api/v1/users/{world.users[Role.VIEWER].id}", json={"is_active": False}, headers=admin)
    assert client.get("/api/v1/auth/me", headers=world.auth(Role.VIEWER)).status_code == 401

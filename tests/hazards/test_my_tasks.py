""""My tasks": the hazards whose responsible person (整改责任人) is a given user, through the service,
the REST API and the 台账 export, always inside the viewer's area scope."""

from __future__ import annotations

from helpers import make_hazard
from world import World

from hazardloop.auth.roles import Role
from hazardloop.hazards import service
from hazardloop.hazards.ledger import export_csv
from hazardloop.hazards.models import HazardState


def _two_rectifiers(world: World) -> tuple[int, int]:
    """The world's rectifier and the safety officer, both able to hold tasks in area A."""
    return world.users[Role.RECTIFIER].id, world.users[Role.SAFETY_OFFICER].id


def test_the_filter_keeps_only_the_responsible_persons_hazards(db, world: World) -> None:  # noqa: ANN001
    rectifier, officer = _two_rectifiers(world)
    mine = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, responsible_id=rectifier)
    theirs = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, responsible_id=officer)
    unassigned = make_hazard(db, state=HazardState.REPORTED, area_id=world.area_a, responsible_id=None)
    admin = world.users[Role.ADMIN]
    rows, total = service.list_for_user(db, actor=admin, filters=service.HazardFilter(responsible_person_id=rectifier))
    assert [h.id for h in rows] == [mine.id] and total == 1
    everyone, _ = service.list_for_user(db, actor=admin)
    assert {mine.id, theirs.id, unassigned.id} <= {h.id for h in everyone}


def test_the_filter_never_widens_the_viewers_area_scope(db, world: World) -> None:  # noqa: ANN001
    """A task in an area the viewer was not granted stays out of their list, whoever holds it."""
    rectifier, _ = _two_rectifiers(world)
    inside = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, responsible_id=rectifier)
    outside = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_b, responsible_id=rectifier)
    viewer = world.users[Role.VIEWER]
    rows, _ = service.list_for_user(db, actor=viewer, filters=service.HazardFilter(responsible_person_id=rectifier))
    assert [h.id for h in rows] == [inside.id] and outside.id not in {h.id for h in rows}


def test_the_api_list_and_the_ledger_export_take_the_filter(client, db, world: World) -> None:  # noqa: ANN001
    rectifier, officer = _two_rectifiers(world)
    mine = make_hazard(db, state=HazardState.RECTIFYING, area_id=world.area_a, responsible_id=rectifier)
    theirs = make_hazard(db, state=HazardState.ASSIGNED, area_id=world.area_a, responsible_id=officer)
    headers = world.auth(Role.RECTIFIER)
    page = client.get("/api/v1/hazards", params={"responsible_person_id": rectifier}, headers=headers).json()
    assert page["total"] == 1 and [h["number"] for h in page["items"]] == [mine.number]
    # the 台账 export is the officers' (a rectifier may not export); it takes the same filter
    csv = client.get("/api/v1/hazards/export.csv", params={"responsible_person_id": rectifier},
                     headers=world.auth(Role.SAFETY_OFFICER))
    text = csv.content.decode("utf-8-sig")
    assert csv.status_code == 200 and mine.number in text and theirs.number not in text
    direct = export_csv(db, actor=world.users[Role.SAFETY_OFFICER],
                        filters=service.HazardFilter(responsible_person_id=rectifier)).decode("utf-8-sig")
    assert mine.number in direct and theirs.number not in direct
    assert client.get("/api/v1/hazards", params={"responsible_person_id": 0}, headers=headers).status_code == 422
    assert client.get("/api/v1/hazards", params={"responsible_person_id": 2**40}, headers=headers).status_code == 422

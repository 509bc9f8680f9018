"""Every move between every pair of states, for every role, on general and major hazards.

Hand-written expectations of the closed loop (EXPECTED below) are checked against what the
service does; they are written out here on purpose, not derived from workflow.toml, so a
careless edit of the table shows up as a failing test.
"""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import NOW, full_request, make_hazard
from world import World

from hazardloop.auth.roles import Role
from hazardloop.hazards import service
from hazardloop.hazards.models import HazardState as S
from hazardloop.hazards.models import TransitionRequest
from hazardloop.hazards.workflow import TransitionRefused

MANAGER, OFFICER, RECTIFIER = Role.SAFETY_MANAGER, Role.SAFETY_OFFICER, Role.RECTIFIER
OPERATOR, VIEWER, ADMIN = Role.OPERATOR, Role.VIEWER, Role.ADMIN
# (from, to): roles that may, when the rectifier is the hazard's responsible person.
# "G"/"M" restricts a move to general/major hazards.
EXPECTED: dict[tuple[S, S], tuple[set[Role], str | None]] = {
    (S.DRAFT, S.REPORTED): ({MANAGER, OFFICER, RECTIFIER, OPERATOR}, None),
    (S.DRAFT, S.CANCELLED): ({MANAGER, OFFICER, OPERATOR}, None),
    (S.REPORTED, S.CONFIRMED): ({MANAGER, OFFICER}, None),
    (S.REPORTED, S.REJECTED): ({MANAGER, OFFICER}, None),
    (S.REPORTED, S.CLOSED): ({MANAGER, OFFICER}, "G"),
    (S.REPORTED, S.CANCELLED): ({MANAGER}, None),
    (S.CONFIRMED, S.ASSIGNED): ({MANAGER, OFFICER}, "G"),
    (S.CONFIRMED, S.PLAN_PENDING): ({MANAGER, OFFICER}, "M"),
    (S.CONFIRMED, S.CANCELLED): ({MANAGER}, None),
    (S.PLAN_PENDING, S.ASSIGNED): ({MANAGER}, "M"),
    (S.PLAN_PENDING, S.CANCELLED): ({MANAGER}, None),
    (S.ASSIGNED, S.RECTIFYING): ({RECTIFIER}, None),
    (S.ASSIGNED, S.CANCELLED): ({MANAGER}, None),
    (S.RECTIFYING, S.EXTENSION_REQUESTED): ({RECTIFIER}, None),
    (S.RECTIFYING, S.PENDING_ACCEPTANCE): ({RECTIFIER}, None),
    (S.EXTENSION_REQUESTED, S.RECTIFYING): ({MANAGER, OFFICER}, None),
    (S.PENDING_ACCEPTANCE, S.CLOSED): ({MANAGER, OFFICER}, None),
    (S.PENDING_ACCEPTANCE, S.RECTIFYING): ({MANAGER, OFFICER}, None),
    (S.CLOSED, S.REOPENED): ({MANAGER}, None),
    (S.REOPENED, S.RECTIFYING): ({RECTIFIER}, None),
}


def expected_ok(source: S, target: S, role: Role, major: bool) -> bool:
    roles, only = EXPECTED.get((source, target), (set(), None))
    if only == "G" and major or only == "M" and not major:
        return False
    if (source, target) == (S.EXTENSION_REQUESTED, S.RECTIFYING) and major:
        return role is MANAGER  # a major hazard's extension is the main responsible person's call
    return role in roles


@pytest.mark.parametrize("major", [False, True], ids=["general", "major"])
@pytest.mark.parametrize("source", list(S), ids=lambda s: s.value)
def test_every_move_for_every_role(db, world: World, source: S, major: bool) -> None:  # noqa: ANN001
    rectifier = world.users[RECTIFIER]
    for target in S:
        for role, actor in world.users.items():
            hazard = make_hazard(db, state=source, area_id=world.area_a, responsible_id=rectifier.id, major=major)
            request = full_request(target, responsible_id=rectifier.id, major=major)
            ok = expected_ok(source, target, role, major)
            if ok:
                moved = service.transition(db, actor=actor, hazard_id=hazard.id, request=request, now=NOW)
                assert moved.state == target.value, (source, target, role)
            else:
                with pytest.raises(TransitionRefused) as refusal:
                    service.transition(db, actor=actor, hazard_id=hazard.id, request=request, now=NOW)
                db.rollback()
                assert db.get(type(hazard), hazard.id).state == source.value, "a refused move changes nothing"
                assert set(refusal.value.allowed) == {t for t in S if expected_ok(source, t, role, major)}


def test_rectifier_cannot_close_own_hazard(client, db, world: World) -> None:  # noqa: ANN001
    rectifier = world.users[RECTIFIER]
    hazard = make_hazard(db, state=S.PENDING_ACCEPTANCE, area_id=world.area_a, responsible_id=rectifier.id)
    r = client.post(f"/api/v1/hazards/{hazard.id}/transition", json={"to": "CLOSED", "note": "好了"},
                    headers=world.auth(RECTIFIER))
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert detail["state"] == "PENDING_ACCEPTANCE" and detail["allowed"] == []
    assert "rectifier" in detail["reason"]


def test_officer_who_rectified_may_not_accept_own_work(db, world: World) -> None:  # noqa: ANN001
    officer = world.users[OFFICER]
    hazard = make_hazard(db, state=S.PENDING_ACCEPTANCE, area_id=world.area_a, responsible_id=officer.id)
    with pytest.raises(TransitionRefused, match="谁整改不验收"):
        service.transition(db, actor=officer, hazard_id=hazard.id, request=TransitionRequest(to=S.CLOSED), now=NOW)


def test_refusal_lists_what_is_allowed(client, db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=S.REPORTED, area_id=world.area_a, responsible_id=None)
    r = client.post(f"/api/v1/hazards/{hazard.id}/transition", json={"to": "ASSIGNED"}, headers=world.auth(OFFICER))
    assert r.status_code == 409
    assert set(r.json()["detail"]["allowed"]) == {"CONFIRMED", "REJECTED", "CLOSED"}


@pytest.mark.parametrize("missing, message", [
    ({"category": None}, "category"),
    ({"accident_type": None}, "GB 6441"),
    ({"accident_type": "99"}, "unknown GB 6441"),
    ({"level": "huge"}, "unknown level"),
])
def test_confirmation_needs_a_complete_grading(db, world: World, missing: dict, message: str) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=S.REPORTED, area_id=world.area_a, responsible_id=None)
    hazard.category = hazard.accident_type = hazard.level = None
    db.commit()
    values = {"to": S.CONFIRMED, "level": "general", "category": "fire", "accident_type": "08", **missing}
    with pytest.raises(TransitionRefused, match=message):
        service.transition(db, actor=world.users[OFFICER], hazard_id=hazard.id,
                           request=TransitionRequest(**values), now=NOW)


def test_major_hazard_needs_basis_plan_and_five_implementations(db, world: World) -> None:  # noqa: ANN001
    officer = world.users[OFFICER]
    hazard = make_hazard(db, state=S.REPORTED, area_id=world.area_a, responsible_id=None)
    hazard.judgement_basis = None
    db.commit()
    request = TransitionRequest(to=S.CONFIRMED, level="major", category="fire", accident_type="08")
    with pytest.raises(TransitionRefused, match="judgement basis"):
        service.transition(db, actor=officer, hazard_id=hazard.id, request=request, now=NOW)
    request.judgement_basis = "工贸企业重大事故隐患判定标准 第四条(一)"
    service.transition(db, actor=officer, hazard_id=hazard.id, request=request, now=NOW)
    with pytest.raises(TransitionRefused, match="only for general"):
        service.transition(db, actor=officer, hazard_id=hazard.id, request=TransitionRequest(
            to=S.ASSIGNED, responsible_person_id=world.users[RECTIFIER].id, measures="x"), now=NOW)
    with pytest.raises(TransitionRefused, match="五落实"):
        service.transition(db, actor=officer, hazard_id=hazard.id, request=TransitionRequest(
            to=S.PLAN_PENDING, treatment_plan={"goals": "a", "methods": "b", "funds_and_materials": "c",
                                               "organisation": "d", "time_limit": "e", "safety_measures": "f"}),
            now=NOW)


def test_fast_path_needs_before_and_after_photos(db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=S.REPORTED, area_id=world.area_a, responsible_id=None, photos=False)
    request = TransitionRequest(to=S.CLOSED, level="general", category="fire", accident_type="08", note="当场整改")
    with pytest.raises(TransitionRefused, match="before-rectification"):
        service.transition(db, actor=world.users[OFFICER], hazard_id=hazard.id, request=request, now=NOW)


def test_closed_loop_end_to_end_over_http(client, world: World) -> None:
    officer, rectifier, manager = world.auth(OFFICER), world.auth(RECTIFIER), world.auth(MANAGER)
    created = client.post("/api/v1/hazards", json={"area_id": world.area_a, "description": "灭火器过期两个",
                                                   "location": "罐区东侧"}, headers=world.auth(OPERATOR))
    assert created.status_code == 201 and created.json()["state"] == "REPORTED"
    number, hid = created.json()["number"], created.json()["id"]
    assert number.startswith("YH-")

    def move(headers: dict, **body: object) -> dict:
        r = client.post(f"/api/v1/hazards/{hid}/transition", json=body, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    move(officer, to="CONFIRMED", level="general", category="fire", accident_type="08")
    assigned = move(officer, to="ASSIGNED", responsible_person_id=world.users[RECTIFIER].id, measures="更换灭火器")
    assert assigned["deadline"] is not None  # default deadline from policy.toml
    move(rectifier, to="RECTIFYING")
    client.app.state  # noqa: B018 - the client is live
    from hazardloop.hazards.models import Attachment

    with client.app.state.session_factory() as db:
        db.add(Attachment(hazard_id=hid, sha256="1" * 64, filename="after.jpg", content_type="image/jpeg", size=1,
                          phase="after", uploaded_at=dt.datetime.now(dt.UTC)))
        db.commit()
    move(rectifier, to="PENDING_ACCEPTANCE", note="已更换两个灭火器")
    move(officer, to="RECTIFYING", note="压力表未复位")  # acceptance failed
    move(rectifier, to="PENDING_ACCEPTANCE", note="已复位")
    closed = move(officer, to="CLOSED", note="验收合格")
    assert closed["state"] == "CLOSED" and closed["closed_at"]
    reopened = move(manager, to="REOPENED", note="复查发现仍过期")
    assert reopened["reopen_count"] == 1
    timeline = client.get(f"/api/v1/hazards/{hid}/timeline", headers=officer).json()
    assert [e["to_state"] for e in timeline if e["kind"] == "transition"] == [
        "REPORTED", "CONFIRMED", "ASSIGNED", "RECTIFYING", "PENDING_ACCEPTANCE", "RECTIFYING",
        "PENDING_ACCEPTANCE", "CLOSED", "REOPENED"]
    audit = client.get("/api/v1/audit?limit=20", headers=world.auth(ADMIN)).json()
    assert sum(e["action"] == "hazard.transition" for e in audit) >= 8


def test_extension_moves_the_deadline_and_keeps_history(db, world: World) -> None:  # noqa: ANN001
    rectifier, officer = world.users[RECTIFIER], world.users[OFFICER]
    hazard = make_hazard(db, state=S.RECTIFYING, area_id=world.area_a, responsible_id=rectifier.id)
    old = hazard.deadline
    new = old + dt.timedelta(days=10)
    service.transition(db, actor=rectifier, hazard_id=hazard.id, now=NOW, request=TransitionRequest(
        to=S.EXTENSION_REQUESTED, deadline=new, note="备件未到", interim_measures="设置警戒区"))
    service.transition(db, actor=officer, hazard_id=hazard.id, now=NOW,
                       request=TransitionRequest(to=S.RECTIFYING, approved=True, note="同意"))
    assert db.get(type(hazard), hazard.id).deadline == new
    with pytest.raises(TransitionRefused, match="later"):
        service.transition(db, actor=rectifier, hazard_id=hazard.id, now=NOW, request=TransitionRequest(
            to=S.EXTENSION_REQUESTED, deadline=old, note="x", interim_measures="y"))


def test_scoped_users_cannot_touch_hazards_of_other_areas(client, db, world: World) -> None:  # noqa: ANN001
    hazard = make_hazard(db, state=S.REPORTED, area_id=world.area_b, responsible_id=None)
    for role in (OFFICER, MANAGER, OPERATOR, VIEWER, RECTIFIER):
        assert client.get(f"/api/v1/hazards/{hazard.id}", headers=world.auth(role)).status_code == 404
        r = client.post(f"/api/v1/hazards/{hazard.id}/transition", json={"to": "REJECTED", "note": "x"},
                        headers=world.auth(role))
        assert r.status_code == 404
        assert client.get("/api/v1/hazards", headers=world.auth(role)).json()["total"] == 0
        r = client.post("/api/v1/hazards", json={"area_id": world.area_b, "description": "越权上报"},
                        headers=world.auth(role))
        assert r.status_code in (403, 404)


def test_system_may_only_draft_and_a_person_submits(db, world: World) -> None:  # noqa: ANN001
    from hazardloop.hazards.models import HazardSource

    draft = service.create_draft_from_signal(db, area_id=world.area_a, description="GT-101 可燃气体超 H 限 30 秒",
                                             source=HazardSource.SENSOR_ALARM, source_ref="alarm:17",
                                             evidence={"tag": "GT-101", "peak": 27.5}, now=NOW)
    assert draft.state == "DRAFT" and draft.reporter_name == "system"
    submitted = service.transition(db, actor=world.users[OPERATOR], hazard_id=draft.id,
                                   request=TransitionRequest(to=S.REPORTED), now=NOW)
    assert submitted.state == "REPORTED"


def test_duplicate_report_in_same_area_is_flagged(client, world: World) -> None:
    first = client.post("/api/v1/hazards", json={"area_id": world.area_a, "description": "罐区东侧配电箱未接地"},
                        headers=world.auth(OFFICER)).json()
    client.patch(f"/api/v1/users/{world.users[MANAGER].id}", json={"all_areas": True}, headers=world.auth(ADMIN))
    other_area = client.post("/api/v1/hazards", json={"area_id": world.area_b, "description": "罐区东侧配电箱未接地"},
                             headers=world.auth(MANAGER)).json()
    second = client.post("/api/v1/hazards", json={"area_id": world.area_a, "description": "罐区东侧配电箱没有接地"},
                         headers=world.auth(OPERATOR)).json()
    unrelated = client.post("/api/v1/hazards", json={"area_id": world.area_a, "description": "消防通道被货物堵塞"},
                            headers=world.auth(OPERATOR)).json()
    assert second["possible_duplicate_of_id"] == first["id"]
    assert other_area["possible_duplicate_of_id"] is None
    assert unrelated["possible_duplicate_of_id"] is None


def test_bad_reports_are_refused_with_the_field(client, world: World) -> None:
    for body, field in (({"area_id": world.area_a, "description": ""}, "description"),
                        ({"area_id": world.area_a, "description": "x" * 5000}, "description"),
                        ({"area_id": world.area_a, "description": "ok ok", "category": "nonsense"}, "category"),
                        ({"area_id": world.area_a, "description": "ok ok", "found_at": "2999-01-01T00:00:00Z"},
                         "found_at")):
        r = client.post("/api/v1/hazards", json=body, headers=world.auth(OFFICER))
        assert r.status_code == 422 and field in r.text


def test_times_without_a_zone_are_refused_naming_the_field(client, world: World) -> None:
    r = client.post("/api/v1/hazards", json={"area_id": world.area_a, "description": "配电箱未接地",
                                              "found_at": "2026-05-01T08:00:00"}, headers=world.auth(OFFICER))
    assert r.status_code == 422 and "found_at" in r.text


def test_list_filter_dates_need_a_zone(client, world: World) -> None:
    ok = client.get("/api/v1/hazards", params={"found_from": "2026-01-01T00:00:00+08:00"}, headers=world.auth(OFFICER))
    bad = client.get("/api/v1/hazards", params={"found_from": "2026-01-01"}, headers=world.auth(OFFICER))
    assert ok.status_code == 200 and bad.status_code == 422 and "found_from" in bad.text


def test_review_follows_the_close_and_links_the_repeat(client, db, world: World) -> None:  # noqa: ANN001
    earlier = make_hazard(db, state=S.CLOSED, area_id=world.area_a, responsible_id=None)
    closed = make_hazard(db, state=S.CLOSED, area_id=world.area_a, responsible_id=None)
    open_one = make_hazard(db, state=S.RECTIFYING, area_id=world.area_a, responsible_id=None)
    body = {"root_cause": "接地线未纳入月检", "lessons": "纳入月度电气检查表", "repeat_of_id": earlier.id}
    r = client.patch(f"/api/v1/hazards/{closed.id}/review", json=body, headers=world.auth(OFFICER))
    assert r.status_code == 200 and r.json()["repeat_of_id"] == earlier.id and r.json()["lessons"]
    still_open = client.patch(f"/api/v1/hazards/{open_one.id}/review", json=body, headers=world.auth(OFFICER))
    by_rectifier = client.patch(f"/api/v1/hazards/{closed.id}/review", json=body, headers=world.auth(RECTIFIER))
    assert (still_open.status_code, by_rectifier.status_code) == (409, 403)

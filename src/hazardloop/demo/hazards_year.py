"""A year of hazards for the demo plant, driven through the real workflow with a simulated clock.

Each hazard is reported, graded, assigned, rectified, accepted (or not) by the demo people at
plausible times; every step is a real service call, so the timeline, the audit chain and the
deadline flags are what a year of real use would leave. Whatever would happen after "today"
simply has not happened yet, which is what leaves hazards in every state, some of them overdue.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from hazardloop.auth import authz
from hazardloop.auth.models import User
from hazardloop.auth.roles import Role
from hazardloop.hazards import attachments, service
from hazardloop.hazards.intelligence import suggest_for
from hazardloop.hazards.models import AttachmentPhase, HazardCreate, HazardSource, HazardState, TransitionRequest
from hazardloop.hazards.workflow import FIVE_IMPLEMENTATIONS, TREATMENT_PLAN_PARTS, TransitionRefused
from hazardloop.plant.models import Area

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Template:
    category: str
    accident_type: str
    areas: tuple[str, ...] | None
    description: str
    measures: str


@lru_cache(maxsize=1)
def templates() -> tuple[Template, ...]:
    text = (resources.files("hazardloop.demo") / "data" / "hazard_templates.csv").read_text("utf-8")
    return tuple(
        Template(
            r["category"],
            r["accident_type"],
            None if r["areas"] == "*" else tuple(r["areas"].split("|")),
            r["description"],
            r["measures"],
        )
        for r in csv.DictReader(io.StringIO(text))
    )


@lru_cache(maxsize=4)
def _photo(colour: tuple[int, int, int], label: str) -> bytes:
    """A small generated JPEG standing in for a site photo (the same bytes are stored once)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (480, 360), colour)
    ImageDraw.Draw(image).text((20, 20), label, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


@lru_cache(maxsize=256)
def _suggestion(text: str) -> dict:
    return suggest_for(text).as_ai_fields()


def suggestion_fields(text: str) -> dict:
    """What the report form would have suggested (rules, cold start), kept so people's gradings become labels."""
    return dict(_suggestion(text))


class _Year:
    def __init__(
        self,
        db: Session,
        people: dict[str, User],
        areas: list[Area],
        data_dir: Path,
        today: dt.datetime,
        rng: np.random.Generator,
    ):
        self.db, self.people, self.areas, self.data_dir, self.today, self.rng = db, people, areas, data_dir, today, rng

    def who(self, area_id: int, role: Role, *, prefer: str | None = None) -> User:
        if prefer and authz.can_see_area(self.people[prefer], area_id):
            return self.people[prefer]
        able = [
            u
            for u in self.people.values()
            if u.role == role.value and authz.can_see_area(u, area_id) and not u.is_department_head
        ]
        return able[int(self.rng.integers(len(able)))]

    def photo(self, actor: User, hazard_id: int, phase: AttachmentPhase, at: dt.datetime) -> None:
        colour = {AttachmentPhase.BEFORE: (150, 60, 50), AttachmentPhase.AFTER: (50, 120, 70)}.get(phase, (70, 70, 140))
        attachments.add_attachment(
            self.db,
            actor=actor,
            hazard_id=hazard_id,
            content=_photo(colour, phase.value),
            filename=f"{phase.value}.jpg",
            phase=phase,
            data_dir=self.data_dir,
            max_bytes=10 * 1024 * 1024,
            now=at,
        )

    def move(self, actor: User, hazard_id: int, at: dt.datetime, **fields: object) -> bool:
        """One step at time `at`, unless `at` is still in the future (then the story stops here)."""
        if at >= self.today:
            return False
        service.transition(self.db, actor=actor, hazard_id=hazard_id, request=TransitionRequest(**fields), now=at)
        return True

    def story(self, found: dt.datetime) -> None:
        rng = self.rng
        area = self.areas[int(rng.integers(len(self.areas)))]
        choices = [t for t in templates() if t.areas is None or area.code in t.areas]
        template = choices[int(rng.integers(len(choices)))]
        reporter = self.who(area.id, [Role.OPERATOR, Role.SAFETY_OFFICER, Role.RECTIFIER][int(rng.integers(3))])
        location = f"{area.name_zh}{['东侧', '西侧', '北侧', '南侧', '中部'][int(rng.integers(5))]}"
        hazard = service.create(
            self.db,
            actor=reporter,
            now=found,
            ai=suggestion_fields(template.description),
            data=HazardCreate(
                area_id=area.id,
                description=template.description,
                location=location,
                source=[HazardSource.INSPECTION, HazardSource.REPORT][int(rng.integers(2))],
                found_at=found,
            ),
        )
        officer = self.who(area.id, Role.SAFETY_OFFICER)
        manager = self.people["manager"]
        rectifier = self.who(area.id, Role.RECTIFIER)
        grading = {"category": template.category, "accident_type": template.accident_type}
        t = found + HOUR * float(rng.uniform(2, 30))
        roll = rng.random()
        if roll < 0.05 and hazard.possible_duplicate_of_id:
            self.move(
                officer,
                hazard.id,
                t,
                to=HazardState.REJECTED,
                duplicate_of=hazard.possible_duplicate_of_id,
                note="重复上报",
            )
            return
        if roll < 0.07:
            self.move(officer, hazard.id, t, to=HazardState.REJECTED, note="经核实不构成隐患")
            return
        major = roll > 0.97
        if not major and roll < 0.27:  # 立查立改: found and fixed on the spot
            self.photo(reporter, hazard.id, AttachmentPhase.BEFORE, found)
            if t < self.today:
                self.photo(officer, hazard.id, AttachmentPhase.AFTER, t)
            self.move(
                officer, hazard.id, t, to=HazardState.CLOSED, level="general", note="立查立改，已当场整改", **grading
            )
            return
        level = "major" if major else ("notable" if roll > 0.9 else "general")
        if not self.move(
            officer,
            hazard.id,
            t,
            to=HazardState.CONFIRMED,
            level=level,
            judgement_basis="工贸企业重大事故隐患判定标准（应急管理部令第10号）" if major else None,
            **grading,
        ):
            return
        t += HOUR * float(rng.uniform(1, 24))
        if major:
            plan = {p: "详见治理方案" for p in TREATMENT_PLAN_PARTS}
            five = {p: "已落实" for p in FIVE_IMPLEMENTATIONS}
            if not self.move(
                officer,
                hazard.id,
                t,
                to=HazardState.PLAN_PENDING,
                treatment_plan=plan,
                five_implementations=five,
                production_suspended=True,
            ):
                return
            t += DAY * float(rng.uniform(1, 5))
            if not self.move(
                manager,
                hazard.id,
                t,
                to=HazardState.ASSIGNED,
                responsible_person_id=rectifier.id,
                measures=template.measures,
                funds_budget=float(rng.integers(5, 80)) * 1000,
            ):
                return
        elif not self.move(
            officer,
            hazard.id,
            t,
            to=HazardState.ASSIGNED,
            responsible_person_id=rectifier.id,
            measures=template.measures,
            funds_budget=float(rng.integers(0, 20)) * 500,
        ):
            return
        if rng.random() < 0.01:
            self.move(manager, hazard.id, t + DAY, to=HazardState.CANCELLED, note="装置停用，隐患随之消除")
            return
        self.rectify(hazard.id, t, rectifier, officer, manager, major)

    def rectify(
        self, hazard_id: int, t: dt.datetime, rectifier: User, officer: User, manager: User, major: bool
    ) -> None:
        rng = self.rng
        hazard = service.get(self.db, actor=manager, hazard_id=hazard_id)
        deadline = hazard.deadline
        t += HOUR * float(rng.uniform(1, 36)) if rng.random() > 0.1 else DAY * float(rng.uniform(3, 12))
        if not self.move(rectifier, hazard_id, t, to=HazardState.RECTIFYING):
            return
        work = (deadline - t) * float(rng.uniform(0.2, 1.6))  # about one in four runs late
        if rng.random() < 0.08 and t + work / 2 < self.today:
            ask = t + work / 2
            new_deadline = deadline + DAY * int(rng.integers(5, 20))
            self.move(
                rectifier,
                hazard_id,
                ask,
                to=HazardState.EXTENSION_REQUESTED,
                deadline=new_deadline,
                note="备件采购周期长",
                interim_measures="设置警戒区并加强巡检",
            )
            decider = manager if major else officer
            decided = ask + DAY * float(rng.uniform(1, 6))
            if not self.move(decider, hazard_id, decided, to=HazardState.RECTIFYING, approved=True, note="同意延期"):
                return
            work += DAY * 5
        done = t + work
        if done >= self.today:
            return
        self.photo(rectifier, hazard_id, AttachmentPhase.AFTER, done)
        self.move(
            rectifier,
            hazard_id,
            done,
            to=HazardState.PENDING_ACCEPTANCE,
            note="已按要求完成整改",
            funds_actual=float(rng.integers(0, 20)) * 500,
        )
        accept_at = done + HOUR * float(rng.uniform(4, 72))
        acceptor = manager if major else officer
        if rng.random() < 0.1:
            if not self.move(acceptor, hazard_id, accept_at, to=HazardState.RECTIFYING, note="整改不彻底，需返工"):
                return
            accept_at += DAY * float(rng.uniform(1, 4))
            self.photo(rectifier, hazard_id, AttachmentPhase.AFTER, accept_at)
            if not self.move(rectifier, hazard_id, accept_at, to=HazardState.PENDING_ACCEPTANCE, note="已返工"):
                return
            accept_at += DAY
        if major and accept_at < self.today:
            self.photo(acceptor, hazard_id, AttachmentPhase.ACCEPTANCE, accept_at)
        if not self.move(acceptor, hazard_id, accept_at, to=HazardState.CLOSED, note="验收合格，同意销号"):
            return
        if rng.random() < 0.03:
            reopen_at = accept_at + DAY * float(rng.uniform(5, 40))
            if self.move(manager, hazard_id, reopen_at, to=HazardState.REOPENED, note="复查发现问题复发"):
                self.move(rectifier, hazard_id, reopen_at + DAY * float(rng.uniform(1, 6)), to=HazardState.RECTIFYING)


def _showcase(year: _Year, target: HazardState, at: dt.datetime) -> None:
    """One hazard walked to `target` by a fixed script, for a state the random year happened to miss."""
    area = next(a for a in year.areas if a.code == "TANK")
    officer, manager = year.people["officer"], year.people["manager"]
    rectifier, operator = year.people["rectifier"], year.people["operator"]
    if target is HazardState.DRAFT:
        service.create_draft_from_signal(
            year.db,
            area_id=area.id,
            source=HazardSource.SENSOR_ALARM,
            source_ref="demo-alarm:GT-101",
            description="GT-101 可燃气体浓度超过一级报警值（20 %LEL）持续 40 秒，疑似法兰泄漏",
            evidence={"tag": "GT-101", "peak": 27.4, "unit": "%LEL", "limit": "H"},
            now=at,
        )
        return
    major = target is HazardState.PLAN_PENDING
    steps: list[tuple[User, dict]] = [
        (
            officer,
            {
                "to": HazardState.CONFIRMED,
                "level": "major" if major else "general",
                "category": "electrical",
                "accident_type": "05",
                "judgement_basis": "工贸企业重大事故隐患判定标准 第四条" if major else None,
            },
        ),
    ]
    if major:
        steps.append(
            (
                officer,
                {
                    "to": HazardState.PLAN_PENDING,
                    "treatment_plan": {p: "详见治理方案" for p in TREATMENT_PLAN_PARTS},
                    "five_implementations": {p: "已落实" for p in FIVE_IMPLEMENTATIONS},
                },
            )
        )
    else:
        steps += [
            (officer, {"to": HazardState.ASSIGNED, "responsible_person_id": rectifier.id, "measures": "加装接地线"}),
            (rectifier, {"to": HazardState.RECTIFYING}),
            (
                rectifier,
                {
                    "to": HazardState.EXTENSION_REQUESTED,
                    "deadline": at + 20 * DAY,
                    "note": "等待防爆配件",
                    "interim_measures": "断电挂牌",
                },
            ),
            (officer, {"to": HazardState.RECTIFYING, "approved": True, "note": "同意"}),
            (rectifier, {"to": HazardState.PENDING_ACCEPTANCE, "note": "已完成"}),
            (officer, {"to": HazardState.CLOSED, "note": "验收合格"}),
            (manager, {"to": HazardState.REOPENED, "note": "复查发现接地线松脱"}),
        ]
    hazard = service.create(
        year.db,
        actor=operator,
        now=at,
        data=HazardCreate(
            area_id=area.id, description="罐区防爆配电箱接地线锈蚀断开", location="罐区北侧", found_at=at
        ),
    )
    if target is HazardState.REPORTED:
        return
    for number, (actor, fields) in enumerate(steps, start=1):
        if fields["to"] is HazardState.PENDING_ACCEPTANCE:
            year.photo(rectifier, hazard.id, AttachmentPhase.AFTER, at + HOUR * number)
        service.transition(
            year.db, actor=actor, hazard_id=hazard.id, now=at + HOUR * number, request=TransitionRequest(**fields)
        )
        if fields["to"] is target:
            return


def build_hazard_year(
    db: Session,
    *,
    people: dict[str, User],
    areas: list[Area],
    data_dir: Path,
    today: dt.datetime,
    seed: int,
    per_day: float = 2.0,
) -> int:
    """Simulate a year of hazards ending at `today`; returns how many were reported."""
    rng = np.random.default_rng(seed)
    year = _Year(db, people, areas, data_dir, today, rng)
    start = today - 365 * DAY
    count = 0
    for day in range(365):
        for _ in range(int(rng.poisson(per_day))):
            found = start + day * DAY + HOUR * float(rng.uniform(7, 18))
            try:
                year.story(found)
            except TransitionRefused as refusal:  # a bug in the story, not in the data: say so loudly
                raise RuntimeError(f"demo story broke the workflow rules: {refusal}") from refusal
            count += 1
    present, _ = service.list_for_user(db, actor=people["admin"], limit=None)
    missing = [s for s in HazardState if s not in {HazardState(h.state) for h in present}]
    for offset, state in enumerate(missing):
        if state not in (HazardState.REJECTED, HazardState.CANCELLED):
            _showcase(year, state, today - DAY * (2 + offset) - 12 * HOUR)
            count += 1
    return count

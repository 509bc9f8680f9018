"""Build the demo plant into a database: plant model, people in every role, simulated sensor history.

Everything goes through the domain services with a real admin as the actor, so the demo's
audit chain and area scopes are exactly what a real installation would have.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy.orm import Session

from hazardloop.auth import service as auth_service
from hazardloop.auth.models import User, UserCreate
from hazardloop.auth.roles import Role
from hazardloop.demo.alarm_history import AlarmHistory, build_alarm_history
from hazardloop.demo.hazards_year import build_hazard_year
from hazardloop.demo.signals import simulate
from hazardloop.demo.spec import PlantSpec, load_plant_spec
from hazardloop.errors import Conflict
from hazardloop.plant import service as plant
from hazardloop.plant.models import AreaCreate, EquipmentCreate, SensorCreate, SiteCreate
from hazardloop.plant.reference import sensor_kinds

DEMO_PASSWORD = "hazardloop-demo"
# A fixed start so that the same seed gives the same history on every machine and every day.
DEMO_START = dt.datetime(2026, 1, 5, 0, 0)
DEMO_STEP = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class DemoPerson:
    username: str
    display_name: str
    role: Role
    department: str
    areas: tuple[str, ...] | None  # None = all areas
    head: bool = False  # 部门负责人: receives the second escalation step


DEMO_PEOPLE = (
    DemoPerson("admin", "系统管理员 Admin", Role.ADMIN, "信息中心", None),
    DemoPerson("manager", "王安全 Wang (safety manager)", Role.SAFETY_MANAGER, "安全环保部", None),
    DemoPerson("officer", "李巡检 Li (safety officer)", Role.SAFETY_OFFICER, "安全环保部", ("TANK", "REACT", "WH")),
    DemoPerson("rectifier", "张维修 Zhang (rectifier)", Role.RECTIFIER, "设备维修车间", ("TANK", "LOAD")),
    DemoPerson("operator", "赵中控 Zhao (operator)", Role.OPERATOR, "生产运行部", None),
    DemoPerson("viewer", "陈访客 Chen (viewer)", Role.VIEWER, "综合办公室", ("BOIL", "UTIL")),
    DemoPerson("officer2", "周安全 Zhou (safety officer)", Role.SAFETY_OFFICER, "安全环保部", ("LOAD", "BOIL", "UTIL")),
    DemoPerson("rectifier2", "吴工 Wu (rectifier)", Role.RECTIFIER, "设备维修车间", ("REACT", "WH")),
    DemoPerson("rectifier3", "郑工 Zheng (rectifier)", Role.RECTIFIER, "设备维修车间", ("BOIL", "UTIL")),
    DemoPerson("head", "孙主任 Sun (head of maintenance)", Role.RECTIFIER, "设备维修车间", None, head=True),
)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str
    areas: str


@dataclass(frozen=True)
class DemoResult:
    logins: list[DemoLogin]
    history_path: Path
    truth_path: Path
    sensors: int
    alarms: AlarmHistory | None = None  # the recent alarm history, when one was built


def _build_plant(db: Session, admin: User, spec: PlantSpec) -> None:
    plant.get_or_create_enterprise(
        db, actor=admin, code=spec.enterprise_code, name_zh=spec.enterprise_name_zh, name_en=spec.enterprise_name_en
    )
    sites = {
        s.code: plant.create_site(
            db,
            actor=admin,
            data=SiteCreate(
                code=s.code, name_zh=s.name_zh, name_en=s.name_en, plan_width=s.plan_width, plan_height=s.plan_height
            ),
        )
        for s in spec.sites
    }
    areas = {
        a.code: plant.create_area(
            db,
            actor=admin,
            data=AreaCreate(
                site_id=sites[a.site].id,
                code=a.code,
                name_zh=a.name_zh,
                name_en=a.name_en,
                risk_grade=a.risk_grade,
                polygon=[list(p) for p in a.polygon],
            ),
        )
        for a in spec.areas
    }
    equipment = {
        e.code: plant.create_equipment(
            db,
            actor=admin,
            data=EquipmentCreate(
                area_id=areas[e.area].id, code=e.code, name_zh=e.name_zh, name_en=e.name_en, kind=e.kind
            ),
        )
        for e in spec.equipment
    }
    kinds = sensor_kinds()
    for s in spec.sensors:
        item = equipment[s.equipment]
        plant.create_sensor(
            db,
            actor=admin,
            data=SensorCreate(
                tag=s.tag,
                name=f"{item.name_zh}{kinds[s.kind].name_zh}",
                kind=s.kind,
                unit=s.unit,
                area_id=item.area_id,
                equipment_id=item.id,
                range_min=s.range_min,
                range_max=s.range_max,
                ll=s.ll,
                l=s.l,
                h=s.h,
                hh=s.hh,
                deadband=s.deadband,
                on_delay_s=s.on_delay_s,
                off_delay_s=s.off_delay_s,
                sample_period_s=s.sample_period_s,
            ),
        )


def _build_stream_user(db: Session, admin: User) -> None:
    """The machine user the live demo stream writes and judges readings as (operator, every area)."""
    from hazardloop.demo.live import STREAM_USER

    auth_service.create_user(
        db,
        actor=admin,
        data=UserCreate(
            username=STREAM_USER,
            display_name="演示数据流 Demo stream",
            role=Role.OPERATOR,
            is_machine=True,
            all_areas=True,
        ),
    )


def _build_people(db: Session, admin: User) -> None:
    for person in DEMO_PEOPLE[1:]:
        area_ids = [plant.area_by_code(db, code).id for code in person.areas] if person.areas else []
        auth_service.create_user(
            db,
            actor=admin,
            data=UserCreate(
                username=person.username,
                display_name=person.display_name,
                role=person.role,
                password=DEMO_PASSWORD,
                department=person.department,
                is_department_head=person.head,
                all_areas=person.areas is None,
                area_ids=area_ids,
            ),
        )


def build_demo(
    db: Session,
    *,
    data_dir: Path,
    seed: int = 7,
    days: int = 7,
    hazards_per_day: float = 2.0,
    today: dt.datetime | None = None,
    console: Console | None = None,
    store: Any = None,  # noqa: ANN401 - a reading store: with alarm_days, the alarm history's readings go there
    alarm_days: int = 0,
) -> DemoResult:
    """Build the plant once (a second run keeps the database and refreshes the history files).

    With ``store`` and ``alarm_days``, the first build also leaves that many days of alarms before now,
    acknowledged and judged as a shift team would have (demo/alarm_history.py)."""
    console = console or Console(quiet=True)
    spec = load_plant_spec()
    alarms = None
    if plant.current_enterprise(db) is None:
        first = DEMO_PEOPLE[0]
        admin = auth_service.create_user(
            db,
            actor=None,
            data=UserCreate(
                username=first.username,
                display_name=first.display_name,
                role=first.role,
                password=DEMO_PASSWORD,
                department=first.department,
            ),
        )
        with console.status("building the plant model / 正在建立装置模型"):
            _build_plant(db, admin, spec)
            _build_people(db, admin)
            _build_stream_user(db, admin)
        history_end = today or dt.datetime.now(dt.UTC)  # the alarm history runs up to now (or the given day)
        # the year ends at today's midnight (UTC): deterministic for a seed and a build date
        today = today or dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        with console.status("simulating a year of hazards / 正在生成一年的隐患台账"):
            people = {u.username: u for u in auth_service.list_users(db, actor=admin)}
            reported = build_hazard_year(
                db,
                people=people,
                areas=plant.list_areas(db, actor=admin),
                data_dir=data_dir,
                today=today,
                seed=seed,
                per_day=hazards_per_day,
            )
        console.print(f"[green]a year of hazards: {reported} reported[/]")
        if store is not None and alarm_days > 0:
            with console.status(f"simulating {alarm_days} days of alarms / 正在生成近 {alarm_days} 天的报警"):
                alarms = build_alarm_history(db, store, days=alarm_days, seed=seed, now=history_end,
                                             admin=admin, operator=people["operator"])
            console.print(f"[green]{alarm_days} days of alarms: {alarms.raised} raised "
                          f"({', '.join(f'{k} {v}' for k, v in alarms.judged.items())}; "
                          f"{alarms.unhandled} left to handle), {alarms.readings:,} readings stored[/]")
        console.print(
            f"[green]demo plant built: {len(spec.areas)} areas, {len(spec.equipment)} equipment, "
            f"{len(spec.sensors)} sensors, {len(DEMO_PEOPLE)} people[/]"
        )
    elif plant.current_enterprise(db).code != spec.enterprise_code:
        raise Conflict("this database already holds another enterprise; use a fresh data directory")
    else:
        console.print("[yellow]demo plant already in the database; keeping it[/]")
    with console.status(f"simulating {days} days of sensor history / 正在生成传感器历史"):
        simulation = simulate(spec, start=DEMO_START, duration=dt.timedelta(days=days), step=DEMO_STEP, seed=seed)
        out = data_dir / "demo"
        out.mkdir(parents=True, exist_ok=True)
        history_path, truth_path = out / "sensor_history.csv", out / "ground_truth.csv"
        simulation.to_frame().to_csv(history_path, index=False, float_format="%.4f")
        _write_truth(simulation, truth_path)
    logins = [
        DemoLogin(p.username, DEMO_PASSWORD, p.role.value, "all / 全部" if p.areas is None else ", ".join(p.areas))
        for p in DEMO_PEOPLE
    ]
    return DemoResult(logins=logins, history_path=history_path, truth_path=truth_path, sensors=len(spec.sensors),
                      alarms=alarms)


def _write_truth(simulation, path: Path) -> None:  # noqa: ANN001
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "cause", "tags", "start", "end", "description_zh", "description_en"])
        for event in simulation.events:
            writer.writerow(
                [
                    event.kind,
                    event.cause,
                    " ".join(event.tags),
                    event.start.isoformat(),
                    event.end.isoformat(),
                    event.description_zh,
                    event.description_en,
                ]
            )

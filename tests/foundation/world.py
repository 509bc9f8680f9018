"""A small plant and one person per role, built through the services as a real installation would be."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from hazardloop.auth import service as auth_service
from hazardloop.auth.models import User, UserCreate
from hazardloop.auth.roles import Role
from hazardloop.plant import service as plant
from hazardloop.plant.models import AreaCreate, EquipmentCreate, SensorCreate, SiteCreate

PASSWORD = "correct-horse-9"


@dataclass
class World:
    admin: User
    users: dict[Role, User]
    tokens: dict[Role, str]
    site_id: int
    area_a: int  # granted to every scoped user
    area_b: int  # granted to nobody but admins and all-area users
    equipment_a: int
    equipment_b: int
    sensor_a: int
    sensor_b: int
    extra: dict[str, int] = field(default_factory=dict)

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def gas_sensor(tag: str, area_id: int, equipment_id: int | None = None, **overrides: object) -> SensorCreate:
    values = dict(
        tag=tag,
        name="可燃气体探测器",
        kind="combustible_gas",
        unit="%LEL",
        area_id=area_id,
        equipment_id=equipment_id,
        range_min=0,
        range_max=100,
        h=20,
        hh=50,
        deadband=2,
        on_delay_s=5,
    )
    values.update(overrides)
    return SensorCreate(**values)


def build_world(db: Session) -> World:
    admin = auth_service.create_user(
        db, actor=None, data=UserCreate(username="admin", display_name="管理员", role=Role.ADMIN, password=PASSWORD)
    )
    plant.get_or_create_enterprise(db, actor=admin, code="ACME", name_zh="测试化工")
    site = plant.create_site(db, actor=admin, data=SiteCreate(code="S1", name_zh="一厂"))
    area_a = plant.create_area(
        db,
        actor=admin,
        data=AreaCreate(
            site_id=site.id, code="TANK", name_zh="罐区", risk_grade="red", polygon=[[0, 0], [100, 0], [100, 100]]
        ),
    )
    area_b = plant.create_area(
        db,
        actor=admin,
        data=AreaCreate(
            site_id=site.id,
            code="BOIL",
            name_zh="锅炉房",
            risk_grade="yellow",
            polygon=[[200, 0], [300, 0], [300, 100]],
        ),
    )
    eq_a = plant.create_equipment(
        db, actor=admin, data=EquipmentCreate(area_id=area_a.id, code="T-101", name_zh="储罐")
    )
    eq_b = plant.create_equipment(
        db, actor=admin, data=EquipmentCreate(area_id=area_b.id, code="B-201", name_zh="锅炉")
    )
    sensor_a = plant.create_sensor(db, actor=admin, data=gas_sensor("GT-101", area_a.id, eq_a.id))
    sensor_b = plant.create_sensor(db, actor=admin, data=gas_sensor("GT-201", area_b.id, eq_b.id))
    users: dict[Role, User] = {Role.ADMIN: admin}
    for role in Role:
        if role is Role.ADMIN:
            continue
        users[role] = auth_service.create_user(
            db,
            actor=admin,
            data=UserCreate(
                username=role.value, display_name=role.value, role=role, password=PASSWORD, area_ids=[area_a.id]
            ),
        )
    tokens = {
        role: auth_service.create_token(db, actor=admin, user_id=user.id, name="test")[1]
        for role, user in users.items()
    }
    return World(
        admin=admin,
        users=users,
        tokens=tokens,
        site_id=site.id,
        area_a=area_a.id,
        area_b=area_b.id,
        equipment_a=eq_a.id,
        equipment_b=eq_b.id,
        sensor_a=sensor_a.id,
        sensor_b=sensor_b.id,
    )

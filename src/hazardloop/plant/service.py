"""Sites, areas, equipment and sensors. The only code that touches the plant tables.

Every function takes the acting user: role permissions and area scopes are checked here,
so the web routes, the CLI and other domains all pass through the same gate.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hazardloop.auth import audit, authz
from hazardloop.auth.models import User
from hazardloop.db import Base
from hazardloop.errors import Conflict, InvalidInput, NotFound
from hazardloop.plant.models import (
    Area,
    AreaCreate,
    AreaUpdate,
    Enterprise,
    Equipment,
    EquipmentCreate,
    EquipmentUpdate,
    Sensor,
    SensorCreate,
    SensorUpdate,
    Site,
    SiteCreate,
    SiteUpdate,
)
from hazardloop.plant.rules import sensor_problems

M = TypeVar("M", bound=Base)


# ---------------------------------------------------------------- shared mechanics


def _area_of(db: Session, obj: Base) -> int | None:
    if isinstance(obj, Area):
        return obj.id
    if isinstance(obj, Equipment | Sensor):
        return obj.area_id
    return None


def _visible(db: Session, actor: User, obj: Base) -> bool:
    if isinstance(obj, Site):
        return actor.sees_all_areas or obj.id in _granted_site_ids(db, actor)
    return authz.can_see_area(actor, _area_of(db, obj))


def _granted_site_ids(db: Session, actor: User) -> set[int]:
    if not actor.area_ids:
        return set()
    return set(db.scalars(select(Area.site_id).where(Area.id.in_(actor.area_ids))))


def _get(db: Session, actor: User, model: type[M], obj_id: int) -> M:
    authz.require(actor, "plant.read")
    obj = db.get(model, obj_id)
    message = f"{model.__tablename__.rstrip('s')} {obj_id} not found"
    if obj is None:
        raise NotFound(message)
    if not _visible(db, actor, obj):
        raise authz.OutOfScope(message)  # same words as a missing one: nothing about it leaks
    return obj


def _require_unique(db: Session, model: type[Base], field: str, value: Any, exclude_id: int | None = None) -> None:
    column = getattr(model, field)
    query = select(model.id).where(column == value)
    if exclude_id is not None:
        query = query.where(model.id != exclude_id)
    if db.scalar(query) is not None:
        raise Conflict(f"{field} '{value}' already exists")


def _save(db: Session, actor: User, obj: Base, action: str, before: dict | None = None) -> None:
    db.add(obj)
    db.flush()
    audit.record(
        db,
        actor=actor,
        action=action,
        target_type=obj.__tablename__,
        target_id=obj.id,
        before=before,
        after=audit.snapshot(obj),
    )
    db.commit()


def _apply(obj: Base, changes: BaseModel) -> dict[str, Any]:
    before = audit.snapshot(obj)
    for key, value in changes.model_dump(exclude_unset=True).items():
        setattr(obj, key, value.value if hasattr(value, "value") else value)
    return before


def _delete(db: Session, actor: User, obj: Base, dependents: dict[str, int]) -> None:
    blocking = {name: n for name, n in dependents.items() if n}
    if blocking:
        listed = ", ".join(f"{n} {name}" for name, n in blocking.items())
        raise Conflict(f"{obj.__tablename__.rstrip('s')} still has {listed}; move or delete them first")
    before = audit.snapshot(obj)
    db.delete(obj)
    audit.record(
        db,
        actor=actor,
        action=f"{obj.__tablename__}.delete",
        target_type=obj.__tablename__,
        target_id=obj.id,
        before=before,
    )
    db.commit()


def _count(db: Session, model: type[Base], **where: Any) -> int:
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return db.scalar(query) or 0


# ---------------------------------------------------------------- enterprise


def get_or_create_enterprise(
    db: Session, *, actor: User | None, code: str, name_zh: str, name_en: str = ""
) -> Enterprise:
    """The one enterprise of an installation (created on first use by the demo or the admin)."""
    enterprise = db.scalar(select(Enterprise).where(Enterprise.code == code))
    if enterprise is None:
        if actor is not None:
            authz.require(actor, "plant.write")
        enterprise = Enterprise(code=code, name_zh=name_zh, name_en=name_en)
        db.add(enterprise)
        db.flush()
        audit.record(
            db,
            actor=actor,
            action="enterprises.create",
            target_type="enterprises",
            target_id=enterprise.id,
            after=audit.snapshot(enterprise),
        )
        db.commit()
    return enterprise


def current_enterprise(db: Session) -> Enterprise | None:
    return db.scalar(select(Enterprise).order_by(Enterprise.id).limit(1))


# ---------------------------------------------------------------- sites


def list_sites(db: Session, *, actor: User) -> list[Site]:
    authz.require(actor, "plant.read")
    query = select(Site).order_by(Site.code)
    if not actor.sees_all_areas:
        query = query.where(Site.id.in_(_granted_site_ids(db, actor)))
    return list(db.scalars(query))


def get_site(db: Session, *, actor: User, site_id: int) -> Site:
    return _get(db, actor, Site, site_id)


def create_site(db: Session, *, actor: User, data: SiteCreate) -> Site:
    authz.require(actor, "plant.write")
    enterprise = current_enterprise(db)
    if enterprise is None:
        raise Conflict("no enterprise yet; run `hazardloop demo` or create the enterprise first")
    _require_unique(db, Site, "code", data.code)
    site = Site(enterprise_id=enterprise.id, **data.model_dump())
    _save(db, actor, site, "sites.create")
    return site


def update_site(db: Session, *, actor: User, site_id: int, data: SiteUpdate) -> Site:
    authz.require(actor, "plant.write")
    site = _get(db, actor, Site, site_id)
    before = _apply(site, data)
    _save(db, actor, site, "sites.update", before)
    return site


def delete_site(db: Session, *, actor: User, site_id: int) -> None:
    authz.require(actor, "plant.write")
    site = _get(db, actor, Site, site_id)
    _delete(db, actor, site, {"areas": _count(db, Area, site_id=site.id)})


# ---------------------------------------------------------------- areas


def _check_polygon_in_plan(site: Site, polygon: list[list[float]]) -> None:
    for x, y in polygon:
        if not (0 <= x <= site.plan_width and 0 <= y <= site.plan_height):
            raise InvalidInput(
                "polygon", f"point [{x}, {y}] lies outside the site plan 0..{site.plan_width} × 0..{site.plan_height}"
            )


def list_areas(db: Session, *, actor: User, site_id: int | None = None) -> list[Area]:
    authz.require(actor, "plant.read")
    query = select(Area).order_by(Area.code)
    if site_id is not None:
        query = query.where(Area.site_id == site_id)
    visible = authz.visible_area_ids(actor)
    if visible is not None:
        query = query.where(Area.id.in_(visible))
    return list(db.scalars(query))


def get_area(db: Session, *, actor: User, area_id: int) -> Area:
    return _get(db, actor, Area, area_id)


def area_by_code(db: Session, code: str) -> Area | None:
    return db.scalar(select(Area).where(Area.code == code))


def create_area(db: Session, *, actor: User, data: AreaCreate) -> Area:
    authz.require(actor, "plant.write")
    site = _get(db, actor, Site, data.site_id)
    _require_unique(db, Area, "code", data.code)
    _check_polygon_in_plan(site, data.polygon)
    area = Area(**data.model_dump(mode="json"))
    _save(db, actor, area, "areas.create")
    return area


def update_area(db: Session, *, actor: User, area_id: int, data: AreaUpdate) -> Area:
    authz.require(actor, "plant.write")
    area = _get(db, actor, Area, area_id)
    if data.polygon is not None:
        _check_polygon_in_plan(db.get(Site, area.site_id), data.polygon)
    before = _apply(area, data)
    _save(db, actor, area, "areas.update", before)
    return area


def delete_area(db: Session, *, actor: User, area_id: int) -> None:
    authz.require(actor, "plant.write")
    area = _get(db, actor, Area, area_id)
    _delete(
        db,
        actor,
        area,
        {"equipment": _count(db, Equipment, area_id=area.id), "sensors": _count(db, Sensor, area_id=area.id)},
    )


# ---------------------------------------------------------------- equipment


def list_equipment(db: Session, *, actor: User, area_id: int | None = None) -> list[Equipment]:
    authz.require(actor, "plant.read")
    query = select(Equipment).order_by(Equipment.code)
    if area_id is not None:
        query = query.where(Equipment.area_id == area_id)
    visible = authz.visible_area_ids(actor)
    if visible is not None:
        query = query.where(Equipment.area_id.in_(visible))
    return list(db.scalars(query))


def get_equipment(db: Session, *, actor: User, equipment_id: int) -> Equipment:
    return _get(db, actor, Equipment, equipment_id)


def create_equipment(db: Session, *, actor: User, data: EquipmentCreate) -> Equipment:
    authz.require(actor, "plant.write")
    _get(db, actor, Area, data.area_id)
    _require_unique(db, Equipment, "code", data.code)
    equipment = Equipment(**data.model_dump())
    _save(db, actor, equipment, "equipment.create")
    return equipment


def update_equipment(db: Session, *, actor: User, equipment_id: int, data: EquipmentUpdate) -> Equipment:
    authz.require(actor, "plant.write")
    equipment = _get(db, actor, Equipment, equipment_id)
    if data.area_id is not None:
        _get(db, actor, Area, data.area_id)
        if _count(db, Sensor, equipment_id=equipment.id) and data.area_id != equipment.area_id:
            raise Conflict("equipment with sensors cannot change area; move its sensors first")
    before = _apply(equipment, data)
    _save(db, actor, equipment, "equipment.update", before)
    return equipment


def delete_equipment(db: Session, *, actor: User, equipment_id: int) -> None:
    authz.require(actor, "plant.write")
    equipment = _get(db, actor, Equipment, equipment_id)
    _delete(db, actor, equipment, {"sensors": _count(db, Sensor, equipment_id=equipment.id)})


# ---------------------------------------------------------------- sensors


def list_sensors(
    db: Session, *, actor: User, area_id: int | None = None, equipment_id: int | None = None
) -> list[Sensor]:
    authz.require(actor, "plant.read")
    query = select(Sensor).order_by(Sensor.tag)
    if area_id is not None:
        query = query.where(Sensor.area_id == area_id)
    if equipment_id is not None:
        query = query.where(Sensor.equipment_id == equipment_id)
    visible = authz.visible_area_ids(actor)
    if visible is not None:
        query = query.where(Sensor.area_id.in_(visible))
    return list(db.scalars(query))


def get_sensor(db: Session, *, actor: User, sensor_id: int) -> Sensor:
    return _get(db, actor, Sensor, sensor_id)


def sensor_by_tag(db: Session, *, actor: User, tag: str) -> Sensor:
    authz.require(actor, "plant.read")
    sensor = db.scalar(select(Sensor).where(Sensor.tag == tag))
    if sensor is None or not authz.can_see_area(actor, sensor.area_id):
        raise NotFound(f"sensor '{tag}' not found")
    return sensor


def _check_placement(db: Session, actor: User, area_id: int, equipment_id: int | None) -> None:
    _get(db, actor, Area, area_id)
    if equipment_id is not None:
        equipment = _get(db, actor, Equipment, equipment_id)
        if equipment.area_id != area_id:
            raise InvalidInput("equipment_id", f"equipment {equipment.code} is not in area {area_id}")


def _raise_first(problems: list[tuple[str, str]]) -> None:
    if problems:
        field, message = problems[0]
        raise InvalidInput(field, message)


def create_sensor(db: Session, *, actor: User, data: SensorCreate) -> Sensor:
    authz.require(actor, "sensor.write")
    _check_placement(db, actor, data.area_id, data.equipment_id)
    _raise_first(sensor_problems(data.model_dump()))
    _require_unique(db, Sensor, "tag", data.tag)
    sensor = Sensor(**data.model_dump())
    _save(db, actor, sensor, "sensors.create")
    return sensor


def update_sensor(db: Session, *, actor: User, sensor_id: int, data: SensorUpdate) -> Sensor:
    authz.require(actor, "sensor.write")
    sensor = _get(db, actor, Sensor, sensor_id)
    merged = {**audit.snapshot(sensor), **data.model_dump(exclude_unset=True)}
    _check_placement(db, actor, merged["area_id"], merged["equipment_id"])
    _raise_first(sensor_problems(merged))
    before = _apply(sensor, data)
    _save(db, actor, sensor, "sensors.update", before)
    return sensor


def delete_sensor(db: Session, *, actor: User, sensor_id: int) -> None:
    authz.require(actor, "sensor.write")
    sensor = _get(db, actor, Sensor, sensor_id)
    _delete(db, actor, sensor, {})

"""HTTP routes of the plant model: validation and HTTP only, each calls one service function."""

from __future__ import annotations

from fastapi import APIRouter, Request, UploadFile

from hazardloop.errors import InvalidInput
from hazardloop.plant import service, tag_import
from hazardloop.plant.models import (
    AreaCreate,
    AreaRead,
    AreaUpdate,
    EquipmentCreate,
    EquipmentRead,
    EquipmentUpdate,
    ImportReport,
    SensorCreate,
    SensorRead,
    SensorUpdate,
    SiteCreate,
    SiteRead,
    SiteUpdate,
)
from hazardloop.web.deps import Actor, Db

router = APIRouter(prefix="/api/v1/plant", tags=["plant"])


@router.get("/sites", response_model=list[SiteRead])
def list_sites(actor: Actor, db: Db) -> list:
    return service.list_sites(db, actor=actor)


@router.post("/sites", response_model=SiteRead, status_code=201)
def create_site(body: SiteCreate, actor: Actor, db: Db):  # noqa: ANN201 - response_model says it
    return service.create_site(db, actor=actor, data=body)


@router.get("/sites/{site_id}", response_model=SiteRead)
def get_site(site_id: int, actor: Actor, db: Db):  # noqa: ANN201
    return service.get_site(db, actor=actor, site_id=site_id)


@router.patch("/sites/{site_id}", response_model=SiteRead)
def update_site(site_id: int, body: SiteUpdate, actor: Actor, db: Db):  # noqa: ANN201
    return service.update_site(db, actor=actor, site_id=site_id, data=body)


@router.delete("/sites/{site_id}", status_code=204)
def delete_site(site_id: int, actor: Actor, db: Db) -> None:
    service.delete_site(db, actor=actor, site_id=site_id)


@router.get("/areas", response_model=list[AreaRead])
def list_areas(actor: Actor, db: Db, site_id: int | None = None) -> list:
    return service.list_areas(db, actor=actor, site_id=site_id)


@router.post("/areas", response_model=AreaRead, status_code=201)
def create_area(body: AreaCreate, actor: Actor, db: Db):  # noqa: ANN201
    return service.create_area(db, actor=actor, data=body)


@router.get("/areas/{area_id}", response_model=AreaRead)
def get_area(area_id: int, actor: Actor, db: Db):  # noqa: ANN201
    return service.get_area(db, actor=actor, area_id=area_id)


@router.patch("/areas/{area_id}", response_model=AreaRead)
def update_area(area_id: int, body: AreaUpdate, actor: Actor, db: Db):  # noqa: ANN201
    return service.update_area(db, actor=actor, area_id=area_id, data=body)


@router.delete("/areas/{area_id}", status_code=204)
def delete_area(area_id: int, actor: Actor, db: Db) -> None:
    service.delete_area(db, actor=actor, area_id=area_id)


@router.get("/equipment", response_model=list[EquipmentRead])
def list_equipment(actor: Actor, db: Db, area_id: int | None = None) -> list:
    return service.list_equipment(db, actor=actor, area_id=area_id)


@router.post("/equipment", response_model=EquipmentRead, status_code=201)
def create_equipment(body: EquipmentCreate, actor: Actor, db: Db):  # noqa: ANN201
    return service.create_equipment(db, actor=actor, data=body)


@router.get("/equipment/{equipment_id}", response_model=EquipmentRead)
def get_equipment(equipment_id: int, actor: Actor, db: Db):  # noqa: ANN201
    return service.get_equipment(db, actor=actor, equipment_id=equipment_id)


@router.patch("/equipment/{equipment_id}", response_model=EquipmentRead)
def update_equipment(equipment_id: int, body: EquipmentUpdate, actor: Actor, db: Db):  # noqa: ANN201
    return service.update_equipment(db, actor=actor, equipment_id=equipment_id, data=body)


@router.delete("/equipment/{equipment_id}", status_code=204)
def delete_equipment(equipment_id: int, actor: Actor, db: Db) -> None:
    service.delete_equipment(db, actor=actor, equipment_id=equipment_id)


@router.get("/sensors", response_model=list[SensorRead])
def list_sensors(actor: Actor, db: Db, area_id: int | None = None, equipment_id: int | None = None) -> list:
    return service.list_sensors(db, actor=actor, area_id=area_id, equipment_id=equipment_id)


@router.post("/sensors", response_model=SensorRead, status_code=201)
def create_sensor(body: SensorCreate, actor: Actor, db: Db):  # noqa: ANN201
    return service.create_sensor(db, actor=actor, data=body)


@router.get("/sensors/{sensor_id}", response_model=SensorRead)
def get_sensor(sensor_id: int, actor: Actor, db: Db):  # noqa: ANN201
    return service.get_sensor(db, actor=actor, sensor_id=sensor_id)


@router.patch("/sensors/{sensor_id}", response_model=SensorRead)
def update_sensor(sensor_id: int, body: SensorUpdate, actor: Actor, db: Db):  # noqa: ANN201
    return service.update_sensor(db, actor=actor, sensor_id=sensor_id, data=body)


@router.delete("/sensors/{sensor_id}", status_code=204)
def delete_sensor(sensor_id: int, actor: Actor, db: Db) -> None:
    service.delete_sensor(db, actor=actor, sensor_id=sensor_id)


@router.post("/sensors/import", response_model=ImportReport)
async def import_sensors(file: UploadFile, request: Request, actor: Actor, db: Db) -> ImportReport:
    """Upload a tag list (CSV in UTF-8 or GBK, or .xlsx). Every bad row is listed; nothing partial is stored."""
    limit = request.app.state.settings.max_upload_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise InvalidInput("file", f"larger than the {limit // (1024 * 1024)} MiB upload limit")
    return tag_import.import_sensors(db, actor=actor, content=content, filename=file.filename or "upload")

"""The 系统管理 (admin) pages: plant and sensors, users and their area scopes, push channels.

Every page calls the same service functions as /api/v1/plant, /api/v1/users and /api/v1/notify,
so permissions (auth/data/permissions.toml) and validation hold here exactly as in the API; the
page only decides which buttons to draw from the same permissions. Forms are plain posts that
work without JavaScript and on a phone; a refusal re-renders the form with each error beside its
field (422). HTMX updates parts in place: the sensor list under its filters, the tag-import report
and the result of "send test message".
"""

from __future__ import annotations

import csv
import io
import json
import types
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlencode

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from hazardloop.auth import authz
from hazardloop.auth import service as auth_service
from hazardloop.auth.authz import OutOfScope, PermissionDenied
from hazardloop.auth.models import User, UserCreate, UserUpdate
from hazardloop.auth.roles import Role
from hazardloop.errors import Conflict, ImportRejected, InvalidInput, NotFound, RowError
from hazardloop.notify import channels
from hazardloop.notify import service as notify
from hazardloop.notify.channels.base import MASK
from hazardloop.notify.models import ChannelCreate, ChannelKind, ChannelUpdate, OutboxStatus
from hazardloop.plant import service as plant
from hazardloop.plant import tag_import
from hazardloop.plant.models import (
    AreaCreate,
    AreaUpdate,
    RiskGrade,
    Sensor,
    SensorCreate,
    SensorUpdate,
    SiteCreate,
    SiteUpdate,
)
from hazardloop.plant.reference import sensor_kinds
from hazardloop.web import forms
from hazardloop.web.deps import Db
from hazardloop.web.forms import FORM_ERROR, FormField
from hazardloop.web.pages import MaybeUser, admin_sections, language_of, render, to_login

router = APIRouter(prefix="/admin", include_in_schema=False)


# ---------------------------------------------------------------- shared pieces


def _abilities(user: User) -> dict[str, bool]:
    has = authz.has_permission
    return {
        "can_plant": has(user, "plant.write"),
        "can_sensor": has(user, "sensor.write"),
        "can_import": has(user, "sensor.import"),
        "can_users": has(user, "user.write"),
        "can_channels": has(user, "notify.write"),
    }


def _page(request: Request, user: User, name: str, section: str, status_code: int = 200, **context: Any) -> Response:
    return render(request, name, user, status_code=status_code, section=section, sections=admin_sections(user),
                  shown=forms.shown, **_abilities(user), **context)


def _refused(request: Request, user: User, status_code: int, message: str) -> Response:
    return render(request, "admin/message.html", user, status_code=status_code, message=message,
                  sections=admin_sections(user), section="")


def _guarded(request: Request, user: User | None, permission: str,
             build: Callable[[User], Response]) -> Response:
    """Log in first; without the permission, or for something missing or out of scope, say so plainly."""
    if user is None:
        return to_login(request)
    if not authz.has_permission(user, permission):
        return _refused(request, user, 403, "admin.forbidden")
    try:
        return build(user)
    except PermissionDenied:
        return _refused(request, user, 403, "admin.forbidden")
    except (NotFound, OutOfScope):
        return _refused(request, user, 404, "admin.not_found")


def _named(item: Any, lang: str) -> str:  # noqa: ANN401 - any row with name_zh / name_en
    return item.name_zh if lang == "zh-CN" else (item.name_en or item.name_zh)


def _validated(schema: type[BaseModel], values: dict[str, Any], errors: dict[str, str]) -> BaseModel | None:
    """The schema built from the values, or None with its refusals added to `errors`."""
    try:
        model = schema.model_validate(values)
    except ValidationError as exc:
        for name, message in forms.pydantic_errors(exc).items():
            errors.setdefault(name, message)
        return None
    return None if errors else model


def _saved(call: Callable[[], Any], errors: dict[str, str], conflict_field: str = FORM_ERROR) -> Any:  # noqa: ANN401
    """Run a service call; its refusal (bad field, conflict) becomes an error beside the field."""
    try:
        return call()
    except InvalidInput as exc:
        errors.update(forms.service_error(exc))
    except Conflict as exc:
        errors[conflict_field] = f"form.conflict|{exc}"
    return None


def _csv(rows: Sequence[Sequence[Any]], filename: str) -> Response:
    """UTF-8 with a BOM, so Excel opens Chinese names correctly (as hazards/ledger.py does)."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return Response(out.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request")) and not request.headers.get("hx-history-restore-request")


@router.get("")
def admin_home(request: Request, user: MaybeUser) -> Response:
    if user is None:
        return to_login(request)
    allowed = admin_sections(user)
    if not allowed:
        return _refused(request, user, 403, "admin.forbidden")
    return RedirectResponse(f"/admin/{allowed[0]}", status_code=303)


# ---------------------------------------------------------------- sites and areas


def _site_fields(creating: bool) -> list[FormField]:
    fields = [FormField("code", "admin.field.code", required=True, attrs={"maxlength": "32"})] if creating else []
    return [
        *fields,
        FormField("name_zh", "admin.field.name_zh", required=True, attrs={"maxlength": "128"}),
        FormField("name_en", "admin.field.name_en", attrs={"maxlength": "128"}),
        FormField("plan_width", "admin.field.plan_width", "number", required=True, help="admin.help.plan_size"),
        FormField("plan_height", "admin.field.plan_height", "number", required=True),
    ]


def _area_fields(db: Session, user: User, lang: str, creating: bool) -> list[FormField]:
    fields: list[FormField] = []
    if creating:
        sites = tuple((str(s.id), f"{s.code} · {_named(s, lang)}") for s in plant.list_sites(db, actor=user))
        fields += [
            FormField("site_id", "admin.field.site", "select", required=True, options=sites),
            FormField("code", "admin.field.code", required=True, attrs={"maxlength": "32"}),
        ]
    grades = (("", "grade.none"), *((g.value, f"grade.{g.value}") for g in RiskGrade))
    return [
        *fields,
        FormField("name_zh", "admin.field.name_zh", required=True, attrs={"maxlength": "128"}),
        FormField("name_en", "admin.field.name_en", attrs={"maxlength": "128"}),
        FormField("risk_grade", "admin.field.risk_grade", "select", options=grades, translate=True),
        FormField("polygon", "admin.field.polygon", "textarea", help="admin.help.polygon"),
    ]


def _area_values(values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """The polygon arrives as JSON text ([[x, y], …]); blank means no shape on the plan."""
    text = values.get("polygon")
    data = {k: v for k, v in values.items() if v is not None}
    if text:
        try:
            data["polygon"] = json.loads(text)
        except ValueError:
            errors["polygon"] = "form.invalid|[[x, y], [x, y], [x, y], …]"
            data.pop("polygon")
    if "site_id" in data:
        data["site_id"] = int(data["site_id"]) if str(data["site_id"]).isdigit() else data["site_id"]
    if values.get("risk_grade") is None:
        data["risk_grade"] = None
    return data


def _plant_page(request: Request, db: Session, user: User, status_code: int = 200, **forms_state: Any) -> Response:
    lang = language_of(request, user)
    sites = plant.list_sites(db, actor=user)
    areas = plant.list_areas(db, actor=user)
    counts: dict[int, int] = {}
    for sensor in plant.list_sensors(db, actor=user):
        counts[sensor.area_id] = counts.get(sensor.area_id, 0) + 1
    state = {"site_values": {"plan_width": 1000.0, "plan_height": 600.0}, "site_errors": {},
             "area_values": {}, "area_errors": {}, **forms_state}
    return _page(request, user, "admin/plant.html", "plant", status_code=status_code, sites=sites, areas=areas,
                 sensor_counts=counts, site_by_id={s.id: s for s in sites}, site_fields=_site_fields(True),
                 area_fields=_area_fields(db, user, lang, True), done=request.query_params.get("done"), **state)


@router.get("/plant")
def plant_admin(request: Request, user: MaybeUser, db: Db) -> Response:
    return _guarded(request, user, "plant.write", lambda u: _plant_page(request, db, u))


@router.post("/sites")
async def site_create(request: Request, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        values, errors = forms.read(_site_fields(True), form)
        data = _validated(SiteCreate, {k: v for k, v in values.items() if v is not None}, errors)
        if data is not None and _saved(lambda: plant.create_site(db, actor=u, data=data), errors, "code"):
            return RedirectResponse("/admin/plant?done=created", status_code=303)
        db.rollback()
        return _plant_page(request, db, u, 422, site_values=values, site_errors=errors)

    return _guarded(request, user, "plant.write", build)


def _edit_page(request: Request, user: User, *, section: str, title: str, action: str, fields: list[FormField],
               values: dict[str, Any], errors: dict[str, str], back: str, status_code: int = 200,
               **extra: Any) -> Response:
    return _page(request, user, "admin/edit.html", section, status_code=status_code, title=title, action=action,
                 fields=fields, values=values, errors=errors, back=back, done=request.query_params.get("done"),
                 **extra)


@router.get("/sites/{site_id:int}")
def site_edit(request: Request, site_id: int, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        site = plant.get_site(db, actor=u, site_id=site_id)
        values = {f.name: getattr(site, f.name) for f in _site_fields(False)}
        return _edit_page(request, u, section="plant", title=site.code, action=f"/admin/sites/{site_id}",
                          fields=_site_fields(False), values=values, errors={}, back="/admin/plant")

    return _guarded(request, user, "plant.write", build)


@router.post("/sites/{site_id:int}")
async def site_update(request: Request, site_id: int, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        site = plant.get_site(db, actor=u, site_id=site_id)
        values, errors = forms.read(_site_fields(False), form)
        data = _validated(SiteUpdate, {k: v for k, v in values.items() if v is not None}, errors)
        if data is not None and _saved(lambda: plant.update_site(db, actor=u, site_id=site_id, data=data), errors):
            return RedirectResponse(f"/admin/sites/{site_id}?done=saved", status_code=303)
        db.rollback()
        return _edit_page(request, u, section="plant", title=site.code, action=f"/admin/sites/{site_id}",
                          fields=_site_fields(False), values=values, errors=errors, back="/admin/plant",
                          status_code=422)

    return _guarded(request, user, "plant.write", build)


@router.post("/areas")
async def area_create(request: Request, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        fields = _area_fields(db, u, language_of(request, u), True)
        values, errors = forms.read(fields, form)
        data = _validated(AreaCreate, _area_values(values, errors), errors)
        if data is not None and _saved(lambda: plant.create_area(db, actor=u, data=data), errors, "code"):
            return RedirectResponse("/admin/plant?done=created", status_code=303)
        db.rollback()
        return _plant_page(request, db, u, 422, area_values=values, area_errors=errors)

    return _guarded(request, user, "plant.write", build)


@router.get("/areas.csv")
def area_csv(request: Request, user: MaybeUser, db: Db) -> Response:
    """The area list as CSV, each with its quick-report link: what a QR label printer takes in bulk."""

    def build(u: User) -> Response:
        sites = {s.id: s.code for s in plant.list_sites(db, actor=u)}
        counts: dict[int, int] = {}
        for sensor in plant.list_sensors(db, actor=u):
            counts[sensor.area_id] = counts.get(sensor.area_id, 0) + 1
        rows: list[list[Any]] = [["code", "name_zh", "name_en", "site", "risk_grade", "sensors", "report_link"]]
        for a in plant.list_areas(db, actor=u):
            link = report_link(request, a.code)
            rows.append([a.code, a.name_zh, a.name_en or "", sites.get(a.site_id, ""), a.risk_grade or "",
                         counts.get(a.id, 0), link])
        return _csv(rows, "areas.csv")

    return _guarded(request, user, "plant.read", build)


def report_link(request: Request, area_code: str) -> str:
    """The quick report form with ``area_code`` preselected: what an area's QR label opens."""
    return f"{request.base_url}hazards/new?{urlencode({'area': area_code})}"


@router.get("/areas/qr")
def area_qr_sheet(request: Request, user: MaybeUser, db: Db) -> Response:
    """One printable QR label per area (A4, cut along the borders): scanning it opens the report form
    with the area preselected, so a worker on site reports without choosing where. ``?area_id=`` narrows
    the sheet to one area (a replacement label). The codes are drawn here as inline SVG, crisp at any
    print size, with error correction Q so a label that is scuffed or partly dirty still scans."""
    import segno

    def build(u: User) -> Response:
        language = language_of(request, u)
        wanted = request.query_params.get("area_id", "")
        labels = []
        for a in plant.list_areas(db, actor=u):
            if wanted and str(a.id) != wanted:
                continue
            link = report_link(request, a.code)
            svg = segno.make(link, error="q", boost_error=False).svg_inline(scale=4, border=2, omitsize=True)
            labels.append({"code": a.code, "name": _named(a, language), "link": link, "svg": Markup(svg)})
        return _page(request, u, "admin/area_qr.html", "plant", labels=labels)

    return _guarded(request, user, "plant.read", build)


@router.get("/areas/{area_id:int}")
def area_edit(request: Request, area_id: int, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        area = plant.get_area(db, actor=u, area_id=area_id)
        fields = _area_fields(db, u, language_of(request, u), False)
        values = {"name_zh": area.name_zh, "name_en": area.name_en, "risk_grade": area.risk_grade,
                  "polygon": json.dumps(area.polygon) if area.polygon else None}
        return _edit_page(request, u, section="plant", title=area.code, action=f"/admin/areas/{area_id}",
                          fields=fields, values=values, errors={}, back="/admin/plant")

    return _guarded(request, user, "plant.write", build)


@router.post("/areas/{area_id:int}")
async def area_update(request: Request, area_id: int, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        area = plant.get_area(db, actor=u, area_id=area_id)
        fields = _area_fields(db, u, language_of(request, u), False)
        values, errors = forms.read(fields, form)
        data = _area_values(values, errors)
        data.setdefault("polygon", [])
        model = _validated(AreaUpdate, data, errors)
        if model is not None and _saved(lambda: plant.update_area(db, actor=u, area_id=area_id, data=model), errors):
            return RedirectResponse(f"/admin/areas/{area_id}?done=saved", status_code=303)
        db.rollback()
        return _edit_page(request, u, section="plant", title=area.code, action=f"/admin/areas/{area_id}",
                          fields=fields, values=values, errors=errors, back="/admin/plant", status_code=422)

    return _guarded(request, user, "plant.write", build)


# ---------------------------------------------------------------- sensors

SENSOR_NUMBERS = ("range_min", "range_max", "ll", "l", "h", "hh", "deadband", "on_delay_s", "off_delay_s",
                  "sample_period_s")
SENSOR_CSV = ("tag", "name", "kind", "unit", "area", "equipment", "range_min", "range_max", "ll", "l", "h", "hh",
              "deadband", "on_delay_s", "off_delay_s", "sample_period_s", "enabled")


def _sensor_fields(db: Session, user: User, lang: str, creating: bool) -> tuple[list[FormField], list[str]]:
    kinds = tuple((k.kind, _named(k, lang)) for k in sensor_kinds().values())
    areas = tuple((str(a.id), f"{a.code} · {_named(a, lang)}") for a in plant.list_areas(db, actor=user))
    equipment = (("", "—"), *((str(e.id), f"{e.code} · {_named(e, lang)}")
                              for e in plant.list_equipment(db, actor=user)))
    units = sorted({u for k in sensor_kinds().values() for u in k.units})
    head = [FormField("tag", "admin.field.tag", required=True, attrs={"maxlength": "64"})] if creating else []
    number = lambda name, required=False, help=None: FormField(  # noqa: E731 - a local shorthand
        name, f"admin.field.{name}", "number", required=required, help=help)
    return [
        *head,
        FormField("name", "admin.field.sensor_name", attrs={"maxlength": "128"}),
        FormField("kind", "admin.field.kind", "select", required=True, options=kinds),
        FormField("unit", "admin.field.unit", required=True, attrs={"maxlength": "16", "list": "unit-list"},
                  help="admin.help.unit"),
        FormField("area_id", "admin.field.area", "select", required=True, options=areas),
        FormField("equipment_id", "admin.field.equipment", "select", options=equipment),
        number("range_min", True),
        number("range_max", True),
        number("ll", help="admin.help.limits"),
        number("l"),
        number("h"),
        number("hh"),
        number("deadband", help="admin.help.deadband"),
        number("on_delay_s", help="admin.help.delays"),
        number("off_delay_s"),
        number("sample_period_s"),
        FormField("enabled", "admin.field.enabled", "checkbox"),
    ], units


def _sensor_payload(values: dict[str, Any]) -> dict[str, Any]:
    data = dict(values)
    for name in ("area_id", "equipment_id"):
        raw = data.get(name)
        data[name] = int(raw) if raw is not None and str(raw).isdigit() else raw
    for name in ("deadband", "on_delay_s", "off_delay_s"):
        if data.get(name) is None:
            data[name] = 0.0
    if data.get("name") is None:
        data["name"] = ""
    return data


def _sensor_form(request: Request, db: Session, user: User, *, sensor: Sensor | None, values: dict[str, Any],
                 errors: dict[str, str], status_code: int = 200) -> Response:
    fields, units = _sensor_fields(db, user, language_of(request, user), sensor is None)
    action = "/admin/sensors" if sensor is None else f"/admin/sensors/{sensor.id}"
    return _edit_page(request, user, section="sensors", title=sensor.tag if sensor else "", action=action,
                      fields=fields, values=values, errors=errors, back="/admin/sensors", status_code=status_code,
                      datalist=units, creating_key="admin.sensor.new" if sensor is None else None)


def _sensor_filters(request: Request) -> tuple[int | None, str | None]:
    raw_area, kind = request.query_params.get("area_id", ""), request.query_params.get("kind") or None
    return (int(raw_area) if raw_area.isdigit() else None), (kind if kind in sensor_kinds() else None)


def _filtered_sensors(db: Session, user: User, area_id: int | None, kind: str | None) -> list[Sensor]:
    sensors = plant.list_sensors(db, actor=user, area_id=area_id)
    return [s for s in sensors if kind is None or s.kind == kind]


@router.get("/sensors")
def sensor_admin(request: Request, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        lang = language_of(request, u)
        area_id, kind = _sensor_filters(request)
        sensors = _filtered_sensors(db, u, area_id, kind)
        areas = plant.list_areas(db, actor=u)
        context = {
            "sensors": sensors,
            "areas": areas,
            "area_by_id": {a.id: a for a in areas},
            "kinds": {k: _named(v, lang) for k, v in sensor_kinds().items()},
            "area_id": area_id,
            "kind": kind,
            "query": request.url.query,
            "done": request.query_params.get("done"),
        }
        if _is_htmx(request) and request.headers.get("hx-target") == "sensor-list":
            return _page(request, u, "admin/_sensor_table.html", "sensors", **context)
        return _page(request, u, "admin/sensors.html", "sensors", **context)

    return _guarded(request, user, "sensor.write", build)


@router.post("/sensors/relearn")
async def sensor_relearn(request: Request, user: MaybeUser, db: Db) -> Response:
    """The page form of POST /api/v1/alarms/relearn: learn normal afresh after a process change."""
    form = await request.form()

    def build(u: User) -> Response:
        from hazardloop.alarms import learning
        from hazardloop.db import utcnow

        raw = str(form.get("hours", "")).strip()
        try:
            learning.request_relearn(db, actor=u, hours=float(raw), now=utcnow())
        except (ValueError, InvalidInput):
            return RedirectResponse("/admin/sensors?done=relearn_refused", status_code=303)
        feed = getattr(request.app.state, "live_feed", None)
        if feed is not None:
            feed.reload_calibration()
        return RedirectResponse("/admin/sensors?done=relearn", status_code=303)

    return _guarded(request, user, "sensor.write", build)


@router.get("/sensors.csv")
def sensor_csv(request: Request, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        area_id, kind = _sensor_filters(request)
        areas = {a.id: a.code for a in plant.list_areas(db, actor=u)}
        equipment = {e.id: e.code for e in plant.list_equipment(db, actor=u)}
        rows: list[list[Any]] = [list(SENSOR_CSV)]
        for s in _filtered_sensors(db, u, area_id, kind):
            row = {**{name: getattr(s, name) for name in SENSOR_CSV if hasattr(s, name)},
                   "area": areas.get(s.area_id, ""), "equipment": equipment.get(s.equipment_id, "")}
            rows.append(["" if row.get(name) is None else row.get(name) for name in SENSOR_CSV])
        return _csv(rows, "sensors.csv")

    return _guarded(request, user, "plant.read", build)


@router.get("/sensors/new")
def sensor_new(request: Request, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        values = {"enabled": True, "deadband": 0.0, "on_delay_s": 0.0, "off_delay_s": 0.0}
        area = request.query_params.get("area_id")
        if area and area.isdigit():
            values["area_id"] = area
        return _sensor_form(request, db, u, sensor=None, values=values, errors={})

    return _guarded(request, user, "sensor.write", build)


@router.post("/sensors")
async def sensor_create(request: Request, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        fields, _ = _sensor_fields(db, u, language_of(request, u), True)
        values, errors = forms.read(fields, form)
        data = _validated(SensorCreate, _sensor_payload(values), errors)
        if data is not None:
            sensor = _saved(lambda: plant.create_sensor(db, actor=u, data=data), errors, "tag")
            if sensor is not None:
                return RedirectResponse(f"/admin/sensors/{sensor.id}?done=created", status_code=303)
        db.rollback()
        return _sensor_form(request, db, u, sensor=None, values=values, errors=errors, status_code=422)

    return _guarded(request, user, "sensor.write", build)


@router.get("/sensors/{sensor_id:int}")
def sensor_edit(request: Request, sensor_id: int, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        sensor = plant.get_sensor(db, actor=u, sensor_id=sensor_id)
        fields, _ = _sensor_fields(db, u, language_of(request, u), False)
        values = {f.name: getattr(sensor, f.name) for f in fields}
        return _sensor_form(request, db, u, sensor=sensor, values=values, errors={})

    return _guarded(request, user, "sensor.write", build)


@router.post("/sensors/{sensor_id:int}")
async def sensor_update(request: Request, sensor_id: int, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        sensor = plant.get_sensor(db, actor=u, sensor_id=sensor_id)
        fields, _ = _sensor_fields(db, u, language_of(request, u), False)
        values, errors = forms.read(fields, form)
        data = _validated(SensorUpdate, _sensor_payload(values), errors)
        if data is not None and _saved(lambda: plant.update_sensor(db, actor=u, sensor_id=sensor_id, data=data),
                                       errors):
            return RedirectResponse(f"/admin/sensors/{sensor_id}?done=saved", status_code=303)
        db.rollback()
        return _sensor_form(request, db, u, sensor=sensor, values=values, errors=errors, status_code=422)

    return _guarded(request, user, "sensor.write", build)


@router.post("/sensors/import")
async def sensor_import(request: Request, user: MaybeUser, db: Db,
                        file: Annotated[UploadFile | None, File()] = None) -> Response:
    """The tag-list import of /api/v1/plant/sensors/import; every bad row is listed, nothing partial is stored."""
    limit = request.app.state.settings.max_upload_bytes
    content = await file.read(limit + 1) if file is not None else b""
    filename = (file.filename if file is not None else "") or "upload"

    def build(u: User) -> Response:
        report, rows, message = None, [], None
        if not content:
            message = "admin.import.empty"
        elif len(content) > limit:
            message = "admin.import.too_large"
        else:
            try:
                report = tag_import.import_sensors(db, actor=u, content=content, filename=filename)
            except ImportRejected as exc:
                db.rollback()
                rows = exc.errors
            except InvalidInput as exc:
                db.rollback()
                rows = [RowError(row=0, field=exc.field, message=exc.message)]
        status_code = 200 if report is not None else 422
        name = "admin/_import_result.html" if _is_htmx(request) else "admin/import_page.html"
        return _page(request, u, name, "sensors", status_code=status_code, report=report, rows=rows,
                     message=message)

    return _guarded(request, user, "sensor.import", build)


# ---------------------------------------------------------------- users


def _user_fields(db: Session, user: User, lang: str, creating: bool) -> list[FormField]:
    roles = tuple((r.value, f"role.{r.value}") for r in Role)
    areas = tuple((str(a.id), f"{a.code} · {_named(a, lang)}") for a in plant.list_areas(db, actor=user))
    head = [
        FormField("username", "admin.field.username", required=True,
                  attrs={"maxlength": "64", "autocomplete": "off", "autocapitalize": "none"}),
    ] if creating else []
    password = [FormField("password", "admin.field.password", "password", required=True,
                          help="admin.help.password", attrs={"autocomplete": "new-password", "minlength": "8"})]
    return [
        *head,
        FormField("display_name", "admin.field.display_name", required=True, attrs={"maxlength": "128"}),
        FormField("role", "admin.field.role", "select", required=True, options=roles, translate=True),
        *(password if creating else []),
        FormField("all_areas", "admin.field.all_areas", "checkbox", help="admin.help.all_areas"),
        FormField("area_ids", "admin.field.area_scope", "checkboxes", options=areas),
        FormField("department", "admin.field.department", attrs={"maxlength": "128"}),
        FormField("is_department_head", "admin.field.is_department_head", "checkbox"),
        FormField("email", "admin.field.email", "email", attrs={"autocomplete": "off"}),
        FormField("mobile", "admin.field.mobile", attrs={"inputmode": "tel"}),
    ]


def _user_form(request: Request, db: Session, user: User, *, target: User | None, values: dict[str, Any],
               errors: dict[str, str], status_code: int = 200) -> Response:
    fields = _user_fields(db, user, language_of(request, user), target is None)
    action = "/admin/users" if target is None else f"/admin/users/{target.id}"
    return _edit_page(request, user, section="users", title=target.username if target else "", action=action,
                      fields=fields, values=values, errors=errors, back="/admin/users", status_code=status_code,
                      target=target,
                      creating_key="admin.user.new" if target is None else None)


@router.get("/users")
def user_admin(request: Request, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        people = [p for p in auth_service.list_users(db, actor=u) if not p.is_machine]
        areas = {a.id: a for a in plant.list_areas(db, actor=u)}
        return _page(request, u, "admin/users.html", "users", people=people, area_by_id=areas,
                     done=request.query_params.get("done"))

    return _guarded(request, user, "user.read", build)


@router.get("/users.csv")
def user_csv(request: Request, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        areas = {a.id: a.code for a in plant.list_areas(db, actor=u)}
        rows: list[list[Any]] = [["username", "display_name", "role", "areas", "active", "department", "email",
                                  "mobile"]]
        for p in auth_service.list_users(db, actor=u):
            if p.is_machine:
                continue
            scope = "*" if p.sees_all_areas else " ".join(sorted(areas.get(a, str(a)) for a in p.area_ids))
            rows.append([p.username, p.display_name, p.role, scope, "yes" if p.is_active else "no",
                         p.department or "", p.email or "", p.mobile or ""])
        return _csv(rows, "users.csv")

    return _guarded(request, user, "user.read", build)


@router.get("/users/new")
def user_new(request: Request, user: MaybeUser, db: Db) -> Response:
    return _guarded(request, user, "user.write", lambda u: _user_form(
        request, db, u, target=None, values={"role": Role.OPERATOR.value, "area_ids": []}, errors={}))


@router.post("/users")
async def user_create(request: Request, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        fields = _user_fields(db, u, language_of(request, u), True)
        values, errors = forms.read(fields, form)
        data = _validated(UserCreate, {k: v for k, v in values.items() if v is not None}, errors)
        if data is not None:
            created = _saved(lambda: auth_service.create_user(db, actor=u, data=data), errors, "username")
            if created is not None:
                return RedirectResponse(f"/admin/users/{created.id}?done=created", status_code=303)
        db.rollback()
        values.pop("password", None)  # never sent back into the page
        return _user_form(request, db, u, target=None, values=values, errors=errors, status_code=422)

    return _guarded(request, user, "user.write", build)


def _user_values(target: User) -> dict[str, Any]:
    return {"display_name": target.display_name, "role": target.role, "all_areas": target.all_areas,
            "area_ids": sorted(target.area_ids), "department": target.department,
            "is_department_head": target.is_department_head, "email": target.email, "mobile": target.mobile}


@router.get("/users/{user_id:int}")
def user_edit(request: Request, user_id: int, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        target = auth_service.get_user(db, actor=u, user_id=user_id)
        return _user_form(request, db, u, target=target, values=_user_values(target), errors={})

    return _guarded(request, user, "user.write", build)


@router.post("/users/{user_id:int}")
async def user_update(request: Request, user_id: int, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        target = auth_service.get_user(db, actor=u, user_id=user_id)
        fields = _user_fields(db, u, language_of(request, u), False)
        values, errors = forms.read(fields, form)
        payload = {k: v for k, v in values.items() if v is not None or k in ("department", "email", "mobile")}
        data = _validated(UserUpdate, payload, errors)
        if data is not None and _saved(lambda: auth_service.update_user(db, actor=u, user_id=user_id, data=data),
                                       errors):
            return RedirectResponse(f"/admin/users/{user_id}?done=saved", status_code=303)
        db.rollback()
        return _user_form(request, db, u, target=target, values=values, errors=errors, status_code=422)

    return _guarded(request, user, "user.write", build)


@router.post("/users/{user_id:int}/active")
async def user_active(request: Request, user_id: int, user: MaybeUser, db: Db) -> Response:
    """Deactivate (sessions end at once) or reactivate; nobody is deleted, the audit trail keeps their name."""
    form = await request.form()

    def build(u: User) -> Response:
        target = auth_service.get_user(db, actor=u, user_id=user_id)
        active = form.get("active") == "1"
        errors: dict[str, str] = {}
        if _saved(lambda: auth_service.update_user(db, actor=u, user_id=user_id, data=UserUpdate(is_active=active)),
                  errors):
            return RedirectResponse(f"/admin/users/{user_id}?done={'activated' if active else 'deactivated'}",
                                    status_code=303)
        db.rollback()
        return _user_form(request, db, u, target=target, values=_user_values(target), errors=errors,
                          status_code=409)

    return _guarded(request, user, "user.write", build)


@router.post("/users/{user_id:int}/password")
async def user_password(request: Request, user_id: int, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        target = auth_service.get_user(db, actor=u, user_id=user_id)
        errors: dict[str, str] = {}
        password = str(form.get("new_password") or "")
        try:
            data = UserUpdate(password=password)
        except ValidationError:
            errors["new_password"] = "admin.help.password|"
        else:
            if _saved(lambda: auth_service.update_user(db, actor=u, user_id=user_id, data=data), errors):
                return RedirectResponse(f"/admin/users/{user_id}?done=password", status_code=303)
        db.rollback()
        return _user_form(request, db, u, target=target, values=_user_values(target), errors=errors,
                          status_code=422)

    return _guarded(request, user, "user.write", build)


# ---------------------------------------------------------------- push channels


def _config_field(name: str, info: Any, secret: bool) -> FormField:  # noqa: ANN401 - a pydantic FieldInfo
    annotation = info.annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        annotation = inner[0] if len(inner) == 1 else str
        origin, args = get_origin(annotation), get_args(annotation)
    label = f"admin.channel.field.{name}"
    required = info.is_required()
    if annotation is bool:
        return FormField(name, label, "checkbox")
    if origin is Literal:
        return FormField(name, label, "select", options=tuple((str(a), str(a)) for a in args))
    if annotation is int:
        return FormField(name, label, "number", required=required, step="1")
    if origin is list:
        return FormField(name, label, "textarea", help="admin.help.list")
    return FormField(name, label, "password" if secret else "text", required=required, secret=secret,
                     help="admin.help.secret" if secret else None,
                     attrs={"autocomplete": "off", "spellcheck": "false"})


def _channel_fields(kind: str, creating: bool) -> list[FormField]:
    """The form of one channel kind, drawn from its config schema, so a new field needs no page change."""
    schema = channels.module_for(kind).Config
    head = [FormField("name", "admin.channel.name", required=True, attrs={"maxlength": "128"}),
            FormField("enabled", "admin.channel.enabled", "checkbox")]
    if creating:
        head.insert(0, FormField("kind", "admin.channel.kind", "select", required=True,
                                 options=tuple((k.value, f"admin.channel.kind.{k.value}") for k in ChannelKind),
                                 translate=True))
    return head + [_config_field(name, info, name in schema.SECRETS) for name, info in schema.model_fields.items()]


def _config_from(kind: str, values: dict[str, Any], stored_secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A channel config from the form; a secret left blank that is stored is sent masked, which
    notify.service keeps as it is (its _merge_secrets), so editing never needs the secret again."""
    schema = channels.module_for(kind).Config
    config: dict[str, Any] = {}
    for name, info in schema.model_fields.items():
        value = values.get(name)
        if value is None and name in stored_secrets:
            config[name] = MASK
        elif isinstance(value, str) and get_origin(info.annotation) is list:
            config[name] = [part.strip() for part in value.replace(",", "\n").splitlines() if part.strip()]
        elif isinstance(value, float) and value.is_integer():
            config[name] = int(value)
        elif value is not None:
            config[name] = value
    return config


def _channel_errors(errors: dict[str, str]) -> dict[str, str]:
    return {name.removeprefix("config.").split(".")[0]: message for name, message in errors.items()}


def _channel_form(request: Request, user: User, *, kind: str, channel_id: int | None, values: dict[str, Any],
                  errors: dict[str, str], status_code: int = 200, title: str = "") -> Response:
    fields = _channel_fields(kind, channel_id is None)
    action = "/admin/channels" if channel_id is None else f"/admin/channels/{channel_id}"
    return _edit_page(request, user, section="channels", title=title, action=action, fields=fields, values=values,
                      errors=_channel_errors(errors), back="/admin/channels", status_code=status_code,
                      channel_id=channel_id, channel_kind=kind,
                      creating_key="admin.channel.new" if channel_id is None else None)


def _kind(raw: str | None) -> str:
    return raw if raw in {k.value for k in ChannelKind} else ChannelKind.WEBHOOK.value


@router.get("/channels")
def channel_admin(request: Request, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        rows = [notify.channel_read(c) for c in notify.list_channels(db, actor=u)]
        return _page(request, u, "admin/channels.html", "channels", channels=rows,
                     done=request.query_params.get("done"))

    return _guarded(request, user, "notify.read", build)


@router.get("/channels/new")
def channel_new(request: Request, user: MaybeUser, db: Db) -> Response:
    kind = _kind(request.query_params.get("kind"))
    return _guarded(request, user, "notify.write", lambda u: _channel_form(
        request, u, kind=kind, channel_id=None, values={"kind": kind, "enabled": True}, errors={}))


@router.post("/channels")
async def channel_create(request: Request, user: MaybeUser, db: Db) -> Response:
    form = await request.form()
    kind = _kind(str(form.get("kind") or ""))

    def build(u: User) -> Response:
        values, errors = forms.read(_channel_fields(kind, True), form)
        if not errors:
            data = ChannelCreate(kind=ChannelKind(kind), name=values["name"], enabled=bool(values.get("enabled")),
                                 config=_config_from(kind, values))
            created = _saved(lambda: notify.create_channel(db, actor=u, data=data), errors, "name")
            if created is not None:
                return RedirectResponse(f"/admin/channels?done=created#channel-{created.id}", status_code=303)
        db.rollback()
        schema = channels.module_for(kind).Config
        safe = {k: v for k, v in values.items() if k not in schema.SECRETS}
        return _channel_form(request, u, kind=kind, channel_id=None, values=safe, errors=errors, status_code=422)

    return _guarded(request, user, "notify.write", build)


@router.get("/channels/{channel_id:int}")
def channel_edit(request: Request, channel_id: int, user: MaybeUser, db: Db) -> Response:
    def build(u: User) -> Response:
        shown = notify.channel_read(notify.get_channel(db, actor=u, channel_id=channel_id))
        schema = channels.module_for(shown.kind.value).Config
        config = {k: (", ".join(v) if isinstance(v, list) else v) for k, v in shown.config.items()
                  if k not in schema.SECRETS}
        values = {"name": shown.name, "enabled": shown.enabled, **config}
        return _channel_form(request, u, kind=shown.kind.value, channel_id=channel_id, values=values, errors={},
                             title=shown.name)

    return _guarded(request, user, "notify.write", build)


@router.post("/channels/{channel_id:int}")
async def channel_update(request: Request, channel_id: int, user: MaybeUser, db: Db) -> Response:
    form = await request.form()

    def build(u: User) -> Response:
        channel = notify.get_channel(db, actor=u, channel_id=channel_id)
        kind = channel.kind
        values, errors = forms.read(_channel_fields(kind, False), form)
        if not errors:
            schema = channels.module_for(kind).Config
            stored = frozenset(k for k in schema.SECRETS if channel.config.get(k))
            data = ChannelUpdate(name=values["name"], enabled=bool(values.get("enabled")),
                                 config=_config_from(kind, values, stored))
            if _saved(lambda: notify.update_channel(db, actor=u, channel_id=channel_id, data=data), errors, "name"):
                return RedirectResponse(f"/admin/channels?done=saved#channel-{channel_id}", status_code=303)
        db.rollback()
        schema = channels.module_for(kind).Config
        safe = {k: v for k, v in values.items() if k not in schema.SECRETS}
        return _channel_form(request, u, kind=kind, channel_id=channel_id, values=safe, errors=errors,
                             status_code=422, title=channel.name)

    return _guarded(request, user, "notify.write", build)


@router.post("/channels/{channel_id:int}/test")
def channel_test(request: Request, channel_id: int, user: MaybeUser, db: Db) -> Response:
    """Send a test message now through the outbox (notify.service.send_test) and show what the channel answered."""

    def build(u: User) -> Response:
        transport = getattr(request.app.state, "notify_transport", None)
        error, entry = None, None
        try:
            entry = notify.send_test(db, actor=u, channel_id=channel_id, transport=transport)
        except (Conflict, InvalidInput) as exc:
            db.rollback()
            error = str(exc)
        ok = entry is not None and entry.status == OutboxStatus.SENT.value
        name = "admin/_test_result.html" if _is_htmx(request) else "admin/test_page.html"
        return _page(request, u, name, "channels", entry=entry, ok=ok, error=error, channel_id=channel_id)

    return _guarded(request, user, "notify.write", build)

"""Server-rendered pages (Jinja2 + HTMX). Pages read through the same services as the API."""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from hazardloop.auth import authz
from hazardloop.auth import service as auth_service
from hazardloop.auth.models import User
from hazardloop.hazards import workflow
from hazardloop.hazards.models import HazardState
from hazardloop.plant import service as plant
from hazardloop.plant.reference import sensor_kinds
from hazardloop.web.deps import LANG_COOKIE, SESSION_COOKIE, Db, optional_user, set_session_cookie
from hazardloop.web.i18n import pick_language, translate

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(resources.files("hazardloop.web") / "templates"))
MaybeUser = Annotated[User | None, Depends(optional_user)]

# The admin sections (web/admin_pages.py) and the permission that opens each; the navigation shows
# "Admin" only to users who may open at least one of them.
ADMIN_SECTIONS: tuple[tuple[str, str], ...] = (("plant", "plant.write"), ("sensors", "sensor.write"),
                                               ("users", "user.read"), ("channels", "notify.read"))


def task_roles() -> set[str]:
    """Roles that can hold a hazard's rectification: those workflow.toml lets start it
    (ASSIGNED → RECTIFYING), which the assign form offers and "My tasks" is shown to."""
    return {
        role.value
        for rule in workflow.rules()
        if rule.source is HazardState.ASSIGNED and rule.target is HazardState.RECTIFYING
        for role in rule.roles
    }


def admin_sections(user: User | None) -> list[str]:
    if user is None:
        return []
    return [name for name, permission in ADMIN_SECTIONS if authz.has_permission(user, permission)]


def language_of(request: Request, user: User | None) -> str:
    """The page language: the hl_lang cookie, else the user's own setting, else the site default."""
    fallback = (user.language if user and user.language else None) or request.app.state.settings.default_language
    return pick_language(request.cookies.get(LANG_COOKIE), fallback)


_language = language_of  # the name hazard_pages imports


def render(request: Request, name: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    language = language_of(request, user)

    def t(key: str, **values: object) -> str:
        return translate(key, language, **values)

    shared = {
        "user": user,
        "lang": language,
        "t": t,
        "admin_nav": bool(admin_sections(user)),
        "tasks_nav": user is not None and user.role in task_roles(),
    }
    return templates.TemplateResponse(request, name, {**shared, **context}, status_code=status_code)


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so the login form cannot be used as an open redirect."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def to_login(request: Request) -> RedirectResponse:
    """To the login page and back to this very URL, query included: a QR code on site links to
    /hazards/new?area=CODE, and the area must survive the login in between."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query and request.method == "GET" else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


@router.get("/")
def home(user: MaybeUser) -> Response:
    return RedirectResponse("/cockpit" if user else "/login", status_code=303)


@router.get("/login")
def login_page(request: Request, user: MaybeUser, next: str | None = None) -> Response:  # noqa: A002
    return render(request, "login.html", user, next=_safe_next(next), failed=False)


@router.post("/login")
def login_submit(
    request: Request,
    db: Db,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form()] = "/",
) -> Response:  # noqa: A002
    user = auth_service.authenticate(db, username=username, password=password)
    if user is None:
        return render(request, "login.html", None, status_code=401, next=_safe_next(next), failed=True)
    token = auth_service.open_session(
        db, user=user, hours=request.app.state.settings.session_hours, user_agent=request.headers.get("user-agent")
    )
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(request, response, token)
    return response


@router.post("/logout")
def logout_submit(request: Request, db: Db) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        auth_service.close_session(db, token=token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{language}")
def switch_language(request: Request, language: str, next: str | None = None) -> Response:  # noqa: A002
    back = next or urlsplit(request.headers.get("referer", "")).path
    response = RedirectResponse(_safe_next(back), status_code=303)
    chosen = pick_language(language, request.app.state.settings.default_language)
    response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, samesite="lax", path="/")
    return response


def _site_plan(db: Db, user: User) -> list[dict[str, Any]]:
    """Sites with their visible areas and sensor counts, the data behind the four-colour plan."""
    areas = plant.list_areas(db, actor=user)
    sensors = plant.list_sensors(db, actor=user)
    per_area: dict[int, int] = {}
    for sensor in sensors:
        per_area[sensor.area_id] = per_area.get(sensor.area_id, 0) + 1
    sites = []
    for site in plant.list_sites(db, actor=user):
        site_areas = [
            {
                "id": a.id,
                "code": a.code,
                "name_zh": a.name_zh,
                "name_en": a.name_en,
                "grade": a.risk_grade,
                "polygon": a.polygon,
                "sensors": per_area.get(a.id, 0),
            }
            for a in areas
            if a.site_id == site.id
        ]
        sites.append(
            {
                "id": site.id,
                "code": site.code,
                "name_zh": site.name_zh,
                "name_en": site.name_en,
                "width": site.plan_width,
                "height": site.plan_height,
                "areas": site_areas,
            }
        )
    return sites


@router.get("/plant")
def plant_page(request: Request, user: MaybeUser, db: Db) -> Response:
    if user is None:
        return to_login(request)
    sites = _site_plan(db, user)
    first_area = next((a["id"] for s in sites for a in s["areas"]), None)
    return render(request, "plant.html", user, sites=sites, first_area=first_area)


@router.get("/plant/areas/{area_id}/sensors")
def area_sensors_partial(request: Request, area_id: int, user: MaybeUser, db: Db) -> Response:
    if user is None:
        return to_login(request)
    area = plant.get_area(db, actor=user, area_id=area_id)
    equipment = {e.id: e for e in plant.list_equipment(db, actor=user, area_id=area_id)}
    sensors = plant.list_sensors(db, actor=user, area_id=area_id)
    return render(
        request, "_area_sensors.html", user, area=area, sensors=sensors, equipment=equipment, kinds=sensor_kinds()
    )

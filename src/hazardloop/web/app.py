"""The FastAPI app factory: one place that wires settings, the database, routers and error answers."""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import DataError

from hazardloop import __version__
from hazardloop.auth.authz import OutOfScope, PermissionDenied
from hazardloop.config import Settings, get_settings
from hazardloop.db import make_engine, make_session_factory
from hazardloop.errors import Conflict, ImportRejected, InvalidInput, NotFound
from hazardloop.hazards.workflow import TransitionRefused
from hazardloop.web.body_limit import BodyLimit


def _error(status: int, detail: object) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PermissionDenied)
    async def _denied(_: Request, exc: PermissionDenied) -> JSONResponse:
        return _error(403, str(exc))

    @app.exception_handler(OutOfScope)
    @app.exception_handler(NotFound)
    async def _missing(_: Request, exc: Exception) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return _error(422, [{"loc": ["body", exc.field], "msg": exc.message, "type": "value_error"}])

    @app.exception_handler(TransitionRefused)
    async def _refused(_: Request, exc: TransitionRefused) -> JSONResponse:
        return _error(409, exc.detail())

    @app.exception_handler(RequestValidationError)
    async def _unparseable(_: Request, exc: RequestValidationError) -> JSONResponse:
        # The echoed input is left out: it may hold NaN/Infinity (not valid JSON) or a large hostile body.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return _error(422, errors)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_: Request, exc: Exception) -> JSONResponse:
        # an id or offset beyond what the database can hold: nothing could match, say so instead of a 500
        return _error(422, [{"loc": ["query"], "msg": "a number is out of range", "type": "value_error"}])

    @app.exception_handler(ImportRejected)
    async def _rejected(_: Request, exc: ImportRejected) -> JSONResponse:
        rows = [{"row": e.row, "field": e.field, "msg": e.message} for e in exc.errors]
        return _error(422, {"message": str(exc), "rows": rows})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(application: FastAPI):  # noqa: ANN202
        """Start the background work in dependency order and stop it in reverse.

        Live detection listens to the reading store, so every ingest path (HTTP, MQTT, the demo)
        reaches it; it wakes the notify sender after committing an alarm. MQTT ingest and the demo
        stream only write readings. With a PostgreSQL reading store the store also follows what other
        processes (``hazardloop connectors run`` workers) insert, and with PostgreSQL anywhere only the
        process holding the feed's advisory lock runs detection (alarms/feed.py), and only the process
        holding the lock of the MQTT client id runs the in-server MQTT client (web/server_mqtt.py), and only
        the holder of the demo's lock streams the demo plant (demo/live.py).
        """
        from hazardloop.alarms.feed import LiveFeed
        from hazardloop.readings.pgstore import PgReadingStore
        from hazardloop.readings.views import store_for

        sessions = application.state.session_factory
        store = store_for(application.state)
        lock_url = None  # one detector per database (feed.py): lock where the detector's state lives
        if settings.resolved_database_url.startswith("postgres"):
            lock_url = settings.resolved_database_url
        if isinstance(store, PgReadingStore):
            store.follow()  # readings that separate ingest workers store reach live detection too
            lock_url = lock_url or store.url
        feed = LiveFeed(sessions, store, lock_url=lock_url).start()
        application.state.live_feed = feed
        scheduler = sender = None
        if settings.scheduler_enabled:
            from hazardloop.alarms.flows import add_recalibration_job
            from hazardloop.hazards.flows import start_scheduler
            from hazardloop.notify.flows import Sender

            scheduler = start_scheduler(sessions, interval_minutes=settings.scheduler_interval_minutes)
            sender = Sender(sessions).start()
            feed.on_alarm(lambda report: sender.wake() if report.raised else None)
            add_recalibration_job(scheduler, sessions, then=feed.reload_calibration)
        server_mqtt = None
        if settings.mqtt_url:
            from hazardloop.web.server_mqtt import ServerMqtt

            server_mqtt = ServerMqtt(settings, sessions, store, application.state, lock_url)
            server_mqtt.start()
        demo = None
        if settings.demo_stream:
            from hazardloop.demo.live import DemoStream

            demo = DemoStream(sessions, store, feed=feed, mqtt_url=settings.mqtt_url, mqtt_topic=settings.mqtt_topic,
                              lock_url=lock_url)
            if not demo.start():
                demo = None
            application.state.demo_stream = demo
        yield
        if demo is not None:
            demo.stop()
        if server_mqtt is not None:
            await server_mqtt.stop()
        feed.stop()
        if sender is not None:
            sender.stop()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        store = getattr(application.state, "readings_store", None)
        if store is not None:
            store.close()  # checkpoint the DuckDB log into the file

    app = FastAPI(
        lifespan=lifespan,
        title="HazardLoop",
        version=__version__,
        docs_url="/docs",
        description="AI-assisted industrial production safety: hazards, sensors, alarms.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit)  # before any route spools an oversized upload to disk

    from hazardloop.alarms.views import router as alarms_router
    from hazardloop.analytics.views import router as analytics_router
    from hazardloop.auth.views import router as auth_router
    from hazardloop.hazards.attachment_views import router as attachment_router
    from hazardloop.hazards.ledger_views import router as ledger_router
    from hazardloop.hazards.views import router as hazards_router
    from hazardloop.notify.views import router as notify_router
    from hazardloop.plant.views import router as plant_router
    from hazardloop.readings.views import router as readings_router
    from hazardloop.web.admin_pages import router as admin_pages_router
    from hazardloop.web.alarm_pages import router as alarm_pages_router
    from hazardloop.web.cockpit_pages import router as cockpit_pages_router
    from hazardloop.web.hazard_pages import router as hazard_pages_router
    from hazardloop.web.pages import router as pages_router

    app.include_router(auth_router)
    app.include_router(plant_router)
    app.include_router(readings_router)
    app.include_router(ledger_router)
    app.include_router(hazards_router)
    app.include_router(attachment_router)
    app.include_router(alarms_router)
    app.include_router(notify_router)
    app.include_router(analytics_router)
    app.include_router(cockpit_pages_router)
    app.include_router(hazard_pages_router)
    app.include_router(alarm_pages_router)
    app.include_router(admin_pages_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=str(resources.files("hazardloop.web") / "static")), name="static")

    @app.get("/health", tags=["ops"])
    def health() -> dict:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        return {"status": "ok", "version": __version__, "database": engine.dialect.name}

    return app

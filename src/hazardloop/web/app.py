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
        holding the lock of the MQTT client id runs the in-server MQTT client (``ingest_while_leading``).
        """
        import asyncio
        import contextlib
        import logging

        from hazardloop.alarms.feed import LiveFeed
        from hazardloop.readings.pgstore import PgReadingStore
        from hazardloop.readings.views import store_for

        log = logging.getLogger("hazardloop.web")
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
        mqtt_stop = asyncio.Event()
        mqtt_task = None
        if settings.mqtt_url:
            import hashlib
            import socket
            import urllib.parse

            from hazardloop.alarms.feed import Leadership
            from hazardloop.connectors.mqtt import MqttConnector
            from hazardloop.readings.sink import StoreSink

            broker = urllib.parse.urlsplit(settings.mqtt_url)
            # A stable id + session expiry: after a crash the broker resumes the session and redelivers
            # what was in flight (the store de-duplicates), instead of dropping it with a random id.
            place = hashlib.sha256(f"{settings.data_dir.resolve()}:{settings.port}".encode()).hexdigest()[:8]
            client_id = settings.mqtt_client_id or f"hazardloop-server-{socket.gethostname()}-{place}"

            def connector() -> MqttConnector:
                return MqttConnector(StoreSink(sessions, store), name="server-mqtt",
                                     host=broker.hostname or "127.0.0.1", port=broker.port or 1883,
                                     topic=settings.mqtt_topic, group=settings.mqtt_group or None,
                                     username=broker.username,
                                     password=broker.password, client_id=client_id,
                                     session_expiry_s=settings.mqtt_session_expiry_s)

            async def ingest_while_leading(lock: Leadership | None) -> None:
                """Run the MQTT client only while this process holds the lock named after its client id.

                Several uvicorn workers of one server share the client id (it is derived from the data
                dir and port), and a broker lets one connection hold an id: with each worker connecting,
                they would take the session from each other in a loop. Why one holder rather than a
                distinct id per worker with a shared subscription: the stable id is what makes the
                broker keep the session (and its unacknowledged QoS 1 messages) across a crash, and
                worker processes have no stable identity to derive per-worker ids from — a random one
                would leave a dead worker's queued messages stranded in a session nobody resumes. A
                standby that takes the lock over resumes that very session, so the handover loses
                nothing. Ingest that must scale past one process runs as ``hazardloop connectors run``
                workers, each with its own id in the shared-subscription group; a server on another host
                has another id (host name in it), so it takes its own lock and shares the group too.
                Without PostgreSQL there is one process, and no lock (``lock`` None).
                """
                mqtt, task, used = application.state.mqtt_connector, None, False
                try:
                    while not mqtt_stop.is_set():
                        leading = lock is None or await asyncio.to_thread(lock.hold)
                        if leading and task is None:
                            if used:  # a stopped connector stays stopped: a new term gets a new one
                                mqtt = application.state.mqtt_connector = connector()
                            used = True
                            task = asyncio.create_task(mqtt.run())  # reconnects with back-off on its own
                        elif not leading and task is not None:
                            log.warning("mqtt: lost the lock of client id %s; disconnecting", client_id)
                            mqtt.stop()
                            await asyncio.wait([task], timeout=10)
                            task = None
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(mqtt_stop.wait(), None if lock is None else 2.0)
                finally:
                    if task is not None:
                        mqtt.stop()
                        await asyncio.wait([task], timeout=10)
                    if lock is not None:
                        await asyncio.to_thread(lock.release)

            application.state.mqtt_connector = connector()
            ingest_lock = Leadership(lock_url, client_id, scope="hazardloop-mqtt-client") if lock_url else None
            mqtt_task = asyncio.create_task(ingest_while_leading(ingest_lock))
        demo = None
        if settings.demo_stream:
            from hazardloop.demo.live import DemoStream

            demo = DemoStream(sessions, store, feed=feed, mqtt_url=settings.mqtt_url, mqtt_topic=settings.mqtt_topic)
            if not demo.start():
                demo = None
            application.state.demo_stream = demo
        yield
        if demo is not None:
            demo.stop()
        if mqtt_task is not None:
            mqtt_stop.set()
            await asyncio.wait([mqtt_task], timeout=15)
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

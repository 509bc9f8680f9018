"""The `hazardloop` command. Thin: parses arguments, calls services, prints with Rich."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hazardloop.config import get_settings
from hazardloop.connectors.cli import connectors_app
from hazardloop.detect.backfill_cli import backfill_command
from hazardloop.detect.cli import detect_command
from hazardloop.text.cli import text_app

app = typer.Typer(
    help="HazardLoop: AI-assisted industrial production safety.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
user_app = typer.Typer(help="Users and API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(user_app, name="user")
app.add_typer(text_app, name="text")
app.add_typer(connectors_app, name="connectors")
app.command("detect")(detect_command)
app.command("backfill")(backfill_command)
console = Console()


def _session():  # noqa: ANN202 - a context-managed Session
    from hazardloop.db import make_engine, make_session_factory

    settings = get_settings()
    return make_session_factory(make_engine(settings.resolved_database_url))()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "heads") -> None:
    """Create or migrate the database to the latest schema."""
    from hazardloop import db

    settings = get_settings()
    settings.ensure_data_dir()
    db.upgrade(settings.resolved_database_url, revision)
    console.print(f"[green]database at revision {db.current_revision(settings.resolved_database_url)}[/]")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check every audit event and link of the chain; exit 1 if any was edited or deleted."""
    from hazardloop.auth import audit

    with _session() as session:
        report = audit.verify(session)
    if report.ok:
        console.print(f"[green]audit chain intact: {report.checked} events checked[/]")
        return
    for problem in report.problems:
        console.print(f"[red]✗ {problem}[/]")
    console.print(f"[red]audit chain BROKEN: {len(report.problems)} problem(s) in {report.checked} events[/]")
    raise typer.Exit(1)


@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[str, typer.Option(help="admin, safety_manager, safety_officer, rectifier, operator, viewer")],
    display_name: Annotated[str | None, typer.Option()] = None,
    all_areas: Annotated[bool, typer.Option(help="See every area")] = False,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Create a user from the command line (the way the first administrator is made)."""
    from pydantic import ValidationError

    from hazardloop.auth import service
    from hazardloop.auth.models import UserCreate
    from hazardloop.errors import Conflict, InvalidInput

    try:
        data = UserCreate(
            username=username, display_name=display_name or username, role=role, password=password, all_areas=all_areas
        )
        with _session() as session:
            user = service.create_user(session, actor=None, data=data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(problems) from exc
    except (Conflict, InvalidInput) as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"[green]created user {user.username} ({user.role})[/]")


@app.command("demo")
def demo(
    seed: Annotated[int, typer.Option(help="Random seed; the same seed builds the same plant")] = 7,
    days: Annotated[int, typer.Option(help="Days of simulated sensor history")] = 7,
    reset: Annotated[bool, typer.Option(help="Delete the data directory's database first")] = False,
    alarm_days: Annotated[int, typer.Option(help="Days of alarms before now, acknowledged and judged (0: none)")] = 14,
) -> None:
    """Build the demo chemical plant: areas, equipment, ~50 sensors, people in every role, sensor history,
    a year of hazards and two weeks of alarms."""
    from hazardloop import db
    from hazardloop.demo.build import build_demo

    settings = get_settings()
    settings.ensure_data_dir()
    url = settings.resolved_database_url
    if reset and url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.split("///", 1)[1] + suffix).unlink(missing_ok=True)
    if reset and not settings.readings_url.strip():  # the embedded readings file belongs to the demo too
        for name in ("readings.duckdb", "readings.duckdb.wal"):
            (settings.data_dir / name).unlink(missing_ok=True)
    db.upgrade(url)
    from hazardloop.readings.stores import open_store

    store = open_store(settings)
    try:
        with _session() as session:
            result = build_demo(session, data_dir=settings.data_dir, seed=seed, days=days, console=console,
                                store=store, alarm_days=alarm_days)
    finally:
        store.close()
    table = Table(title="Demo logins / 演示账号", show_lines=False)
    for column in ("username", "password", "role", "areas"):
        table.add_column(column)
    for login in result.logins:
        table.add_row(login.username, login.password, login.role, login.areas)
    console.print(table)
    console.print(f"sensor history: {result.history_path}  ground truth: {result.truth_path}")


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Serve the web app and API (http://127.0.0.1:8000 by default)."""
    import uvicorn

    from hazardloop.web.app import create_app

    settings = get_settings()
    console.print(f"[bold]HazardLoop[/] on http://{host or settings.host}:{port or settings.port}  (API docs: /docs)")
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port, log_level="info")


if __name__ == "__main__":
    app()

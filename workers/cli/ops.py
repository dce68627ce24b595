"""Ops commands: ``import`` master data, ``redrive`` parked rows, ``sweep`` now, ``check`` the settings."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from config.celery import QUEUE_NAMES
from config.logging import configure_logging
from config.settings import get_settings
from workers.cli.output import echo_json, following, json_option, progress, publishing, table


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_(path: str) -> None:
    """Upsert master data from a 1C JSON export (the same file twice changes nothing)."""
    from models.db import session_scope
    from tasks.machinery.master_data import import_master_data

    configure_logging(get_settings())
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path}: not a readable JSON file ({exc})") from exc
    with session_scope() as session, following(f"importing {path}") as follow:
        try:
            report = import_master_data(session, document, on_row=follow)
        except ValueError as exc:
            raise click.ClickException(f"{path}: {exc}") from exc
    click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    if report.errors:
        sys.exit(3)


REDRIVE_BATCH = 100
PREVIEW_COLUMNS = ("id", "status", "attempts", "parked_at", "last_error")


def _parked(model: Any, ids: tuple[int, ...]) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from models.db import session_scope

    query = select(model).where(model.parked_at.is_not(None)).order_by(model.id)
    if ids:
        query = query.where(model.id.in_(ids))
    with session_scope() as session:
        return [{c: getattr(row, c) for c in PREVIEW_COLUMNS} for row in session.scalars(query)]


@click.command()
@click.option("--register", required=True, help="table name of the register, e.g. canaries")
@click.option("--id", "ids", multiple=True, type=int, help="row id (repeat)")
@click.option("--all", "every", is_flag=True, help="every parked row of the register, without asking")
@click.option("--dry-run", is_flag=True, help="show what would be re-driven, change nothing")
@json_option
def redrive(register: str, ids: tuple[int, ...], every: bool, dry_run: bool, as_json: bool) -> None:
    """Un-park rows and run their step again (after fixing the cause).

    Without --id it lists the parked rows and asks (or takes --all).
    """
    from models.steps import step_model, step_models
    from tasks.machinery.outbox import relay_all
    from tasks.machinery.sweeper import redrive as do_redrive

    publishing()
    model = step_model(register)
    if model is None:
        known = ", ".join(m.__tablename__ for m in step_models())
        raise click.BadParameter(
            f"no step register called {register!r}; registers: {known}", param_hint="--register"
        )
    if ids and every:
        raise click.UsageError("--id and --all exclude each other")
    parked = _parked(model, ids)
    if dry_run or not ids:
        if as_json:
            echo_json({"register": register, "parked": parked, "dry_run": dry_run})
        else:
            click.echo(f"{register}: {len(parked)} parked row(s){' would be re-driven' if dry_run else ''}")
            if parked:
                click.echo(table(parked, PREVIEW_COLUMNS))
        if dry_run or not parked:
            return
        if not every:
            if not sys.stdin.isatty():
                raise click.UsageError(f"pass --all to re-drive every parked row of {register}, or --id")
            click.confirm(f"Re-drive these {len(parked)} rows?", abort=True, err=True)
    chosen = list(ids) or [row["id"] for row in parked]
    redriven: list[int] = []
    skipped: list[tuple[int, str]] = []
    with progress(f"re-driving {register}", len(chosen)) as shown:
        for start in range(0, len(chosen), REDRIVE_BATCH):
            batch = chosen[start : start + REDRIVE_BATCH]
            result = do_redrive(register, batch)
            relay_all()
            redriven += result.ids
            skipped += result.skipped
            shown.advance(len(batch))
    click.echo(json.dumps({"register": register, "redriven": redriven, "skipped": skipped}))


@click.command()
def sweep() -> None:
    """Re-drive stale rows now (beat does this every OBMEN_SWEEP_INTERVAL_S)."""
    from tasks.machinery.outbox import relay_all
    from tasks.machinery.sweeper import sweep as do_sweep

    publishing()
    redriven = do_sweep()
    relay_all()
    click.echo(json.dumps(redriven))


@click.command()
@click.option(
    "-Q",
    "--queues",
    default=",".join(QUEUE_NAMES),
    show_default=True,
    help="the queues a worker would consume",
)
def check(queues: str) -> None:
    """Run the start-up self-check and print the effective reliability settings."""
    from config.selfcheck import problems
    from workers.app import app, settings

    selected = [q.strip() for q in queues.split(",") if q.strip()]
    found = problems(settings, app.conf, queues=selected)
    summary: dict[str, Any] = {
        "visibility_timeout_s": settings.visibility_timeout_s,
        "max_countdown_s": settings.max_countdown_s,
        "task_time_limit_s": settings.task_time_limit_s,
        "queues": selected,
        "problems": found,
    }
    click.echo(json.dumps(summary, indent=2))
    if found:
        sys.exit(2)

"""Ops commands: ``import`` master data, ``redrive`` parked rows, ``sweep`` now, ``check`` the settings."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from config.celery import QUEUE_NAMES
from config.logging import configure_logging
from config.settings import get_settings


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
    with session_scope() as session:
        try:
            report = import_master_data(session, document)
        except ValueError as exc:
            raise click.ClickException(f"{path}: {exc}") from exc
    click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    if report.errors:
        sys.exit(3)


@click.command()
@click.option("--register", required=True, help="table name of the register, e.g. canaries")
@click.option("--id", "ids", multiple=True, type=int, help="row id (repeat); omit for every parked row")
def redrive(register: str, ids: tuple[int, ...]) -> None:
    """Un-park rows and run their step again (after fixing the cause)."""
    from tasks.machinery.outbox import relay_all
    from tasks.machinery.sweeper import UnknownRegister
    from tasks.machinery.sweeper import redrive as do_redrive
    from workers.app import app  # noqa: F401  (publishing needs the configured app)

    configure_logging(get_settings())
    try:
        result = do_redrive(register, list(ids) or None)
    except UnknownRegister as exc:
        raise click.ClickException(str(exc)) from exc
    relay_all()
    click.echo(json.dumps({"register": register, "redriven": result.ids, "skipped": result.skipped}))


@click.command()
def sweep() -> None:
    """Re-drive stale rows now (beat does this every OBMEN_SWEEP_INTERVAL_S)."""
    from tasks.machinery.outbox import relay_all
    from tasks.machinery.sweeper import sweep as do_sweep
    from workers.app import app  # noqa: F401

    configure_logging(get_settings())
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

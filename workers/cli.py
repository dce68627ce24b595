"""The ``obmen`` command: migrate, worker, beat, gateway, sandbox, demo, and the ops commands."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from config.celery import QUEUE_NAMES
from config.logging import configure_logging
from config.settings import get_settings
from workers.sep_cli import sep as sep_commands


@click.group()
def cli() -> None:
    """obmen: integration hub between 1C and the outside world, as a pipeline of Celery tasks."""


@cli.command()
def migrate() -> None:
    """Create or upgrade the register store to the latest schema."""
    from models.migrate import upgrade

    configure_logging(get_settings())
    upgrade()
    click.echo("register store is up to date")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("-Q", "--queues", default=",".join(QUEUE_NAMES), show_default=True, help="queues to consume")
@click.option("-c", "--concurrency", type=int, default=None, help="pool processes (default: CPU count)")
@click.option("-P", "--pool", default="prefork", show_default=True)
@click.option("-n", "--hostname", default=None)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    queues: str, concurrency: int | None, pool: str, hostname: str | None, celery_args: tuple[str, ...]
) -> None:
    """Run a Celery worker (after the self-check)."""
    from config.selfcheck import enforce
    from workers.app import app, settings

    enforce(settings, app.conf)
    argv = ["worker", "-Q", queues, "-P", pool, "--loglevel", settings.log_level]
    if concurrency:
        argv += ["-c", str(concurrency)]
    if hostname:
        argv += ["-n", hostname]
    app.worker_main([*argv, *celery_args])


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run the one beat (a Redis lock keeps a second one waiting)."""
    from config.selfcheck import enforce
    from workers.app import app, settings

    enforce(settings, app.conf)
    app.start(["beat", "--loglevel", settings.log_level, *celery_args])


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", "processes", default=1, show_default=True, type=int)
def gateway(host: str, port: int, processes: int) -> None:
    """Serve the HTTP gateway (bank API, event receivers, ops endpoints, /metrics)."""
    import uvicorn

    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(
        "workers.gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_config=None,
        access_log=False,
        timeout_keep_alive=15,
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--smtp-port", default=8725, show_default=True, type=int)
@click.option("--scale", default=1.0, show_default=True, type=float, help="emulated seconds per real second")
@click.option(
    "--mailbox",
    default=None,
    help="where emulators' letters are delivered: maildir:///path or imap://user:pass@host:port/FOLDER "
    "(default: a temporary Maildir)",
)
def sandbox(host: str, port: int, smtp_port: int, scale: float, mailbox: str | None) -> None:
    """Serve every emulator from one HTTP server (and the SMTP sink) and print the settings for them."""
    from sandbox.server import Sandbox

    configure_logging(get_settings())
    box = Sandbox(host=host, port=port, scale=scale)
    for emulator in box.emulators:
        if hasattr(emulator, "smtp_port"):
            emulator.smtp_port = smtp_port
        if mailbox and hasattr(emulator, "deliver_to"):
            emulator.deliver_to = mailbox
    click.echo(f"# obmen sandbox on {box.url}; point obmen at it with:")
    for key, value in box.client_settings().items():
        click.echo(f"export {key}={value}")
    box.serve_forever()


@cli.command()
def demo() -> None:
    """Run every flow in one process against the sandboxes and print what each did."""
    from sandbox.demo import run_demo

    sys.exit(run_demo())


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_(path: str) -> None:
    """Upsert master data from a 1C JSON export (the same file twice changes nothing)."""
    from models.db import session_scope
    from tasks.master_data import import_master_data

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


@cli.command("fetch-mail")
def fetch_mail() -> None:
    """Read the SEP mailbox now («Получить письма»; beat does it every OBMEN_MAIL_POLL_INTERVAL_S)."""
    from tasks.mail_intake import fetch_mail as do_fetch
    from tasks.outbox import relay_all
    from workers.app import app  # noqa: F401  (publishing needs the configured app)

    configure_logging(get_settings())
    report = do_fetch()
    relay_all()
    click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    if report.error:
        sys.exit(2)


@cli.command()
@click.option("--register", required=True, help="table name of the register, e.g. canaries")
@click.option("--id", "ids", multiple=True, type=int, help="row id (repeat); omit for every parked row")
def redrive(register: str, ids: tuple[int, ...]) -> None:
    """Un-park rows and run their step again (after fixing the cause)."""
    from tasks.outbox import relay_all
    from tasks.sweeper import UnknownRegister
    from tasks.sweeper import redrive as do_redrive
    from workers.app import app  # noqa: F401  (publishing needs the configured app)

    configure_logging(get_settings())
    try:
        result = do_redrive(register, list(ids) or None)
    except UnknownRegister as exc:
        raise click.ClickException(str(exc)) from exc
    relay_all()
    click.echo(json.dumps({"register": register, "redriven": result.ids, "skipped": result.skipped}))


@cli.command()
def sweep() -> None:
    """Re-drive stale rows now (beat does this every OBMEN_SWEEP_INTERVAL_S)."""
    from tasks.outbox import relay_all
    from tasks.sweeper import sweep as do_sweep
    from workers.app import app  # noqa: F401

    configure_logging(get_settings())
    redriven = do_sweep()
    relay_all()
    click.echo(json.dumps(redriven))


@cli.command()
def check() -> None:
    """Run the start-up self-check and print the effective reliability settings."""
    from config.selfcheck import problems
    from workers.app import app, settings

    found = problems(settings, app.conf)
    summary: dict[str, Any] = {
        "visibility_timeout_s": settings.visibility_timeout_s,
        "max_countdown_s": settings.max_countdown_s,
        "task_time_limit_s": settings.task_time_limit_s,
        "queues": list(QUEUE_NAMES),
        "problems": found,
    }
    click.echo(json.dumps(summary, indent=2))
    if found:
        sys.exit(2)


cli.add_command(sep_commands)


def main() -> None:
    cli()

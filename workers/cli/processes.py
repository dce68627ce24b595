"""The processes obmen runs: ``migrate``, ``worker``, ``beat``, ``gateway``, ``sandbox``, ``demo``."""

from __future__ import annotations

import sys

import click

from config.celery import QUEUE_NAMES
from config.logging import configure_logging
from config.settings import get_settings


@click.command()
def migrate() -> None:
    """Create or upgrade the register store to the latest schema."""
    from models.migrate import upgrade

    configure_logging(get_settings())
    upgrade()
    click.echo("register store is up to date")


@click.group()
def db() -> None:
    """The register store's schema: which revision it is at, the history, the upgrade (or its SQL)."""


@db.command()
def current() -> None:
    """The revision the register store is at."""
    from models.migrate import current as show_current

    show_current()


@db.command()
def history() -> None:
    """Every revision, newest first; the current one is marked."""
    from models.migrate import history as show_history

    show_history()


@db.command()
@click.option("--sql", is_flag=True, help="print the SQL instead of running it (for a DBA; no connection)")
@click.option("--from", "since", metavar="REVISION", help="with --sql: the revision the store is at")
def upgrade(sql: bool, since: str | None) -> None:
    """Upgrade the register store to the latest schema (as `obmen migrate`)."""
    from models.migrate import upgrade as do_upgrade

    if since and not sql:
        raise click.UsageError("--from goes with --sql (online, the store knows its revision)")
    if not sql:
        configure_logging(get_settings())
    do_upgrade(sql=sql, since=since)
    if not sql:
        click.echo("register store is up to date")


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
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

    enforce(settings, app.conf, queues=[q.strip() for q in queues.split(",") if q.strip()])
    argv = ["worker", "-Q", queues, "-P", pool, "--loglevel", settings.log_level]
    if concurrency:
        argv += ["-c", str(concurrency)]
    if hostname:
        argv += ["-n", hostname]
    app.worker_main([*argv, *celery_args])


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run the one beat (a Redis lock keeps a second one waiting)."""
    from config.selfcheck import enforce
    from workers.app import app, settings

    enforce(settings, app.conf, queues=())
    app.start(["beat", "--loglevel", settings.log_level, *celery_args])


@click.command()
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


@click.command()
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


@click.command()
@click.option("--console", "console", is_flag=True, help="then keep the web console up with a demo login")
@click.option("--port", default=8000, show_default=True, type=int, help="the console's port (--console)")
def demo(console: bool, port: int) -> None:
    """Run every flow in one process against the sandboxes and print what each did."""
    from sandbox.demo import run_demo

    sys.exit(run_demo(port if console else None))


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(flower_args: tuple[str, ...]) -> None:
    """Run Flower, the task monitor (refuses to start without OBMEN_FLOWER_BASIC_AUTH or FLOWER_AUTH)."""
    from workers.app import app, require_flower_auth

    require_flower_auth(list(flower_args))
    app.start(["flower", *flower_args])


@click.command()
@click.option("--url", help="healthy on a 2xx answer to GET URL (the gateway: http://127.0.0.1:8000/readyz)")
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False),
    help="healthy when a worker touched this file within --max-age (default: OBMEN_WORKER_READY_FILE)",
)
@click.option("--max-age", default=30.0, show_default=True, type=float, help="seconds")
@click.option(
    "--beat", "beat_lock", is_flag=True, help="healthy while a beat holds its schedule lock in Redis"
)
def healthcheck(url: str | None, ready_file: str | None, max_age: float, beat_lock: bool) -> None:
    """Probe a process for a container healthcheck: exit 0 when healthy, else 1 with the reason.

    Without an option it probes the worker's ready file when OBMEN_WORKER_READY_FILE is set, and
    otherwise whether the register store and the broker answer.
    """
    from workers.cli.probes import probe

    reason = probe(get_settings(), url=url, ready_file=ready_file, max_age_s=max_age, beat=beat_lock)
    if reason is not None:
        click.echo(f"unhealthy: {reason}", err=True)
        sys.exit(1)
    click.echo("healthy")

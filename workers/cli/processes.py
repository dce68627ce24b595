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

    enforce(settings, app.conf)
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

    enforce(settings, app.conf)
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


COMMANDS = [migrate, worker, beat, gateway, sandbox, demo]

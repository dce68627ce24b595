"""The ``obmen`` command: the processes (``processes``), the ops commands (``ops``), and a module of
commands per flow (``mail``, ``sep``, ``acts``, ``invoices``, ``edo``, ``billing``), and the console's users (``user``).

Commands are named here and their module is imported only when one of them runs: ``obmen
healthcheck`` runs every few seconds in every container and must not import every task and model.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "migrate": "workers.cli.processes:migrate",
    "db": "workers.cli.processes:db",
    "worker": "workers.cli.processes:worker",
    "beat": "workers.cli.processes:beat",
    "gateway": "workers.cli.processes:gateway",
    "sandbox": "workers.cli.processes:sandbox",
    "demo": "workers.cli.processes:demo",
    "flower": "workers.cli.processes:flower",
    "healthcheck": "workers.cli.processes:healthcheck",
    "import": "workers.cli.ops:import_",
    "redrive": "workers.cli.ops:redrive",
    "sweep": "workers.cli.ops:sweep",
    "check": "workers.cli.ops:check",
    "fetch-mail": "workers.cli.mail:fetch_mail",
    "sep": "workers.cli.sep:sep",
    "acts": "workers.cli.acts:acts",
    "invoices": "workers.cli.invoices:invoices",
    "edo": "workers.cli.edo:edo",
    "billing": "workers.cli.billing:billing",
    "user": "workers.cli.users:user",
}


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        """An unreachable store or a bad setting is one line naming the ``OBMEN_…`` setting."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if ctx.params.get("debug") or isinstance(exc, click.ClickException):
                raise
            from workers.cli.output import friendly

            line = friendly(exc) or f"{type(exc).__name__}: {exc}"
            raise click.ClickException(f"{line} (obmen --debug … shows the traceback)") from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="obmen", message="obmen %(version)s")
@click.option("--debug", is_flag=True, help="show the traceback of a failure")
def cli(debug: bool) -> None:
    """obmen: integration hub between 1C and the outside world, as a pipeline of Celery tasks."""


def main() -> None:
    cli()

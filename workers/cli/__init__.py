"""The ``obmen`` command: the processes (``processes``), the ops commands (``ops``), and a module of
commands per flow (``mail``, ``sep``, ``acts``), and the console's users (``user``)."""

from __future__ import annotations

import click

from workers.cli import acts, mail, ops, processes, sep, users


@click.group()
def cli() -> None:
    """obmen: integration hub between 1C and the outside world, as a pipeline of Celery tasks."""


for module in (processes, ops, mail):
    for command in module.COMMANDS:
        cli.add_command(command)
cli.add_command(sep.sep)
cli.add_command(acts.acts)
cli.add_command(users.user)


def main() -> None:
    cli()

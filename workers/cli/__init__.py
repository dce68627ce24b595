"""The ``obmen`` command: the processes (``processes``), the ops commands (``ops``), and a module of
commands per flow (``mail``, ``sep``, ``acts``, ``edo``)."""

from __future__ import annotations

import click

from workers.cli import acts, edo, mail, ops, processes, sep


@click.group()
def cli() -> None:
    """obmen: integration hub between 1C and the outside world, as a pipeline of Celery tasks."""


for module in (processes, ops, mail):
    for command in module.COMMANDS:
        cli.add_command(command)
cli.add_command(sep.sep)
cli.add_command(acts.acts)
cli.add_command(edo.edo)


def main() -> None:
    cli()

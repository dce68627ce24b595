"""``obmen edo …``: the EDO registers from the command line (the same queries as ``GET /edo/…``) and
their settings: routing rules with answer terms, senders, box credentials."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from workers.cli.output import echo_json, json_option, paging, register_session, table


def _print(rows: list[Any], as_json: bool, columns: tuple[str, ...]) -> None:
    data = [asdict(r) for r in rows]
    if as_json:
        echo_json(data)
    elif data:
        click.echo(table(data, columns))
    else:
        click.echo("nothing")


INCOMING = (
    "document_id",
    "package_id",
    "title",
    "document_type",
    "status",
    "customer_inn",
    "responsible_id",
    "answer_due_at",
)


@click.group()
def edo() -> None:
    """Legally significant EDO through Synerdocs: incoming documents, overdue answers, packages, settings."""


@edo.command("incoming")
@click.option("--status", help="routed, unrouted, answered …")
@paging
@json_option
def incoming_command(status: str | None, limit: int, offset: int, as_json: bool) -> None:
    """The company's incoming documents, newest first."""
    from models.db import session_scope
    from tasks.edo.queries import incoming

    with session_scope() as session:
        _print(incoming(session, status, limit=limit, offset=offset), as_json, INCOMING)


@edo.command("overdue")
@paging
@json_option
def overdue_command(limit: int, offset: int, as_json: bool) -> None:
    """Incoming documents past their answer date, unanswered."""
    from models.db import session_scope
    from tasks.edo.queries import overdue

    with session_scope() as session:
        _print(overdue(session, limit=limit, offset=offset), as_json, INCOMING)


@edo.command("packages")
@click.argument("inn")
@click.option("--kpp")
@paging
@json_option
def packages_command(inn: str, kpp: str | None, limit: int, offset: int, as_json: bool) -> None:
    """A customer's packages either way, newest first."""
    from models.db import session_scope
    from tasks.edo.queries import customer_packages

    with session_scope() as session:
        rows = customer_packages(session, inn, kpp, limit=limit, offset=offset)
    _print(rows, as_json, ("id", "package_key", "direction", "status", "message_id", "sent_at", "last_error"))


@edo.command("rule")
@click.argument("document_type")
@click.argument("title")
@click.argument("employee")
@click.argument("working_days", type=int)
def rule_command(document_type: str, title: str, employee: str, working_days: int) -> None:
    """Route incoming documents of DOCUMENT_TYPE to EMPLOYEE (an employee id), to be answered within
    WORKING_DAYS (``other`` is the rule for any type no rule names)."""
    from tasks.edo.register import set_rule

    with register_session() as session:
        set_rule(session, document_type, title, employee, working_days)
    click.echo(f"{document_type} → {employee}, {working_days} working days")


@edo.command("sender")
@click.argument("login")
@click.option("--employee", help="the employee id of the user")
def sender_command(login: str, employee: str | None) -> None:
    """Let LOGIN send the company's answers from its default box."""
    from tasks.edo.register import add_sender

    with register_session() as session:
        add_sender(session, login, employee)
    click.echo(f"{login} may send")


@edo.command("box-add")
@click.argument("box_address")
@click.option("--login", required=True)
@click.option("--password", prompt=True, hide_input=True)
@click.option("--inn", required=True)
@click.option("--kpp", default="")
@click.option("--name", required=True)
def box_add_command(box_address: str, login: str, password: str, inn: str, kpp: str, name: str) -> None:
    """Keep a box's credentials (the password encrypted with OBMEN_SYNERDOCS_CREDENTIALS_KEY)."""
    from tasks.edo.register import add_box

    with register_session() as session:
        add_box(session, box_address, login, password, inn=inn, kpp=kpp, name=name)
    click.echo(f"box {box_address} kept")

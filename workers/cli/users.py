"""``obmen user …``: the console's accounts (``add``, ``passwd``, ``disable``, ``enable``, ``list``)."""

from __future__ import annotations

import sys

import click

from models.console import ROLES
from workers.cli.output import register_session, table


def _password() -> str:
    """From a prompt when a person types it, else the first line of stdin (scripts, the demo)."""
    if sys.stdin.isatty():
        return str(click.prompt("Пароль", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


def _run(change: str, login: str, **kwargs: str | bool) -> None:
    from workers.gateway.console import accounts

    try:
        with register_session() as session:
            user = getattr(accounts, change)(session, login, *kwargs.values())
            accounts.audit(session, "cli", f"users.{change}", f"console_users:{user.login}")
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{login}: ok")


@click.group()
def user() -> None:
    """Console users: roles viewer (reads), operator (acts on the flows), admin (users, re-drive)."""


@user.command()
@click.argument("login")
@click.option("--role", type=click.Choice(ROLES), required=True)
def add(login: str, role: str) -> None:
    """Add a user (the password from a prompt, or the first line of stdin)."""
    _run("add_user", login, password=_password(), role=role)


@user.command()
@click.argument("login")
def passwd(login: str) -> None:
    """Set a user's password; the user's open sessions end."""
    _run("set_password", login, password=_password())


@user.command()
@click.argument("login")
def disable(login: str) -> None:
    """Disable a user: no more logins, open sessions end."""
    _run("set_disabled", login, disabled=True)


@user.command()
@click.argument("login")
def enable(login: str) -> None:
    _run("set_disabled", login, disabled=False)


@user.command("list")
def list_() -> None:
    from sqlalchemy import select

    from models.console import ConsoleUser

    with register_session() as session:
        rows = [
            {"login": u.login, "role": u.role, "disabled": bool(u.disabled_at), "last_login": u.last_login_at}
            for u in session.scalars(select(ConsoleUser).order_by(ConsoleUser.login))
        ]
    click.echo(table(rows, ["login", "role", "disabled", "last_login"]))

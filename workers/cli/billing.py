"""``obmen billing …``: subscribers' requests (where one stands, the override of a disconnection held
for a debt, closing) and planned repair works (announce, report) — the same entries as ``/billing``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from workers.cli.output import publishing


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _run(action: Callable[[Any], Any]) -> Any:
    """``action(session)`` in one transaction; a refusal is one line, not a traceback."""
    publishing()
    from pydantic import ValidationError

    from models.db import session_scope

    try:
        with session_scope() as session:
            return action(session)
    except (ValidationError, LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def _request_state(request: Any) -> dict[str, Any]:
    fields = ("number", "kind", "subscriber_inn", "status", "override_by", "override_reason", "override_at")
    return {name: getattr(request, name) for name in fields}


@click.group()
def billing() -> None:
    """Subscribers' requests and planned repair works."""


@billing.command("request")
@click.argument("number")
def request(number: str) -> None:
    """Where a subscriber's request stands (a held disconnection says awaiting_payment)."""
    from tasks.payments import requests

    _echo(_run(lambda session: _request_state(requests.find(session, number))))


@billing.command("override")
@click.argument("number")
@click.option("--by", required=True, help="who decided")
@click.option("--reason", required=True, help="why the debt does not hold the disconnection")
def override(number: str, by: str, reason: str) -> None:
    """Let a disconnection held for the subscriber's debt go ahead (who and why are recorded)."""
    from tasks.payments import requests
    from tasks.payments.entries import OverrideArgs

    def act(session: Any) -> dict[str, Any]:
        args = OverrideArgs(number=number, by=by, reason=reason)
        return _request_state(requests.override(session, args.number, args.by, args.reason))

    _echo(_run(act))


@billing.command("close")
@click.argument("number")
def close(number: str) -> None:
    """The request's process ended: close it («вы подключены» by SMS for a connection)."""
    from tasks.payments import requests

    _echo(_run(lambda session: _request_state(requests.close(session, number))))


@billing.command("announce-works")
@click.option("--number", required=True, help="the works' number (asking again changes nothing)")
@click.option("--line", help="the line under repair")
@click.option(
    "--address", "addresses", multiple=True, help="an address prefix the works concern (repeatable)"
)
@click.option(
    "--from", "starts_at", required=True, help="start, ISO 8601 with its offset: 2026-12-10T09:00+03:00"
)
@click.option("--to", "ends_at", required=True, help="end, likewise")
@click.option("--text", required=True, help="what subscribers are told")
@click.option("--by", help="who announces")
def announce_works(addresses: tuple[str, ...], **fields: Any) -> None:
    """Announce planned repair works: an SMS to each affected subscriber now, a reminder the day before."""
    from tasks.payments.entries import WorksArgs, announce_works

    def act(session: Any) -> dict[str, Any]:
        args = WorksArgs.model_validate(
            {**{k: v for k, v in fields.items() if v is not None}, "addresses": list(addresses) or None}
        )
        return {"works_id": announce_works.plain(session, args), "number": args.number}

    _echo(_run(act))


@billing.command("works-report")
@click.argument("number")
def works_report(number: str) -> None:
    """The planned works' mailing: notices and reminders delivered, failed, on their way."""
    from tasks.payments import works

    _echo(_run(lambda session: works.report(session, number)))


@billing.command("sms-balance")
def sms_balance() -> None:
    """The SMS account's balance at the provider (before a large mailing: error 3 parks what it cannot pay)."""
    publishing()
    from tasks.sms.clients import sms_client

    _echo({"balance": str(sms_client().balance())})

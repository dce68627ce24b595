"""``obmen acts …``: the acts register from the command line (the same lists as ``GET /acts``)."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

import click

from models import acts as acts_model
from models.acts import ACT_TYPES
from workers.cli.output import CodeOrLabel, json_option, paging, publishing, table


def _print(data: Any, as_json: bool, columns: tuple[str, ...] = (), key: str = "acts") -> None:
    if as_json or not columns:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    rows = data[key]
    click.echo(f"{data['total']} in all, {len(rows)} shown")
    if rows:
        click.echo(table(rows, columns))


@click.group()
def acts() -> None:
    """Acts of completed work: lists, one act, a manager's status steps."""


# English codes for the statuses the register keeps in Russian (either is accepted).
STATUS = CodeOrLabel(
    {
        "created": acts_model.CREATED,
        "signed_by_us": acts_model.SIGNED_BY_US,
        "sending": acts_model.SENDING,
        "emailing": acts_model.EMAILING,
        "sent": acts_model.SENT,
        "signed": acts_model.SIGNED,
        "accepted_unsigned": acts_model.ACCEPTED_UNSIGNED,
        "refused": acts_model.REFUSED,
    },
    stores="label",
)
TYPE = CodeOrLabel(ACT_TYPES, stores="code")

ACT_COLUMNS = (
    "id",
    "number",
    "deal_id",
    "company_id",
    "act_type",
    "status",
    "signature_due_at",
    "overdue",
    "bitrix24_item_id",
)


@acts.command("list")
@click.option("--status", type=STATUS, help=STATUS.help())
@click.option("--deal", "deal_id", type=int)
@click.option("--company", "company_id", type=int)
@click.option("--type", "act_type", type=TYPE, help=TYPE.help())
@click.option("--overdue", is_flag=True, help="sent, unsigned, past the 5 working days")
@paging
@json_option
def list_command(
    status: str | None,
    deal_id: int | None,
    company_id: int | None,
    act_type: str | None,
    overdue: bool,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Acts with their statuses, newest first."""
    from models.db import session_scope
    from tasks.acts.queries import ActFilter, list_acts

    with session_scope() as session:
        data = list_acts(session, ActFilter(status, deal_id, company_id, act_type, overdue, limit, offset))
    _print(data, as_json, ACT_COLUMNS)


@acts.command("show")
@click.argument("act_id", type=int)
def show(act_id: int) -> None:
    """One act with its files, history and deadline."""
    from models.db import session_scope
    from tasks.acts.queries import act_detail
    from tasks.acts.register import ActNotFound

    try:
        with session_scope() as session:
            data = act_detail(session, act_id)
    except ActNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    _print(data, True)


@acts.command("company")
@click.argument("company_id", type=int)
@paging
@json_option
def company(company_id: int, limit: int, offset: int, as_json: bool) -> None:
    """Every act of a company."""
    from models.db import session_scope
    from tasks.acts.queries import ActFilter, list_acts

    with session_scope() as session:
        data = list_acts(session, ActFilter(company_id=company_id, limit=limit, offset=offset))
    _print(data, as_json, ACT_COLUMNS)


@acts.command("deals-without-acts")
@click.option("--stage", help="only deals standing in this Bitrix24 stage")
@paging
@json_option
def deals_without(stage: str | None, limit: int, offset: int, as_json: bool) -> None:
    """Deals obmen knows from Bitrix24 that have no act yet."""
    from models.db import session_scope
    from tasks.acts.queries import deals_without_acts

    with session_scope() as session:
        data = deals_without_acts(session, stage, limit=limit, offset=offset)
    _print(
        data, as_json, ("deal_id", "title", "stage_id", "company_id", "exchange_method", "form"), key="deals"
    )


def _upload(path: str | None) -> Any:
    from tasks.acts.register import Upload

    if path is None:
        return None
    file = Path(path)
    return Upload(
        file.name, mimetypes.guess_type(file.name)[0] or "application/octet-stream", file.read_bytes()
    )


@acts.command("set-status")
@click.argument("act_id", type=int)
@click.argument("status", type=STATUS)
@click.option(
    "--file", "path", type=click.Path(exists=True, dir_okay=False), help="the scan, where the step needs one"
)
@click.option("--note")
def set_status(act_id: int, status: str, path: str | None, note: str | None) -> None:
    """A manager's step on an act (the same state machine as POST /acts/{id}/status)."""
    publishing()
    from models.db import session_scope
    from tasks.acts import machine
    from tasks.acts.register import ActNotFound, change_status, lock_act

    try:
        with session_scope() as session:
            landed = change_status(
                session,
                lock_act(session, act_id),
                status,
                actor=machine.MANAGER,
                note=note,
                upload=_upload(path),
            )
    except (ActNotFound, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"act_id": act_id, "status": landed}, ensure_ascii=False))


@acts.command("create")
@click.option("--number", required=True)
@click.option("--deal", "deal_id", required=True, type=int)
@click.option("--type", "act_type", required=True, type=TYPE, help=TYPE.help())
@click.option("--file", "path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--company", "company_id", type=int)
@click.option("--inn", "counterparty_inn")
@click.option("--kpp", "counterparty_kpp")
@click.option("--name", "counterparty_name")
@click.option("--product", "products", multiple=True)
@click.option("--send", is_flag=True, help="send at once (electronic acts go to СБИС)")
def create(path: str, products: tuple[str, ...], **fields: Any) -> None:
    """Draft an act for a deal (a repeat with the same number changes nothing)."""
    publishing()
    from pydantic import ValidationError

    from models.db import session_scope
    from tasks.acts.register import ActIn, create_act

    try:
        data = ActIn.model_validate(
            {**{k: v for k, v in fields.items() if v is not None}, "products": list(products)}
        )
        with session_scope() as session:
            act, created = create_act(session, data, _upload(path))
            result = {"act_id": act.id, "status": act.status, "created": created}
    except (ValidationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result, ensure_ascii=False))

"""``obmen sep ...``: the SEP workstation in a terminal — the work lists as tables, and the actions."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click
from sqlalchemy.orm import Session

from models import sep as sep_model
from workers.cli.output import CodeOrLabel, echo_json, json_option, paging, register_session, table


def _show(list_fn: Callable[[Session], Any], columns: Sequence[str], as_json: bool) -> None:
    with register_session() as session:
        found = list_fn(session)
    if as_json:
        echo_json(found.as_dict())
        return
    shown = f", {len(found.items)} shown" if len(found.items) < found.count else ""
    click.echo(f"{found.title}: {found.count}{shown}")
    if found.items:
        click.echo(table(found.items, columns))


def _act(action: Callable[[Session], Any]) -> None:
    from integrations.errors import PermanentError
    from tasks.machinery.outbox import relay_all

    try:
        with register_session() as session:
            answer = action(session)
    except PermanentError as exc:
        raise click.ClickException(str(exc)) from exc
    relay_all()
    click.echo(json.dumps(answer, ensure_ascii=False, default=str))


@click.group()
def sep() -> None:
    """АС «СЭП»: work lists (letters, ownership changes, lease applications, queue, errors) and actions."""


@sep.command()
@json_option
def summary(as_json: bool) -> None:
    """The count of each work list."""
    from tasks.sep import queries

    with register_session() as session:
        counts = queries.summary(session)
    if as_json:
        echo_json(counts)
        return
    click.echo(table([counts], list(counts)))


@sep.command()
@paging
@json_option
def letters(limit: int, offset: int, as_json: bool) -> None:
    """Letters to process: unread, unreadable, or whose application is not dealt with yet."""
    from tasks.sep import queries

    _show(
        lambda s: queries.letters(s, limit=limit, offset=offset),
        ["id", "received_at", "status", "kind", "application_number", "code", "asset_inventory_number",
         "responsible", "application_status", "request_status", "reason"],
        as_json,
    )  # fmt: skip


@sep.command()
@click.option("--responsible", help="employee id")
@click.option("--asset", help="asset inventory number")
@click.option("--vin")
@click.option("--epts")
@paging
@json_option
def ownership(
    responsible: str | None,
    asset: str | None,
    vin: str | None,
    epts: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Ownership changes to us not yet «Исполнен»."""
    from tasks.sep import queries

    _show(
        lambda s: queries.ownership_changes(
            s, responsible=responsible, asset=asset, vin=vin, epts=epts, limit=limit, offset=offset
        ),
        ["application_number", "status", "epts", "vin", "asset", "responsible", "current_owner_inn", "our_status",
         "code", "request_status", "last_error"],
        as_json,
    )  # fmt: skip


# English codes for the statuses the register keeps in Russian (either is accepted).
LEASE_STATUS = CodeOrLabel(
    {
        "submitting": sep_model.LEASE_SUBMITTING,
        "registered": sep_model.LEASE_REGISTERED,
        "confirming": sep_model.LEASE_CONFIRMING,
        "executed": sep_model.LEASE_EXECUTED,
        "rejected": sep_model.LEASE_REJECTED,
        "error": sep_model.LEASE_ERROR,
        "draft": sep_model.LEASE_DRAFT,
    },
    stores="label",
)


@sep.command()
@click.option("--status", type=LEASE_STATUS, help=LEASE_STATUS.help())
@paging
@json_option
def lease(status: str | None, limit: int, offset: int, as_json: bool) -> None:
    """Lease applications."""
    from tasks.sep import queries

    _show(
        lambda s: queries.lease_applications(s, status=status, limit=limit, offset=offset),
        ["lease_contract_number", "application_number", "status", "request_status", "lessee_inn", "lessee_status",
         "confirm_by", "notification_email", "last_error"],
        as_json,
    )  # fmt: skip


@sep.command("lease-candidates")
@click.option("--organization", help="ИНН of our organisation")
@click.option("--from", "period_from", type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "period_to", type=click.DateTime(["%Y-%m-%d"]))
@paging
@json_option
def lease_candidates(
    organization: str | None, period_from: Any, period_to: Any, limit: int, offset: int, as_json: bool
) -> None:
    """Lease contract appendices without a lease application; ready when every vehicle is «В собственности»."""
    from tasks.sep import queries

    _show(
        lambda s: queries.lease_candidates_list(
            s,
            organization=organization,
            period_from=period_from.date() if period_from else None,
            period_to=period_to.date() if period_to else None,
            limit=limit,
            offset=offset,
        ),
        ["lease_contract", "date", "lessee_inn", "lease_term_end", "vehicles", "ready"],
        as_json,
    )


@sep.command()
@paging
@json_option
def queue(limit: int, offset: int, as_json: bool) -> None:
    """Open queue numbers: requests not yet applied, parked ones first."""
    from tasks.sep import queries

    _show(
        lambda s: queries.queue(s, limit=limit, offset=offset),
        ["id", "operation", "queue_number", "status", "request_status", "sep_state", "polls", "next_poll_at",
         "parked_at", "last_error"],
        as_json,
    )  # fmt: skip


@sep.command()
@paging
@json_option
def errors(limit: int, offset: int, as_json: bool) -> None:
    """Errors of the exchange, newest first."""
    from tasks.sep import queries

    _show(
        lambda s: queries.errors(s, limit=limit, offset=offset),
        ["created_at", "correlation_id", "operation", "kind", "code", "application_number", "message"],
        as_json,
    )


# --- actions ---------------------------------------------------------------------------------------------
def _request_answer(request: Any, created: bool) -> dict[str, Any]:
    return {"request_id": request.id if request else None, "created": created}


@sep.command("request-applications")
@click.option("--organization", help="ИНН of our organisation (default: every one with SEP settings)")
@click.option("--from", "period_from", type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "period_to", type=click.DateTime(["%Y-%m-%d"]))
def request_applications(organization: str | None, period_from: Any, period_to: Any) -> None:
    """Ask SEP for the applications of a period."""
    from tasks.sep import actions

    def act(session: Session) -> list[dict[str, Any]]:
        found = actions.ask_applications(
            session,
            organization,
            period_from.date() if period_from else None,
            period_to.date() if period_to else None,
            source="ops",
        )
        return [_request_answer(r, c) for r, c in found]

    _act(act)


@sep.command()
@click.argument("application_number")
def refresh(application_number: str) -> None:
    """Refresh an application's data from SEP (before confirming, say)."""
    from tasks.sep import actions

    _act(
        lambda s: _request_answer(
            *actions.ask_application_data(s, application_number, source="ops", refresh=True)
        )
    )


def _status(reject: bool) -> Any:
    from integrations.sep.messages import PartyStatus

    return PartyStatus.REJECTED if reject else PartyStatus.CONFIRMED


@sep.command()
@click.argument("application_number")
@click.option("--code", help="the code from the letter, when it went to another mailbox")
@click.option("--reject", is_flag=True, help="reject the ownership change instead")
def confirm(application_number: str, code: str | None, reject: bool) -> None:
    """Confirm an ownership change to us (Confirmed with the register's code, or --code)."""
    from tasks.sep import actions

    _act(
        lambda s: _request_answer(
            *actions.confirm_ownership(
                s, application_number, party_status=_status(reject), code=code, source="ops"
            )
        )
    )


@sep.command("submit-lease")
@click.argument("lease_contract")
@click.option(
    "--lessee-email", is_flag=True, help="send the lessee's code to the lessee, not the technical mailbox"
)
@click.option("--confirm-by", type=click.DateTime(["%Y-%m-%d"]))
def submit_lease(lease_contract: str, lessee_email: bool, confirm_by: Any) -> None:
    """Submit the lease application of a lease contract appendix."""
    from tasks.sep import actions

    def act(session: Session) -> dict[str, Any]:
        lease_row, request, created = actions.submit_lease(
            session,
            lease_contract,
            use_technical_mailbox=not lessee_email,
            confirm_by=confirm_by.date() if confirm_by else None,
            source="ops",
        )
        return {"lease_application_id": lease_row.id, **_request_answer(request, created)}

    _act(act)


@sep.command("confirm-lease")
@click.argument("application_number")
@click.option("--code", help="the lessee's code from the letter")
@click.option("--reject", is_flag=True)
def confirm_lease(application_number: str, code: str | None, reject: bool) -> None:
    """Confirm a lease application as the lessee, with the lessee's code."""
    from tasks.sep import actions

    _act(
        lambda s: _request_answer(
            *actions.confirm_lease(
                s, application_number, lessee_status=_status(reject), code=code, source="ops"
            )
        )
    )


def _entry(name: str, **kwargs: Any) -> None:
    """Run a public entry (tasks/sep/entries.py) with its own checks; a refusal is the command's error."""
    from pydantic import ValidationError

    from tasks.machinery.steps import ENTRIES

    def act(session: Session) -> Any:
        try:
            return ENTRIES[name].call(session, source="ops", **kwargs)
        except ValidationError as exc:
            raise click.BadParameter(
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            ) from exc

    _act(act)


@sep.command("register-counterparty")
@click.argument("inn")
@click.option("--kpp", help="when master data has several for the ИНН")
@click.option("--organization", help="ИНН of our organisation")
def register_counterparty(inn: str, kpp: str | None, organization: str | None) -> None:
    """Find a counterparty in SEP by ИНН; register it from master data (КПП, ОГРН, name, address, e-mail) if missing."""
    _entry("sep.register_counterparty", inn=inn, kpp=kpp, organization_inn=organization)


@sep.command("lease-vehicles")
@click.argument("lease_contract")
@click.option("--add", "add", multiple=True, help="«+»: an ЭПТС to add (repeatable)")
@click.option("--remove", "remove", multiple=True, help="«−»: an ЭПТС to remove (repeatable)")
def lease_vehicles(lease_contract: str, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
    """Change the vehicles of an appendix's lease application before it is submitted."""
    _entry("sep.edit_lease_vehicles", lease_contract=lease_contract, add=list(add), remove=list(remove))


@sep.command("lease-change")
@click.argument("change_number")
@click.option("--kind", required=True, type=click.Choice(["Termination", "LesseeChange", "LeaseEnd"]))
@click.option("--epts", "epts", multiple=True, required=True, help="a vehicle «В лизинге» (repeatable)")
@click.option("--new-lessee", help="LesseeChange: the new lessee's ИНН (a counterparty in SEP)")
@click.option("--confirm-by", type=click.DateTime(["%Y-%m-%d"]))
@click.option("--lessee-email", is_flag=True, help="send the codes to the lessee, not the technical mailbox")
@click.option("--draft", is_flag=True, help="keep it «Черновик», do not submit yet")
def lease_change(
    change_number: str,
    kind: str,
    epts: tuple[str, ...],
    new_lessee: str | None,
    confirm_by: Any,
    lessee_email: bool,
    draft: bool,
) -> None:
    """Submit (or keep as a draft) a termination, change of lessee (перенаём) or end of lease."""
    _entry(
        "sep.submit_lease_change",
        change_number=change_number,
        kind=kind,
        epts=list(epts),
        new_lessee_inn=new_lessee,
        confirm_by=confirm_by.date() if confirm_by else None,
        use_technical_mailbox=not lessee_email,
        draft=draft,
    )


@sep.command("confirm-lease-change")
@click.argument("change_number")
@click.option("--code", "codes", multiple=True, help="ROLE=CODE from a party's letter (Lessee, NewLessee)")
@click.option("--reject", is_flag=True)
def confirm_lease_change(change_number: str, codes: tuple[str, ...], reject: bool) -> None:
    """Confirm a registered lease change for its parties, with their codes."""
    if any("=" not in code for code in codes):
        raise click.BadParameter("give each code as ROLE=CODE, e.g. Lessee=123456", param_hint="--code")
    given = dict(code.split("=", 1) for code in codes)
    _entry("sep.confirm_lease_change", change_number=change_number, codes=given, reject=reject)


@sep.command("lease-changes")
@click.option("--status", type=LEASE_STATUS, help=LEASE_STATUS.help())
@paging
@json_option
def lease_changes(status: str | None, limit: int, offset: int, as_json: bool) -> None:
    """Terminations, changes of lessee and ends of lease."""
    from tasks.sep import queries

    _show(
        lambda s: queries.lease_changes(s, status=status, limit=limit, offset=offset),
        ["change_number", "kind", "application_number", "status", "request_status", "lessee_inn", "new_lessee_inn",
         "epts", "confirm_by", "last_error"],
        as_json,
    )  # fmt: skip


@sep.command()
@paging
@json_option
def counterparties(limit: int, offset: int, as_json: bool) -> None:
    """Counterparties looked up or registered in SEP."""
    from tasks.sep import queries

    _show(
        lambda s: queries.counterparties(s, limit=limit, offset=offset),
        ["inn", "kpp", "name", "status", "sep_id", "request_status", "last_error"],
        as_json,
    )


@sep.command()
def digest() -> None:
    """Send today's digest of what waits for a person to each SEP-responsible now (once a day)."""
    _entry("sep.send_digest")

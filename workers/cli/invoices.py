"""``obmen invoices …``: the invoice register from the command line (the same rows as ``GET /invoices``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ValidationError

from models.invoices import PAYMENT_STATUSES
from workers.cli.output import json_option, paging, register_session, table

INVOICE_COLUMNS = (
    "id",
    "number",
    "issued_at",
    "order_id",
    "amount",
    "payment_label",
    "paid_amount",
    "version",
)
PAYMENT_COLUMNS = ("id", "payment_id", "payer_inn", "amount", "named", "status", "note")


def _dump(rows: Any) -> Any:
    if isinstance(rows, BaseModel):
        return rows.model_dump(mode="json")
    return [r.model_dump(mode="json") for r in rows]


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@click.group()
def invoices() -> None:
    """Invoices from 1C: request one, a customer's list, one invoice, its file, payments for a person."""


@invoices.command("request")
@click.argument("order_id")
@click.argument("amount")
@click.argument("customer_inn")
def request_command(order_id: str, amount: str, customer_inn: str) -> None:
    """Ask for the invoice of ORDER_ID and AMOUNT (rubles, "1234.50") for CUSTOMER_INN."""
    from tasks.invoices.entries import request_invoice

    try:
        with register_session() as session:
            state = request_invoice.call(
                session, order_id=order_id, amount=amount, customer_inn=customer_inn, source="cli"
            )
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    _echo(_dump(state))


@invoices.command("list")
@click.argument("customer_inn")
@click.option("--status", type=click.Choice(PAYMENT_STATUSES))
@click.option("--order", "order_id")
@paging
@click.option("--after", help="`next` of the previous page")
@json_option
def list_command(
    customer_inn: str,
    status: str | None,
    order_id: str | None,
    limit: int,
    offset: int,
    after: str | None,
    as_json: bool,
) -> None:
    """A customer's invoices, newest first, with their payment status."""
    from models.db import session_scope
    from tasks.invoices.queries import BadCursor, list_invoices

    try:
        with session_scope() as session:
            page = list_invoices(
                session,
                customer_inn,
                status=status,
                order_id=order_id,
                limit=limit,
                after=after,
                offset=offset,
            )
    except BadCursor as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        _echo(_dump(page))
        return
    rows = _dump(page.invoices)
    click.echo(table(rows, INVOICE_COLUMNS) if rows else "no invoices")
    if page.next:
        click.echo(f"more: --after {page.next}")


@invoices.command("show")
@click.argument("invoice_id", type=int)
def show(invoice_id: int) -> None:
    """One invoice with its versions and the bank payments matched to it."""
    from models.db import session_scope
    from tasks.invoices.queries import invoice_detail
    from tasks.invoices.register import InvoiceNotInRegister

    try:
        with session_scope() as session:
            _echo(_dump(invoice_detail(session, invoice_id)))
    except InvoiceNotInRegister as exc:
        raise click.ClickException(str(exc)) from exc


@invoices.command("file")
@click.argument("invoice_id", type=int)
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--version", type=int, help="a given version (default: the latest)")
def file_command(invoice_id: int, target: Path, version: int | None) -> None:
    """Write the invoice's PDF (from the register, never from 1C) to TARGET."""
    from models.db import session_scope
    from tasks.invoices.queries import invoice_file
    from tasks.invoices.register import InvoiceNotInRegister

    try:
        with session_scope() as session:
            found = invoice_file(session, invoice_id, version)
    except InvoiceNotInRegister as exc:
        raise click.ClickException(str(exc)) from exc
    target.write_bytes(found.content)
    click.echo(f"{target}: № {found.number}, version {found.version}, {len(found.content)} bytes")


@invoices.command("payments")
@json_option
def payments(as_json: bool) -> None:
    """Bank payments naming an invoice that wait for a person (ambiguous, unmatched)."""
    from models.db import session_scope
    from tasks.invoices.queries import payments_for_a_person

    with session_scope() as session:
        rows = _dump(payments_for_a_person(session))
    if as_json:
        _echo(rows)
    else:
        click.echo(table(rows, PAYMENT_COLUMNS) if rows else "nothing waits for a person")


@invoices.command("assign-payment")
@click.argument("match_id", type=int)
@click.argument("invoice_id", type=int)
@click.option("--by", required=True, help="who decided")
def assign(match_id: int, invoice_id: int, by: str) -> None:
    """Count a waiting bank payment (MATCH_ID of `obmen invoices payments`) towards INVOICE_ID."""
    from tasks.invoices.matching import NotAssignable, assign_payment
    from tasks.invoices.queries import PaymentRow
    from tasks.invoices.register import InvoiceNotInRegister

    try:
        with register_session() as session:
            _echo(_dump(PaymentRow.model_validate(assign_payment(session, match_id, invoice_id, by=by))))
    except (NotAssignable, InvoiceNotInRegister) as exc:
        raise click.ClickException(str(exc)) from exc


@invoices.command("poll")
def poll_command() -> None:
    """Read 1C's change list now (what beat does every OBMEN_INVOICE_POLL_INTERVAL_S)."""
    from tasks.invoices.changes import poll
    from workers.cli.output import publishing

    publishing()
    report = poll()
    _echo({"pages": report.pages, "outcomes": dict(report.outcomes), "cursor": report.cursor})

"""Invoices from 1C (seed 004): a customer's invoices (keyset pages of ``tasks/invoices/queries.py``),
one invoice with its versions and the bank payments counted towards it, and the bank payments naming
an invoice that wait for a person — an operator says which invoice one pays (``assign_payment``, as
``POST /invoices/payments/…/assign``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.db import session_scope
from models.invoices import MATCH_FOR_A_PERSON, PAYMENT_LABELS, InvoicePayment
from tasks.invoices import queries
from tasks.invoices.matching import NotAssignable, assign_payment
from tasks.invoices.register import InvoiceNotInRegister
from workers.gateway.console.actions import record
from workers.gateway.console.pages import Flow, Page, Widget
from workers.gateway.console.web import (
    Column,
    ConsoleRoute,
    Listing,
    Person,
    Posted,
    back,
    flash,
    list_page,
    operator,
    posted,
    render,
    viewer,
)
from workers.gateway.params import Id

router = APIRouter(prefix="/invoices", route_class=ConsoleRoute)


def _invoices(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    # The register is read per customer (its index leads with the ИНН): no ИНН, no list.
    inn = chosen.get("inn")
    if not inn:
        return []
    try:
        page = queries.list_invoices(
            session, inn, status=chosen.get("status"), order_id=chosen.get("order"), limit=limit, after=after
        )
    except queries.BadCursor:
        return []
    return [
        {**row.model_dump(), "cursor": queries.encode_cursor(row.issued_at, row.id)} for row in page.invoices
    ]


INVOICES = Listing(
    "invoices",
    (
        Column("number", "Номер", link="/console/invoices/{id}"),
        Column("issued_at", "Дата", "dt"),
        Column("customer_inn", "ИНН клиента", "code"),
        Column("order_id", "Заказ", "code"),
        Column("amount", "Сумма", "money"),
        Column("purpose", "Назначение"),
        Column("payment_status", "Оплата", "status"),
        Column("paid_amount", "Оплачено", "money"),
        Column("version", "Версия"),
    ),
    _invoices,
    cursor="cursor",
    filters=("inn", "status", "order"),
)


@router.get("")
def invoices(request: Request, person: Person = viewer) -> Response:
    with session_scope() as session:
        waiting = queries.payments_for_a_person(session)
    return list_page(
        request, person, INVOICES, "invoices.html", title="Счета", waiting=waiting, statuses=PAYMENT_LABELS
    )


@router.get("/{invoice_id}")
def invoice(request: Request, invoice_id: Id, person: Person = viewer) -> Response:
    try:
        with session_scope() as session:
            found = queries.invoice_detail(session, invoice_id)
    except InvoiceNotInRegister as exc:
        raise HTTPException(404, str(exc)) from exc
    return render(request, "invoice.html", person, invoice=found)


@router.post("/payments/{match_id}/assign")
def assign(request: Request, match_id: Id, person: Person = operator, form: Posted = posted) -> Response:
    """A person says which invoice a waiting bank payment pays (the number is the invoice's id)."""
    target = f"invoice_payments:{match_id}"
    chosen = form.get("invoice")
    try:
        if not chosen.isascii() or not chosen.isdigit():
            raise ValueError("укажите номер счёта в реестре (число)")
        with session_scope() as session:
            assign_payment(session, match_id, int(chosen), by=f"console:{person.login}")
            record(session, request, person, "invoices.assign_payment", target, {"invoice_id": int(chosen)})
        flash(request, f"Платёж {match_id} засчитан в счёт {chosen}")
    except (ValueError, NotAssignable, InvoiceNotInRegister) as exc:
        with session_scope() as session:
            record(session, request, person, "invoices.assign_payment", target, {"invoice": chosen}, str(exc))
        flash(request, f"Платёж {match_id} не засчитан: {exc}", "bad")
    return back(request, "/console/invoices")


def _waiting(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(InvoicePayment)
            .where(InvoicePayment.status.in_(MATCH_FOR_A_PERSON))
        )
        or 0
    )


FLOW = Flow(
    router,
    pages=(Page("/console/invoices", "Счета"),),
    widgets=(Widget("invoice_payments", "Оплаты счетов ждут решения", "/console/invoices", _waiting),),
    systems=("onec",),
)

"""Payments and billing (seed 001): the payments register with search by ИНН and transaction, the
unallocated ones a person assigns to a subscriber (``assign_payment``, as ``POST /ops/payments/…/assign``),
accruals and the escalation deadlines (reminders, disconnections)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from integrations.validation import validate_inn
from models.db import session_scope
from models.payments import Accrual, BillingDeadline, Payment
from tasks.payments.register import NotAssignable, assign_payment
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
    viewer,
)
from workers.gateway.params import Id

router = APIRouter(route_class=ConsoleRoute)


def before(after: Any) -> int | None:
    try:
        return int(after) if after is not None else None
    except ValueError:
        return None


def _payments(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    query = select(Payment).order_by(Payment.id.desc()).limit(limit)
    if (cursor := before(after)) is not None:
        query = query.where(Payment.id < cursor)
    if inn := chosen.get("inn"):
        query = query.where(Payment.inn == inn)
    if txn := chosen.get("transaction"):
        query = query.where(Payment.transaction_id == txn)
    if status := chosen.get("status"):
        query = query.where(Payment.status == status)
    return [
        {
            "id": p.id,
            "transaction_id": p.transaction_id,
            "source": p.source,
            "paid_at": p.paid_at,
            "inn": p.inn,
            "payer_name": p.payer_name,
            "amount": p.amount,
            "purpose": p.purpose,
            "status": p.status if p.parked_at is None else "parked",
            "subscriber_inn": p.subscriber_inn,
            "last_error": p.last_error,
        }
        for p in session.scalars(query)
    ]


PAYMENTS = Listing(
    "payments",
    (
        Column("id", "№"),
        Column("transaction_id", "Транзакция", "code"),
        Column("paid_at", "Оплачен", "dt"),
        Column("inn", "ИНН плательщика", "code"),
        Column("payer_name", "Плательщик"),
        Column("amount", "Сумма", "money"),
        Column("purpose", "Назначение"),
        Column("status", "Статус", "status"),
        Column("subscriber_inn", "Абонент", "code"),
    ),
    _payments,
    filters=("inn", "transaction", "status"),
)


@router.get("/payments")
def payments(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, PAYMENTS, "payments.html", title="Платежи")


@router.post("/payments/{payment_id}/assign")
def assign(request: Request, payment_id: Id, person: Person = operator, form: Posted = posted) -> Response:
    """Разнести: post an unallocated payment to the subscriber a person identified."""
    target = f"payments:{payment_id}"
    try:
        inn = validate_inn(form.get("inn"))
        with session_scope() as session:
            assign_payment(session, payment_id, inn)
            record(session, request, person, "payments.assign", target, {"inn": inn})
        flash(request, f"Платёж {payment_id} разнесён на абонента {inn}")
    except (ValueError, NotAssignable) as exc:
        with session_scope() as session:
            record(session, request, person, "payments.assign", target, {"inn": form.get("inn")}, str(exc))
        flash(request, f"Платёж {payment_id} не разнесён: {exc}", "bad")
    return back(request)


def _accruals(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    query = select(Accrual).order_by(Accrual.id.desc()).limit(limit)
    if (cursor := before(after)) is not None:
        query = query.where(Accrual.id < cursor)
    if inn := chosen.get("inn"):
        query = query.where(Accrual.subscriber_inn == inn)
    if status := chosen.get("status"):
        query = query.where(Accrual.status == status)
    return [
        {
            "id": a.id,
            "subscriber_inn": a.subscriber_inn,
            "period": a.period,
            "tariff": a.tariff,
            "amount": a.amount,
            "paid_amount": a.paid_amount,
            "status": a.status,
            "paid_at": a.paid_at,
        }
        for a in session.scalars(query)
    ]


ACCRUALS = Listing(
    "accruals",
    (
        Column("id", "№"),
        Column("subscriber_inn", "Абонент", "code"),
        Column("period", "Период", "d"),
        Column("tariff", "Тариф"),
        Column("amount", "Начислено", "money"),
        Column("paid_amount", "Оплачено", "money"),
        Column("status", "Статус", "status"),
        Column("paid_at", "Дата оплаты", "dt"),
    ),
    _accruals,
    filters=("inn", "status"),
)

DEADLINE_KINDS = {"reminder": "Напоминание об оплате", "disconnect": "Задача на отключение"}


def _deadlines(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    query = (
        select(BillingDeadline, Accrual.subscriber_inn)
        .join(Accrual, Accrual.id == BillingDeadline.accrual_id)
        .order_by(BillingDeadline.id.desc())
        .limit(limit)
    )
    if (cursor := before(after)) is not None:
        query = query.where(BillingDeadline.id < cursor)
    if status := chosen.get("status"):
        query = query.where(BillingDeadline.status == status)
    return [
        {
            "id": d.id,
            "subscriber_inn": inn,
            "kind": DEADLINE_KINDS.get(d.kind, d.kind),
            "due_at": d.due_at,
            "status": d.status,
            "fired_at": d.fired_at,
            "bitrix24_ref": d.bitrix24_ref,
        }
        for d, inn in session.execute(query)
    ]


DEADLINES = Listing(
    "billing_deadlines",
    (
        Column("id", "№"),
        Column("subscriber_inn", "Абонент", "code"),
        Column("kind", "Шаг"),
        Column("due_at", "Срок", "dt"),
        Column("status", "Статус", "status"),
        Column("fired_at", "Выполнен", "dt"),
        Column("bitrix24_ref", "Задача Битрикс24", "code"),
    ),
    _deadlines,
    filters=("status",),
)


@router.get("/billing")
def accruals(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, ACCRUALS, title="Начисления")


@router.get("/billing/deadlines")
def deadlines(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, DEADLINES, title="Напоминания и эскалации")


def _unallocated(session: Session) -> int:
    return (
        session.scalar(select(func.count()).select_from(Payment).where(Payment.status == "unallocated")) or 0
    )


FLOW = Flow(
    router,
    pages=(
        Page("/console/payments", "Платежи"),
        Page("/console/billing", "Начисления"),
        Page("/console/billing/deadlines", "Эскалации"),
    ),
    widgets=(
        Widget("unallocated", "Неразнесённые платежи", "/console/payments?status=unallocated", _unallocated),
    ),
    systems=("bank", "bitrix24"),
)

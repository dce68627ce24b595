"""Payments: accepted in the caller's transaction, posted exactly once by ``payments.post``.

``accept_payment`` is what the gateway calls for the bank API and the OSMP protocol: one insert
keyed by the transaction id plus the outbox row of ``payments.post``, committed before the bank
gets its 2xx. ``post_payments`` allocates the money to the subscriber's accruals oldest first and,
when that clears the debt, asks the CRM to move the deal to «Оплачено».
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.master import Subscriber
from models.payments import (
    ZERO,
    Accrual,
    Payment,
    PaymentAllocation,
    SubscriberBalance,
    insert_ignoring_duplicates,
)
from tasks.machinery.outbox import enqueue, enqueue_many
from tasks.payments.chain import POST

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Acceptance:
    outcome: Literal["created", "duplicate", "conflict"]
    payment_id: int


@dataclass(frozen=True)
class Incoming:
    """A payment as the bank or a payment agent reported it, validated at the edge."""

    transaction_id: str
    source: str
    inn: str
    amount: Decimal
    paid_at: datetime
    purpose: str
    payer_name: str | None
    content_hash: str


def accept_payment(session: Session, payment: Incoming) -> Acceptance:
    """Record one payment event and its posting step (:func:`accept_payments` of one)."""
    return accept_payments(session, [payment])[0]


def accept_payments(session: Session, payments: Sequence[Incoming]) -> list[Acceptance]:
    """Record payment events and their posting steps, or say how each relates to the one recorded.

    The gateway accepts the requests that arrive together in one transaction (group commit): one
    multi-row insert keyed by the transaction id, one outbox insert, one commit for them all.
    """
    firsts: dict[str, Incoming] = {}
    for payment in payments:
        firsts.setdefault(payment.transaction_id, payment)
    # Transaction-id order: two groups waiting on each other's uncommitted ids never deadlock.
    ordered = sorted(firsts.values(), key=lambda p: p.transaction_id)
    statement = (
        insert_ignoring_duplicates(session, Payment)
        .values(next_step_at=func.now())  # its posting step is due now (enqueue_many's inserted_due)
        .returning(Payment.transaction_id, Payment.id)
    )
    inserted = {row.transaction_id: row.id for row in session.execute(statement, [_row(p) for p in ordered])}
    created = [p for p in ordered if p.transaction_id in inserted]
    if created:
        enqueue_many(
            session,
            POST,
            [{"id": inserted[p.transaction_id]} for p in created],
            business_keys=[f"payments:{p.transaction_id}" for p in created],
            inserted_due=True,
        )
    recorded = {p.transaction_id: (inserted[p.transaction_id], p.content_hash) for p in created}
    # Someone committed the other ids first (the insert waited for them): compare the content.
    others = [tid for tid in firsts if tid not in inserted]
    if others:
        query = select(Payment.transaction_id, Payment.id, Payment.content_hash)
        for row in session.execute(query.where(Payment.transaction_id.in_(others))):
            recorded[row.transaction_id] = (row.id, row.content_hash)
    answers = []
    for payment in payments:
        payment_id, content_hash = recorded[payment.transaction_id]
        if payment.transaction_id in inserted and firsts[payment.transaction_id] is payment:
            answers.append(Acceptance("created", payment_id))
        else:
            same = content_hash == payment.content_hash
            answers.append(Acceptance("duplicate" if same else "conflict", payment_id))
    return answers


def _row(payment: Incoming) -> dict[str, Any]:
    return asdict(payment) | {
        "currency": "RUB",
        "status": "received",
        "remainder": payment.amount,
        "attempts": 0,
    }


def lock_balance(session: Session, inn: str) -> SubscriberBalance:
    """The subscriber's balance row, locked: every change of a balance holds this lock first."""
    return lock_balances(session, [inn])[inn]


def lock_balances(session: Session, inns: Iterable[str]) -> dict[str, SubscriberBalance]:
    """Balance rows by ИНН, made when missing and locked in ИНН order (two batches never deadlock)."""
    ordered = sorted(set(inns))
    query = (
        select(SubscriberBalance)
        .order_by(SubscriberBalance.inn)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    balances = {b.inn: b for b in session.scalars(query.where(SubscriberBalance.inn.in_(ordered)))}
    missing = [inn for inn in ordered if inn not in balances]
    if missing:
        session.execute(
            insert_ignoring_duplicates(session, SubscriberBalance),
            [{"inn": inn, "debt": ZERO, "advance": ZERO} for inn in missing],
        )
        balances.update((b.inn, b) for b in session.scalars(query.where(SubscriberBalance.inn.in_(missing))))
    return balances


def open_accruals(session: Session, inns: Iterable[str]) -> dict[str, list[Accrual]]:
    """Each subscriber's accruals not yet paid, oldest first, locked (under the balance locks)."""
    found: dict[str, list[Accrual]] = defaultdict(list)
    query = (
        select(Accrual)
        .where(Accrual.subscriber_inn.in_(sorted(set(inns))), Accrual.status != "paid")
        .order_by(Accrual.subscriber_inn, Accrual.period, Accrual.id)
        .with_for_update()
    )
    for accrual in session.scalars(query):
        found[accrual.subscriber_inn].append(accrual)
    return found


def allocate(session: Session, payment_id: int, accrual: Accrual, amount: Decimal, now: datetime) -> None:
    session.add(PaymentAllocation(payment_id=payment_id, accrual_id=accrual.id, amount=amount))
    accrual.paid_amount += amount
    if accrual.paid_amount >= accrual.amount:
        accrual.status = "paid"
        accrual.paid_at = now


class NotAssignable(LookupError):
    pass


def assign_payment(session: Session, payment_id: int, inn: str) -> Payment:
    """A person decided whose an unallocated payment is: post it to that subscriber."""
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment is None or payment.status != "unallocated":
        raise NotAssignable(f"payment {payment_id} is not an unallocated payment")
    if session.get(Subscriber, inn) is None:
        raise NotAssignable(f"no subscriber with ИНН {inn}")
    payment.subscriber_inn = inn
    payment.status = "received"
    enqueue(session, POST, {"id": payment.id}, business_key=f"payments:{payment.transaction_id}:assigned")
    return payment

"""Payments: accepted in the caller's transaction, posted exactly once by ``payments.post``.

``accept_payment`` is what the gateway calls for the bank API and the OSMP protocol: one insert
keyed by the transaction id plus the outbox row of ``payments.post``, committed before the bank
gets its 2xx. ``post_payment`` allocates the money to the subscriber's accruals oldest first and,
when that clears the debt, asks the CRM to move the deal to «Оплачено».
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

import structlog
from sqlalchemy import select
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
from tasks.machinery.outbox import enqueue
from tasks.payments.chain import POST

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Acceptance:
    outcome: Literal["created", "duplicate", "conflict"]
    payment_id: int


def accept_payment(
    session: Session,
    *,
    transaction_id: str,
    source: str,
    inn: str,
    amount: Decimal,
    paid_at: datetime,
    purpose: str,
    payer_name: str | None,
    content_hash: str,
) -> Acceptance:
    """Record the payment event and its posting step, or say how it relates to the one recorded."""
    inserted = session.execute(
        insert_ignoring_duplicates(session, Payment)
        .values(
            transaction_id=transaction_id,
            source=source,
            inn=inn,
            amount=amount,
            currency="RUB",
            paid_at=paid_at,
            purpose=purpose,
            payer_name=payer_name,
            content_hash=content_hash,
            status="received",
            remainder=amount,
            attempts=0,
        )
        .returning(Payment.id)
    ).scalar()
    if inserted is not None:
        enqueue(session, POST, {"id": inserted}, business_key=f"payments:{transaction_id}")
        return Acceptance("created", inserted)
    # Someone committed this transaction id first (the insert waited for it): compare the content.
    found = session.execute(
        select(Payment.id, Payment.content_hash).where(Payment.transaction_id == transaction_id)
    ).one()
    return Acceptance("duplicate" if found.content_hash == content_hash else "conflict", found.id)


def lock_balance(session: Session, inn: str) -> SubscriberBalance:
    """The subscriber's balance row, locked: every change of a balance holds this lock first."""
    balance = session.get(SubscriberBalance, inn, with_for_update=True)
    if balance is None:
        session.execute(
            insert_ignoring_duplicates(session, SubscriberBalance).values(inn=inn, debt=ZERO, advance=ZERO)
        )
        balance = session.get(SubscriberBalance, inn, with_for_update=True, populate_existing=True)
        assert balance is not None
    return balance


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

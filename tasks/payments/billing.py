"""Subscriber billing: accruals from tariffs, the reminder process, escalation, subscriber requests.

``billing.accrue(period)`` charges every subscriber's tariff once per month (the unique key
subscriber + period makes a second run a no-op), applies any advance, and for what stays unpaid
starts the reminder business process in Bitrix24, sends the reminder SMS, and writes the escalation deadlines as rows:
a repeated reminder after ``OBMEN_BILLING_REMINDER_AFTER_DAYS`` and a task «Отключить абонента»
(disconnect the subscriber) for the responsible employee after ``OBMEN_BILLING_DISCONNECT_AFTER_DAYS``.
``billing.escalate`` (beat) fires the deadlines that came due, unless the accrual was paid meanwhile.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import PermanentError
from models.master import Subscriber, Tariff
from models.payments import (
    Accrual,
    BillingDeadline,
    Payment,
)
from tasks.machinery import deadlines
from tasks.machinery.deadlines import CANCELLED, DeadlineRegister
from tasks.machinery.outbox import enqueue
from tasks.payments import notices, works
from tasks.payments.chain import FIRE_DEADLINE, FIRE_DEADLINES_BATCH, START_REMINDER
from tasks.payments.register import allocate, lock_balance
from tasks.sms.outgoing import send_sms

log = structlog.get_logger(__name__)

DISCONNECT_TITLE = "Отключить абонента"


def create_accrual(
    session: Session, subscriber: Subscriber, tariff: Tariff, period: date, now: datetime
) -> Accrual:
    balance = lock_balance(session, subscriber.inn)
    accrual = Accrual(
        subscriber_inn=subscriber.inn,
        period=period,
        tariff=tariff.code,
        amount=tariff.monthly_fee,
        paid_amount=0,
    )
    session.add(accrual)
    session.flush()
    if balance.advance > 0:
        advances = session.scalars(
            select(Payment)
            .where(
                Payment.subscriber_inn == subscriber.inn, Payment.status == "posted", Payment.remainder > 0
            )
            .order_by(Payment.id)
            .with_for_update()
        )
        for payment in advances:
            take = min(payment.remainder, accrual.due)
            allocate(session, payment.id, accrual, take, now)
            payment.remainder -= take
            balance.advance -= take
            if accrual.due <= 0:
                break
    balance.debt += accrual.due
    if accrual.status == "paid":
        return accrual
    settings = get_settings()
    for kind, days in (
        ("reminder", settings.billing_reminder_after_days),
        ("disconnect", settings.billing_disconnect_after_days),
    ):
        session.add(BillingDeadline(accrual_id=accrual.id, kind=kind, due_at=now + timedelta(days=days)))
    enqueue(session, START_REMINDER, {"id": accrual.id}, business_key=f"accruals:{subscriber.inn}:{period}")
    send_sms(session, notices.payment_reminder(subscriber, accrual, 1))
    return accrual


def deal_of(session: Session, inn: str, what: str) -> tuple[Subscriber, int]:
    subscriber = session.get(Subscriber, inn)
    if subscriber is None or not subscriber.bitrix24_deal_id:
        raise PermanentError(
            f"subscriber {inn} has no Bitrix24 deal: {what} needs one (set bitrix24_deal_id, re-drive)"
        )
    return subscriber, subscriber.bitrix24_deal_id


# A deadline of an accrual paid meanwhile is cancelled by the sweep instead of fired.
DEADLINES = DeadlineRegister(
    BillingDeadline,
    fire=FIRE_DEADLINE,
    fire_batch=FIRE_DEADLINES_BATCH,
    moot=lambda: exists().where(Accrual.id == BillingDeadline.accrual_id, Accrual.status == "paid"),
)


def escalate(limit: int = 500) -> dict[str, int]:
    """Fire the deadlines that came due — the accruals' escalation, the planned works' reminders —
    and cancel those that became moot (the accrual paid, the works begun)."""
    swept = deadlines.sweep(DEADLINES, limit) + deadlines.sweep(works.DEADLINES, limit)
    return {"fired": swept.total() - swept[CANCELLED], "cancelled": swept[CANCELLED]}


def process_template(kind: str) -> int:
    settings = get_settings()
    return {
        "connect": settings.bitrix24_template_connect,
        "disconnect": settings.bitrix24_template_disconnect,
        "change_tariff": settings.bitrix24_template_change_tariff,
    }[kind]

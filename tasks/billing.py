"""Subscriber billing: accruals from tariffs, the reminder process, escalation, subscriber requests.

``billing.accrue(period)`` charges every subscriber's tariff once per month (the unique key
subscriber + period makes a second run a no-op), applies any advance, and for what stays unpaid
starts the reminder business process in Bitrix24 and writes the escalation deadlines as rows:
a repeated reminder after ``OBMEN_BILLING_REMINDER_AFTER_DAYS`` and a task «Отключить абонента»
(disconnect the subscriber) for the responsible employee after ``OBMEN_BILLING_DISCONNECT_AFTER_DAYS``.
``billing.escalate`` (beat) fires the deadlines that came due, unless the accrual was paid meanwhile.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, Literal

import structlog
from celery import shared_task
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.bitrix24 import Ref, deal_document
from integrations.errors import PermanentError
from integrations.validation import Inn
from models.db import db_now, session_scope
from models.master import Employee, Subscriber, Tariff
from models.payments import (
    Accrual,
    BillingDeadline,
    Payment,
    SubscriberRequest,
    insert_ignoring_duplicates,
)
from tasks.bitrix24 import bitrix24_client
from tasks.outbox import enqueue
from tasks.payments import allocate, lock_balance
from tasks.steps import entry, step

log = structlog.get_logger(__name__)

START_REMINDER = "billing.start_reminder"
FIRE_DEADLINE = "billing.fire_deadline"
START_REQUEST = "billing.start_request_process"
DISCONNECT_TITLE = "Отключить абонента"


class AccrueArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(description="the month, YYYY-MM")

    @field_validator("period")
    @classmethod
    def _month(cls, value: str) -> str:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
            raise ValueError("period is a month, YYYY-MM")
        return value

    @property
    def first_day(self) -> date:
        year, month = self.period.split("-")
        return date(int(year), int(month), 1)


@entry("billing.accrue", args=AccrueArgs)
def accrue(session: Session, args: AccrueArgs) -> dict[str, Any]:
    """Charge every subscriber with a tariff for the month (idempotent per subscriber and month)."""
    period = args.first_day
    now = db_now(session)
    charged = set(session.scalars(select(Accrual.subscriber_inn).where(Accrual.period == period)))
    subscribers = session.execute(
        select(Subscriber, Tariff)
        .join(Tariff, Subscriber.tariff == Tariff.code)
        .where(Tariff.monthly_fee > 0)
        .order_by(Subscriber.inn)
    ).all()
    created = 0
    for subscriber, tariff in subscribers:
        if subscriber.inn not in charged:
            create_accrual(session, subscriber, tariff, period, now)
            created += 1
    log.info("billing.accrued", period=args.period, created=created, already=len(charged))
    return {"period": args.period, "created": created, "already": len(charged)}


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
    return accrual


def _deal_of(session: Session, inn: str, what: str) -> tuple[Subscriber, int]:
    subscriber = session.get(Subscriber, inn)
    if subscriber is None or not subscriber.bitrix24_deal_id:
        raise PermanentError(
            f"subscriber {inn} has no Bitrix24 deal: {what} needs one (set bitrix24_deal_id, re-drive)"
        )
    return subscriber, subscriber.bitrix24_deal_id


@step(START_REMINDER, model=Accrual, statuses={"new"}, stale_after_s=900)
def start_reminder(session: Session, accrual: Accrual) -> None:
    """Move the deal to «Ожидает оплаты» and start the reminder process (SMS with payment control)."""
    settings = get_settings()
    _, deal_id = _deal_of(session, accrual.subscriber_inn, "the payment reminder")
    key = f"accruals:{accrual.id}"
    # One HTTP call; halt stops before the process if the stage update fails, and the stage update
    # is idempotent, so a retry never starts the process twice for one failure.
    result = bitrix24_client().batch(
        {
            "stage": (
                "crm.deal.update",
                {"id": deal_id, "fields": {"STAGE_ID": settings.bitrix24_stage_awaiting_payment}},
            ),
            "reminder": (
                "bizproc.workflow.start",
                {
                    "TEMPLATE_ID": settings.bitrix24_template_payment_reminder,
                    "DOCUMENT_ID": deal_document(deal_id),
                    "PARAMETERS": {
                        "Debt": str(accrual.due),
                        "Period": accrual.period.isoformat()[:7],
                        "ObmenKey": key,
                    },
                },
            ),
        },
        halt=True,
        key=key,
    )
    result.raise_first()
    accrual.workflow_id = str(result.result["reminder"])
    accrual.status = "unpaid"


def escalate(limit: int = 500) -> dict[str, int]:
    """Fire the deadlines that came due; cancel those whose accrual was paid meanwhile."""
    fired = cancelled = 0
    with session_scope() as session:
        now = db_now(session)
        rows = session.execute(
            select(BillingDeadline, Accrual.status)
            .join(Accrual, Accrual.id == BillingDeadline.accrual_id)
            .where(BillingDeadline.status == "waiting", BillingDeadline.due_at <= now)
            .order_by(BillingDeadline.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=BillingDeadline)
        ).all()
        for deadline, accrual_status in rows:
            if accrual_status == "paid":
                deadline.status = "cancelled"
                cancelled += 1
            else:
                deadline.status = "due"
                enqueue(
                    session,
                    FIRE_DEADLINE,
                    {"id": deadline.id},
                    business_key=f"billing_deadlines:{deadline.id}",
                )
                fired += 1
    return {"fired": fired, "cancelled": cancelled}


@shared_task(name="billing.escalate", ignore_result=True)
def escalate_task(**_: Any) -> dict[str, int]:
    return escalate()


@step(FIRE_DEADLINE, model=BillingDeadline, statuses={"due"}, stale_after_s=900)
def fire_deadline(session: Session, deadline: BillingDeadline) -> None:
    """A repeated reminder, or the disconnection task for the responsible employee."""
    accrual = session.get(Accrual, deadline.accrual_id)
    assert accrual is not None
    if accrual.status == "paid":
        deadline.status = "cancelled"
        return
    settings = get_settings()
    subscriber, deal_id = _deal_of(session, accrual.subscriber_inn, f"the {deadline.kind} escalation")
    key = f"billing_deadlines:{deadline.id}"
    period = accrual.period.isoformat()[:7]
    client = bitrix24_client()
    if deadline.kind == "reminder":
        deadline.bitrix24_ref = client.workflow_start(
            settings.bitrix24_template_payment_reminder,
            deal_document(deal_id),
            {"Debt": str(accrual.due), "Period": period, "Reminder": "repeat", "ObmenKey": key},
            key=key,
        )
    else:
        employee = session.get(Employee, subscriber.responsible_id) if subscriber.responsible_id else None
        if employee is None or employee.bitrix24_user_id is None:
            raise PermanentError(
                f"subscriber {subscriber.inn} has no responsible employee with a Bitrix24 user: "
                "set subscribers.responsible and employees.bitrix24_user_id, then re-drive"
            )
        task = client.task_add(
            {
                "TITLE": DISCONNECT_TITLE,
                "RESPONSIBLE_ID": employee.bitrix24_user_id,
                "DESCRIPTION": (
                    f"Абонент {subscriber.name} (ИНН {subscriber.inn}, договор {subscriber.contract or '—'}) "
                    f"не оплатил начисление за {period}: задолженность {accrual.due} руб. [obmen:{key}]"
                ),
                "UF_CRM_TASK": [f"D_{deal_id}"],
            },
            key=key,
        )
        deadline.bitrix24_ref = str(task["id"])
    deadline.status = "done"
    deadline.fired_at = db_now(session)


class RequestArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=64, description="1C's request number (the idempotency key)")
    kind: Literal["connect", "disconnect", "change_tariff"]
    inn: Inn
    name: str | None = Field(None, max_length=500)
    tariff: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2000)


@entry("billing.submit_request", args=RequestArgs)
def submit_request(session: Session, args: RequestArgs) -> int:
    """Record a subscriber's request (once per number) and start its Bitrix24 business process."""
    inserted = session.execute(
        insert_ignoring_duplicates(session, SubscriberRequest)
        .values(
            number=args.number,
            kind=args.kind,
            subscriber_inn=args.inn,
            subscriber_name=args.name,
            tariff=args.tariff,
            comment=args.comment,
            status="new",
            attempts=0,
        )
        .returning(SubscriberRequest.id)
    ).scalar()
    if inserted is None:
        return int(
            session.scalars(select(SubscriberRequest.id).where(SubscriberRequest.number == args.number)).one()
        )
    enqueue(session, START_REQUEST, {"id": inserted}, business_key=f"subscriber_requests:{args.number}")
    return int(inserted)


def _template(kind: str) -> int:
    settings = get_settings()
    return {
        "connect": settings.bitrix24_template_connect,
        "disconnect": settings.bitrix24_template_disconnect,
        "change_tariff": settings.bitrix24_template_change_tariff,
    }[kind]


@step(START_REQUEST, model=SubscriberRequest, statuses={"new"}, stale_after_s=900)
def start_request_process(session: Session, request: SubscriberRequest) -> None:
    """Start the request's business process on the subscriber's deal (a new deal for a connection)."""
    subscriber = session.get(Subscriber, request.subscriber_inn)
    name = request.subscriber_name or (subscriber.name if subscriber else request.subscriber_inn)
    key = f"subscriber_requests:{request.number}"
    parameters = {"Kind": request.kind, "Tariff": request.tariff or "", "Subscriber": name, "ObmenKey": key}
    client = bitrix24_client()
    deal_id = request.deal_id or (subscriber.bitrix24_deal_id if subscriber else None)
    origin = f"obmen:{key}"
    if deal_id is None and request.kind != "connect":
        raise PermanentError(
            f"subscriber {request.subscriber_inn} has no Bitrix24 deal for the {request.kind} process"
        )
    if deal_id is None and request.attempts > 1:
        # A retry: the deal may have been made by the attempt that failed after it.
        found = client.deal_list(filter={"ORIGIN_ID": origin}, select=["ID"]).items
        deal_id = int(found[0]["ID"]) if found else None
    if deal_id is None:
        result = client.batch(
            {
                "deal": ("crm.deal.add", {"fields": {"TITLE": f"Подключение: {name}", "ORIGIN_ID": origin}}),
                "process": (
                    "bizproc.workflow.start",
                    {
                        "TEMPLATE_ID": _template("connect"),
                        "DOCUMENT_ID": deal_document(Ref("deal")),
                        "PARAMETERS": parameters,
                    },
                ),
            },
            halt=True,
            key=key,
        )
        result.raise_first()
        request.deal_id = int(result.result["deal"])
        request.workflow_id = str(result.result["process"])
    else:
        request.deal_id = deal_id
        request.workflow_id = client.workflow_start(
            _template(request.kind), deal_document(deal_id), parameters, key=key
        )
    request.status = "process_started"

"""The payments flow's steps: post a payment, mark the deal paid, remind, escalate, start a request.

Each works on one register row (``tasks.machinery.steps``). A CRM failure never touches the posted
payment: the deal mark is its own row, retried, deferred while the portal throttles, parked after
its attempts with the error for ops to re-drive.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.bitrix24.client import deal_document
from integrations.bitrix24.query import Ref
from integrations.errors import PermanentError
from models.db import db_now
from models.master import Employee, Subscriber
from models.payments import (
    Accrual,
    BillingDeadline,
    DealPaidMark,
    Payment,
    SubscriberBalance,
    SubscriberRequest,
)
from models.works import PlannedWorks, WorksDeadline
from tasks.acts.crm import find_task
from tasks.invoices.matching import note_payment
from tasks.machinery.bitrix24 import bitrix24_client
from tasks.machinery.outbox import enqueue_many
from tasks.machinery.steps import step
from tasks.payments import notices, requests
from tasks.payments import works as works_logic
from tasks.payments.billing import DISCONNECT_TITLE, deal_of, process_template
from tasks.payments.chain import (
    FIRE_DEADLINE,
    FIRE_WORKS_REMINDER,
    MARK_DEAL_PAID,
    NOTIFY_WORKS,
    POST,
    START_REMINDER,
    START_REQUEST,
)
from tasks.payments.register import allocate, lock_balances, open_accruals
from tasks.sms.outgoing import send_sms

log = structlog.get_logger(__name__)


@step(POST, model=Payment, statuses={"received"}, stale_after_s=120, batch=True, rerun=True, set_wise=True)
def post_payments(session: Session, payments: list[Payment]) -> None:
    """Allocate each payment to its subscriber's accruals, oldest first; the rest is an advance.

    The batch's subscribers, balances and open accruals are read (and locked) in one statement
    each; payments of one subscriber are posted in id order, each seeing what the one before left.
    A purpose that names an invoice («Оплата по счету № 123») also goes to the invoice flow.
    """
    for payment in payments:
        note_payment(session, payment)
    inns = {payment.subscriber_inn or payment.inn for payment in payments}
    subscribers = {s.inn: s for s in session.scalars(select(Subscriber).where(Subscriber.inn.in_(inns)))}
    balances = lock_balances(session, subscribers)
    accruals = open_accruals(session, subscribers)
    now = db_now(session)
    cleared: set[str] = set()
    marks: list[tuple[Payment, DealPaidMark]] = []
    for payment in payments:
        inn = payment.subscriber_inn or payment.inn
        subscriber = subscribers.get(inn)
        if subscriber is None:
            # The bank has the money: keep it, visibly, for a person to assign (POST /ops/payments/<id>/assign).
            payment.status = "unallocated"
            log.warning("payment.unallocated", transaction_id=payment.transaction_id, inn=inn)
            continue
        balance = balances[inn]
        debt_before = balance.debt
        left = payment.amount
        for accrual in accruals[inn]:
            if left <= 0:
                break
            take = min(left, accrual.due)
            if take > 0:
                allocate(session, payment.id, accrual, take, now)
                left -= take
        balance.debt -= payment.amount - left
        balance.advance += left
        payment.remainder = left
        payment.subscriber_inn = inn
        payment.status = "posted"
        payment.posted_at = now
        if balance.debt <= 0:
            cleared.add(inn)
            if debt_before > 0 and subscriber.bitrix24_deal_id:
                deal = subscriber.bitrix24_deal_id
                marks.append((payment, DealPaidMark(payment_id=payment.id, subscriber_inn=inn, deal_id=deal)))
    requests.release_paid(session, cleared)
    if marks:
        session.add_all(mark for _, mark in marks)
        session.flush()
        enqueue_many(
            session,
            MARK_DEAL_PAID,
            [{"id": mark.id} for _, mark in marks],
            business_keys=[f"payments:{payment.transaction_id}" for payment, _ in marks],
        )


@step(MARK_DEAL_PAID, model=DealPaidMark, statuses={"pending"}, stale_after_s=3600, batch=True)
def mark_deal_paid(session: Session, mark: DealPaidMark) -> None:
    """Move the deal to the paid stage, unless a newer accrual made the subscriber owe again."""
    balance = session.get(SubscriberBalance, mark.subscriber_inn)
    if balance is not None and balance.debt > 0:
        mark.status = "superseded"
        return
    # Setting a stage is idempotent: a repeat after a crash between answer and commit changes nothing.
    bitrix24_client().deal_update(
        mark.deal_id, {"STAGE_ID": get_settings().bitrix24_stage_paid}, key=f"crm_deal_marks:{mark.id}"
    )
    mark.status = "done"
    mark.marked_at = db_now(session)


@step(START_REMINDER, model=Accrual, statuses={"new"}, stale_after_s=900)
def start_reminder(session: Session, accrual: Accrual) -> None:
    """Move the deal to «Ожидает оплаты» and start the reminder process (SMS with payment control)."""
    settings = get_settings()
    _, deal_id = deal_of(session, accrual.subscriber_inn, "the payment reminder")
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


@step(FIRE_DEADLINE, model=BillingDeadline, statuses={"due"}, stale_after_s=900)
def fire_deadline(session: Session, deadline: BillingDeadline) -> None:
    """A repeated reminder, or the disconnection task for the responsible employee."""
    accrual = session.get(Accrual, deadline.accrual_id)
    assert accrual is not None
    if accrual.status == "paid":
        deadline.status = "cancelled"
        return
    settings = get_settings()
    subscriber, deal_id = deal_of(session, accrual.subscriber_inn, f"the {deadline.kind} escalation")
    key = f"billing_deadlines:{deadline.id}"
    period = accrual.period.isoformat()[:7]
    client = bitrix24_client()
    # The SMS rows are written after the Bitrix24 call, in the same transaction: a write before it
    # would hold SQLite's one write lock (the embedded demo) while the call's exchange record waits.
    if deadline.kind == "reminder":
        deadline.bitrix24_ref = client.workflow_start(
            settings.bitrix24_template_payment_reminder,
            deal_document(deal_id),
            {"Debt": str(accrual.due), "Period": period, "Reminder": "repeat", "ObmenKey": key},
            key=key,
        )
        send_sms(session, notices.payment_reminder(subscriber, accrual, 2))
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
        send_sms(session, notices.disconnection_warning(subscriber, accrual))
    deadline.status = "done"
    deadline.fired_at = db_now(session)


@step(START_REQUEST, model=SubscriberRequest, statuses={"new"}, stale_after_s=900)
def start_request_process(session: Session, request: SubscriberRequest) -> None:
    """Start the request's business process on the subscriber's deal (a new deal for a connection);
    a request of another kind becomes its department's task."""
    subscriber = session.get(Subscriber, request.subscriber_inn)
    name = request.subscriber_name or (subscriber.name if subscriber else request.subscriber_inn)
    key = f"subscriber_requests:{request.number}"
    if request.kind in requests.OTHER_KINDS:
        request.bitrix24_task_id = _department_task(request, subscriber, name, key)
        request.status = "process_started"
        return
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
                        "TEMPLATE_ID": process_template("connect"),
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
            process_template(request.kind), deal_document(deal_id), parameters, key=key
        )
    request.status = "process_started"


@step(NOTIFY_WORKS, model=PlannedWorks, statuses={"new"}, stale_after_s=600)
def notify_works(session: Session, works: PlannedWorks) -> None:
    """An SMS row for each subscriber the planned works concern, in one transaction."""
    works.affected = works_logic.notify(session, works, works_logic.NOTICE)
    works.status = "notified"


@step(FIRE_WORKS_REMINDER, model=WorksDeadline, statuses={"due"}, stale_after_s=900)
def fire_works_reminder(session: Session, deadline: WorksDeadline) -> None:
    """The day before: the reminder SMS to each affected subscriber (unless the works began)."""
    works = session.get(PlannedWorks, deadline.works_id)
    assert works is not None
    if works.starts_at <= db_now(session):
        deadline.status = "cancelled"
        return
    works_logic.notify(session, works, works_logic.REMINDER)
    deadline.status = "done"
    deadline.fired_at = db_now(session)


def _department_task(request: SubscriberRequest, subscriber: Subscriber | None, name: str, key: str) -> str:
    """The department's task for the request; a retry finds the one an earlier attempt made (XML_ID)."""
    client = bitrix24_client()
    if request.attempts > 1:
        found = find_task(client, key)
        if found is not None:
            return str(found.get("id") or found.get("ID"))
    fields: dict[str, object] = {
        "TITLE": f"Обращение абонента № {request.number} ({requests.KIND_WORDS[request.kind]}): {name}"[:250],
        "RESPONSIBLE_ID": requests.department_user(request.kind),
        "DESCRIPTION": (
            f"Абонент {name} (ИНН {request.subscriber_inn}). {request.comment or ''} [obmen:{key}]"
        ),
        "XML_ID": key,
    }
    if subscriber is not None and subscriber.bitrix24_deal_id:
        fields["UF_CRM_TASK"] = [f"D_{subscriber.bitrix24_deal_id}"]
    return str(client.task_add(fields, key=key)["id"])

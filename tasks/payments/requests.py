"""Subscribers' requests: recorded once per number, a disconnection held while the subscriber owes
(seed 001: «при отсутствии задолженности происходит распределение по монтажным бригадам»), let go by
the payment that clears the debt or by a person's recorded override, and closed — a connection with
«вы подключены» by SMS.

Requests of another kind than connect, disconnect and change tariff (a question, a complaint ...)
become a Bitrix24 task of the department that answers them (``OBMEN_BILLING_DEPARTMENTS``).
"""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.db import db_now
from models.master import Subscriber
from models.payments import SubscriberBalance, SubscriberRequest
from tasks.machinery.outbox import enqueue
from tasks.payments import notices
from tasks.payments.chain import START_REQUEST
from tasks.sms.outgoing import send_sms

log = structlog.get_logger(__name__)

PROCESS_KINDS = ("connect", "disconnect", "change_tariff")
OTHER_KINDS = ("question", "complaint", "other")
KIND_WORDS = {"question": "вопрос", "complaint": "жалоба", "other": "обращение"}
AWAITING_PAYMENT = "awaiting_payment"


class RequestConflict(LookupError):
    """The request is not in the status the action needs."""


class UnknownRequest(LookupError):
    """No request has this number."""


def debt_of(session: Session, inn: str) -> Decimal:
    """The subscriber's debt, its balance row locked: a payment posting now waits for this
    transaction, so a request cannot miss the release of a debt paid meanwhile."""
    if session.get(Subscriber, inn) is None:
        return Decimal(0)
    balance = session.get(SubscriberBalance, inn, with_for_update=True)
    return balance.debt if balance is not None else Decimal(0)


def first_status(session: Session, kind: str, inn: str) -> str:
    if kind == "disconnect" and debt_of(session, inn) > 0:
        return AWAITING_PAYMENT
    return "new"


def start(session: Session, request: SubscriberRequest, why: str) -> None:
    request.status = "new"
    enqueue(
        session, START_REQUEST, {"id": request.id}, business_key=f"subscriber_requests:{request.number}:{why}"
    )


def release_paid(session: Session, inns: Collection[str]) -> list[int]:
    """These subscribers' debts are cleared: the disconnections that waited for them start (in the
    posting's transaction)."""
    if not inns:
        return []
    released = session.scalars(
        update(SubscriberRequest)
        .where(
            SubscriberRequest.subscriber_inn.in_(sorted(inns)), SubscriberRequest.status == AWAITING_PAYMENT
        )
        .values(status="new")
        .returning(SubscriberRequest.id)
        .execution_options(synchronize_session=False)
    ).all()
    for request_id in released:
        enqueue(
            session, START_REQUEST, {"id": request_id}, business_key=f"subscriber_requests:{request_id}:paid"
        )
    if released:
        log.info("billing.requests_released", inns=sorted(inns), ids=released)
    return list(released)


def find(session: Session, number: str, *, lock: bool = False) -> SubscriberRequest:
    """The request numbered ``number`` (locked for a change), or :class:`UnknownRequest`."""
    query = select(SubscriberRequest).where(SubscriberRequest.number == number)
    request = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if request is None:
        raise UnknownRequest(f"no request {number}")
    return request


def override(session: Session, number: str, by: str, reason: str) -> SubscriberRequest:
    """A person lets a held disconnection go ahead despite the debt; who and why are kept."""
    request = find(session, number, lock=True)
    if request.status != AWAITING_PAYMENT:
        raise RequestConflict(
            f"request {number} does not wait for a payment (its status is {request.status})"
        )
    request.override_by = by
    request.override_reason = reason
    request.override_at = db_now(session)
    start(session, request, "override")
    log.info("billing.request_override", number=number, by=by)
    return request


def close(session: Session, number: str) -> SubscriberRequest:
    """The request's process ended; a connection tells the subscriber by SMS (once)."""
    request = find(session, number, lock=True)
    if request.status == "closed":
        return request
    if request.status != "process_started":
        raise RequestConflict(
            f"request {number} has no process running to close (its status is {request.status})"
        )
    request.status = "closed"
    request.closed_at = db_now(session)
    if request.kind == "connect":
        subscriber = session.get(Subscriber, request.subscriber_inn)
        phone = request.phone or (subscriber.phone if subscriber else None)
        send_sms(session, notices.connected(request.number, request.subscriber_inn, phone))
    return request


def department_user(kind: str) -> int:
    departments = get_settings().billing_departments
    user = departments.get(kind, departments.get("other"))
    if user is None:
        raise LookupError(f"OBMEN_BILLING_DEPARTMENTS names no department for {kind!r} requests, nor 'other'")
    return user

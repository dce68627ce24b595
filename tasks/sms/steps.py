"""The SMS steps: hand a message to the provider once, then follow its delivery report.

The provider files each message under our row id. A send that comes again after a failed or killed
attempt (the provider may have the message and the answer was lost) first asks the provider for
that id, and sends only when the provider has never seen it: a worker killed mid-send costs a status
request, never a second SMS to the subscriber.
"""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.sms import Delivery, SmsRefused
from models.db import db_now
from models.sms import DELIVERED, FAILED, NEW, SENT, SmsMessage
from tasks.machinery.outbox import enqueue
from tasks.machinery.steps import step
from tasks.sms.chain import CHECK_DELIVERY, SEND
from tasks.sms.clients import sms_client

log = structlog.get_logger(__name__)


@step(SEND, model=SmsMessage, statuses={NEW}, stale_after_s=300)
def send(session: Session, message: SmsMessage) -> None:
    """Send the message under its row id, unless an earlier attempt already did."""
    client = sms_client()
    key = message.business_key
    if message.attempts > 1:
        known = client.status(message.id, message.phone, key=key)
        if known.state != "unknown":
            log.info("sms.already_sent", key=key, provider_status=known.code)
            _handed_over(session, message, known)
            return
    try:
        client.send(message.id, message.phone, message.text, key=key)
    except SmsRefused as exc:
        _finish(session, message, FAILED, str(exc))
        return
    _handed_over(session, message, None)


@step(CHECK_DELIVERY, model=SmsMessage, statuses={SENT}, stale_after_s=900)
def check_delivery(session: Session, message: SmsMessage) -> None:
    """Ask the provider how the message fared; again later while it is on its way."""
    delivery = sms_client().status(message.id, message.phone, key=message.business_key)
    message.status_checks += 1
    _follow(session, message, delivery)


def _handed_over(session: Session, message: SmsMessage, known: Delivery | None) -> None:
    message.status = SENT
    message.sent_at = db_now(session)
    if known is None:
        _check_later(session, message)
    else:
        _follow(session, message, known)


def _follow(session: Session, message: SmsMessage, delivery: Delivery) -> None:
    message.provider_status = delivery.code
    if delivery.state == "delivered":
        _finish(session, message, DELIVERED, None)
    elif delivery.state == "failed":
        _finish(session, message, FAILED, f"SMSC status {delivery.words}")
    elif message.status_checks >= get_settings().sms_status_max_checks:
        _finish(session, message, FAILED, f"no delivery report after {message.status_checks} checks")
    else:
        _check_later(session, message)


def _check_later(session: Session, message: SmsMessage) -> None:
    enqueue(
        session,
        CHECK_DELIVERY,
        {"id": message.id},
        delay_s=get_settings().sms_status_interval_s,
        business_key=f"sms_messages:{message.id}:check:{message.status_checks + 1}",
    )


def _finish(session: Session, message: SmsMessage, status: str, failure: str | None) -> None:
    message.status = status
    message.failure = failure
    message.finished_at = db_now(session)
    log.info("sms.finished", key=message.business_key, status=status, failure=failure)

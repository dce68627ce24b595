"""What a flow calls to have SMS sent: rows keyed by what each message is about, and the outbox
rows of their sends, in the flow's own transaction.

The business key makes a message once-only: asking again (a retried step, a repeated request, a
resumed mailing) finds the row and adds nothing. A subscriber without a phone gets no row; a phone
that is no mobile number gets a ``failed`` row saying so, so that a mailing's report counts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session

from integrations.sms import NotAMobileNumber, mobile_number
from models.db import db_now
from models.payments import insert_ignoring_duplicates
from models.sms import FAILED, NEW, SmsMessage
from tasks.machinery.outbox import enqueue_many
from tasks.sms.chain import SEND

log = structlog.get_logger(__name__)
# Rows per INSERT: 8 parameters a row stays far below the driver's 65 535.
CHUNK = 1000


@dataclass(frozen=True)
class Outgoing:
    key: str
    kind: str
    phone: str | None
    text: str
    subscriber_inn: str | None = None
    campaign: str | None = None


def send_sms(session: Session, message: Outgoing) -> None:
    send_many(session, [message])


def send_many(session: Session, messages: Sequence[Outgoing]) -> int:
    """Record each message not recorded yet and enqueue its send; returns how many were new."""
    rows, refused = [], []
    for m in messages:
        if not m.phone:
            log.info("sms.no_phone", key=m.key, subscriber=m.subscriber_inn)
            continue
        row = {
            "business_key": m.key,
            "kind": m.kind,
            "campaign": m.campaign,
            "subscriber_inn": m.subscriber_inn,
            "text": m.text,
            "attempts": 0,
        }
        try:
            rows.append({**row, "phone": mobile_number(m.phone), "status": NEW})
        except NotAMobileNumber as exc:
            refused.append({**row, "phone": m.phone[:32], "status": FAILED, "failure": str(exc)})
    if refused:
        now = db_now(session)
        session.execute(
            insert_ignoring_duplicates(session, SmsMessage).values(
                [{**r, "finished_at": now} for r in refused]
            )
        )
    if not rows:
        return 0
    ids: list[int] = []
    for start in range(0, len(rows), CHUNK):
        # One multi-row INSERT per chunk: RETURNING gives the ids of the rows that were new.
        statement = insert_ignoring_duplicates(session, SmsMessage).values(rows[start : start + CHUNK])
        ids += session.scalars(statement.returning(SmsMessage.id)).all()
    enqueue_many(session, SEND, [{"id": i} for i in ids], business_keys=[f"sms_messages:{i}" for i in ids])
    return len(ids)

"""Sending a letter: any flow that must tell someone by e-mail writes an ``outgoing_letters`` row with
:func:`queue_letter` in its own transaction, and the ``mail.send`` step sends it.

Exactly once per business key: the row is unique by ``business_key`` (a second ``queue_letter``
with the same key writes nothing and enqueues nothing), and the step sends only a ``pending`` row,
under its lock. The one window SMTP leaves — the server accepted the letter, then the worker died
before the commit — is closed by the exchange log: every SMTP exchange is committed on its own with
the letter's Message-ID, and a retry that finds an accepted exchange for it marks the row sent
instead of sending again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from email.utils import parseaddr

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import PermanentError
from integrations.mail.smtp import Attachment, SmtpSender, build_message
from models.db import insert_ignoring_conflicts
from models.exchange_log import ExchangeLog
from models.mail import OutgoingLetter
from tasks.exchange import record_exchange
from tasks.outbox import enqueue
from tasks.steps import step

SEND = "mail.send"


def queue_letter(
    session: Session,
    *,
    business_key: str,
    to_address: str,
    subject: str,
    text: str,
    html: str | None = None,
    to_name: str | None = None,
    attachments: Sequence[Attachment] = (),
    source: str | None = None,
) -> int | None:
    """Write the letter and its ``mail.send`` outbox row; ``None`` when ``business_key`` was queued before."""
    if "@" not in parseaddr(to_address)[1]:
        raise ValueError(f"{to_address!r} is not an e-mail address")
    domain = parseaddr(get_settings().mail_from)[1].rsplit("@", 1)[1]
    statement = (
        insert_ignoring_conflicts(session, OutgoingLetter)
        .values(
            business_key=business_key,
            source=source,
            to_address=to_address,
            to_name=to_name,
            subject=subject,
            text_body=text,
            html_body=html,
            attachments=[
                {"filename": a.filename, "content_type": a.content_type, "data_b64": a.b64()}
                for a in attachments
            ],
            message_id=f"<{uuid.uuid4().hex}@{domain}>",
        )
        .returning(OutgoingLetter.id)
    )
    letter_id: int | None = session.scalar(statement)
    if letter_id is not None:
        enqueue(session, SEND, {"id": letter_id}, business_key=f"letter:{business_key}")
    return letter_id


def _accepted_before(session: Session, message_id: str) -> ExchangeLog | None:
    return session.scalars(
        select(ExchangeLog)
        .where(ExchangeLog.correlation_id == message_id)
        .where(ExchangeLog.system == "smtp")
        .where(ExchangeLog.response_status == 250)
        .limit(1)
    ).first()


@step(SEND, model=OutgoingLetter, statuses={"pending"}, stale_after_s=600)
def send_letter(session: Session, letter: OutgoingLetter) -> None:
    """Send one ``outgoing_letters`` row by SMTP (``OBMEN_SMTP_URL``) and mark it sent."""
    settings = get_settings()
    # Only an earlier attempt (one that failed or died) can have had the letter accepted.
    earlier = (
        _accepted_before(session, letter.message_id) if letter.attempts > 1 or letter.last_error else None
    )
    if earlier is not None:
        letter.status, letter.sent_at = "sent", earlier.created_at
        letter.smtp_response = (
            f"{earlier.response_status} {earlier.response_body} (exchange_log {earlier.id})"
        )
        return
    if settings.smtp_url is None or not settings.smtp_url.get_secret_value():
        raise PermanentError("OBMEN_SMTP_URL is not set: set it and re-drive outgoing_letters")
    message = build_message(
        sender=settings.mail_from,
        to_address=letter.to_address,
        to_name=letter.to_name,
        subject=letter.subject,
        text=letter.text_body,
        html=letter.html_body,
        message_id=letter.message_id,
        attachments=[Attachment.from_json(item) for item in letter.attachments],
    )
    sender = SmtpSender(
        settings.smtp_url.get_secret_value(),
        timeout=settings.mail_timeout_s,
        recorder=record_exchange,
        ca_file=settings.mail_ca_file,
    )
    reply = sender.send(message, business_key=letter.business_key)
    letter.status, letter.smtp_response = "sent", reply
    letter.sent_at = func.now()

"""Sending a letter: any flow that must tell someone by e-mail writes an ``outgoing_letters`` row with
:func:`queue_letter` in its own transaction, and the ``mail.send`` step sends it.

Exactly once per business key: the row is unique by ``business_key`` (a second ``queue_letter``
with the same key writes nothing and enqueues nothing), and the step sends only a ``pending`` row,
under its lock (``steps.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from email.utils import parseaddr

from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.mail.smtp import Attachment
from models.db import insert_new
from models.mail import OutgoingLetter
from tasks.machinery.outbox import enqueue
from tasks.mail.chain import SEND


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
    letter = {
        "business_key": business_key,
        "source": source,
        "to_address": to_address,
        "to_name": to_name,
        "subject": subject,
        "text_body": text,
        "html_body": html,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "data_b64": a.b64()} for a in attachments
        ],
        "message_id": f"<{uuid.uuid4().hex}@{domain}>",
    }
    letter_id = insert_new(session, OutgoingLetter, letter)
    if letter_id is not None:
        enqueue(session, SEND, {"id": letter_id}, business_key=f"letter:{business_key}")
    return letter_id

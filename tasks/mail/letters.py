"""Sending a letter: any flow that must tell someone by e-mail writes an ``outgoing_letters`` row with
:func:`queue_letter` (or a batch's letters with :func:`queue_letters`) in its own transaction, and
the ``mail.send`` step sends it.

Exactly once per business key: the row is unique by ``business_key`` (a second letter with the same
key writes nothing and enqueues nothing), and the step sends only a ``pending`` row, under its lock
(``steps.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.mail.smtp import Attachment
from models.db import db_now, insert_ignoring_conflicts
from models.mail import OutgoingLetter
from tasks.machinery.outbox import enqueue_many
from tasks.mail.chain import SEND


@dataclass(frozen=True)
class NewLetter:
    """A letter to queue: whom to tell what, once per ``business_key``."""

    business_key: str
    to_address: str
    subject: str
    text: str
    html: str | None = None
    to_name: str | None = None
    attachments: Sequence[Attachment] = ()
    source: str | None = None


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
    letter = NewLetter(business_key, to_address, subject, text, html, to_name, attachments, source)
    return queue_letters(session, [letter])[0]


def queue_letters(session: Session, letters: Sequence[NewLetter]) -> list[int | None]:
    """Write the letters and their ``mail.send`` outbox rows, one INSERT of each for all of them: each
    letter's id, or ``None`` when its business key was queued before (or earlier in ``letters``)."""
    for letter in letters:
        if "@" not in parseaddr(letter.to_address)[1]:
            raise ValueError(f"{letter.to_address!r} is not an e-mail address")
    if not letters:
        return []
    domain = parseaddr(get_settings().mail_from)[1].rsplit("@", 1)[1]
    # Its step is due now: written with the row, so the stamp costs no UPDATE at the commit.
    due = db_now(session)
    rows: dict[str, dict[str, Any]] = {}
    for letter in letters:
        rows.setdefault(letter.business_key, _row(letter, domain, due))
    statement = insert_ignoring_conflicts(session, OutgoingLetter).returning(
        OutgoingLetter.business_key, OutgoingLetter.id
    )
    written: dict[str, int] = dict(session.connection().execute(statement, list(rows.values())).all())
    enqueue_many(
        session,
        SEND,
        [{"id": letter_id} for letter_id in written.values()],
        business_keys=[f"letter:{key}" for key in written],
        inserted_due=True,
    )
    # The id goes to the first letter of each key written here; a repeat of it was queued before.
    return [written.pop(letter.business_key, None) for letter in letters]


def _row(letter: NewLetter, domain: str, due: Any) -> dict[str, Any]:
    return {
        "business_key": letter.business_key,
        "source": letter.source,
        "to_address": letter.to_address,
        "to_name": letter.to_name,
        "subject": letter.subject,
        "text_body": letter.text,
        "html_body": letter.html,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "data_b64": a.b64()}
            for a in letter.attachments
        ],
        "message_id": f"<{uuid.uuid4().hex}@{domain}>",
        "next_step_at": due,
    }

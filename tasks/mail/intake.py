"""Mail intake: store every letter of the SEP mailbox once (``mail.process`` then reads it).

``mail.fetch`` (beat, every ``OBMEN_MAIL_POLL_INTERVAL_S``) stores new messages in ``mail_messages``
in bounded batches, one transaction each, and sets \\Seen only after the batch is committed. The
cursor is the register itself: the highest UID stored under the mailbox's current UIDVALIDITY.
A new UIDVALIDITY starts from UID 1, and a message whose Message-ID and content hash are already
stored becomes a row marked ``ignored`` (the same letter), never processed again. A UID is stored
once: the key (mailbox, UIDVALIDITY, UID) is unique, and a second fetcher's insert is skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from integrations.mail.access import open_mailbox
from integrations.mail.mailbox import Fetched
from integrations.mail.parse import clean_text, content_hash, read_headers
from models.db import db_now, insert_ignoring_conflicts, session_scope
from models.mail import MailMessage
from tasks.machinery.exchange import record_exchange
from tasks.machinery.outbox import enqueue, enqueue_many
from tasks.mail.chain import FETCH, PROCESS

log = structlog.get_logger(__name__)


@dataclass
class FetchReport:
    mailbox: str | None = None
    uidvalidity: int | None = None
    found: int = 0
    stored: int = 0
    duplicates: int = 0
    oversize: int = 0
    more: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _cursor(session: Session, mailbox: str, uidvalidity: int) -> int:
    highest = session.scalar(
        select(func.max(MailMessage.uid))
        .where(MailMessage.mailbox == mailbox)
        .where(MailMessage.uidvalidity == uidvalidity)
    )
    return int(highest or 0)


def _identity(item: Fetched) -> str:
    if item.complete:
        return content_hash(item.raw)
    # Only the header block was read: hash it, so two different over-size letters differ.
    return hashlib.sha256(item.raw).hexdigest()


def store_batch(
    session: Session, mailbox: str, uidvalidity: int, items: Sequence[Fetched], report: FetchReport
) -> None:
    """Insert one row per message (skipping UIDs already stored) and enqueue ``mail.process`` for new ones.

    One multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` for the new letters, one for repeats,
    and one outbox insert for the batch: a letter costs no round trip of its own. A letter repeating
    one earlier in the same batch is written after it, once its id is known."""
    settings = get_settings()
    hashes = {item.uid: _identity(item) for item in items}
    known: dict[tuple[str, str | None], int] = {
        (h, mid): row_id
        for row_id, h, mid in session.execute(
            select(MailMessage.id, MailMessage.content_hash, MailMessage.message_id)
            .where(MailMessage.content_hash.in_(set(hashes.values())))
            .where(MailMessage.duplicate_of_id.is_(None))
            .order_by(MailMessage.id)
        )
    }
    # First the letters not seen before (the first of each key in the batch), then the repeats.
    firsts: dict[tuple[str, str | None], dict[str, Any]] = {}
    repeats: list[tuple[tuple[str, str | None], dict[str, Any]]] = []
    for item in items:
        headers = read_headers(item.raw)
        key = (hashes[item.uid], headers.message_id)
        values = _values(item, settings.mail_max_message_bytes) | {
            "mailbox": mailbox,
            "uidvalidity": uidvalidity,
            "content_hash": key[0],
            "message_id": (headers.message_id or "")[:998] or None,
            "sender": (headers.sender or "")[:320] or None,
            "subject": headers.subject,
        }
        if key in known or key in firsts:
            repeats.append((key, values))
        else:
            firsts[key] = values
    stored = _insert(session, list(firsts.values()))
    known |= {key: stored[values["uid"]] for key, values in firsts.items() if values["uid"] in stored}
    # A repeat whose first another fetcher stored meanwhile is written as a letter of its own:
    # every UID gets its row, or the cursor would pass it by.
    alone = [values for key, values in repeats if key not in known]
    duplicates = [
        values
        | {
            "status": "ignored",
            "raw": None,
            "headers": None,
            "duplicate_of_id": known[key],
            "reason": f"the same letter as mail_messages {known[key]} (same Message-ID and content): "
            "delivered again, or renumbered by a new UIDVALIDITY",
        }
        for key, values in repeats
        if key in known
    ]
    stored_duplicates = _insert(session, duplicates)
    stored |= _insert(session, alone)
    report.stored += len(stored) + len(stored_duplicates)
    report.duplicates += len(stored_duplicates)
    written = [values for values in [*firsts.values(), *alone] if values["uid"] in stored]
    new = [stored[values["uid"]] for values in written if values["status"] == "new"]
    report.oversize += len(written) - len(new)
    enqueue_many(
        session,
        PROCESS,
        [{"id": row_id} for row_id in new],
        business_keys=[f"mail:{i}" for i in new],
        inserted_due=True,
    )


def _values(item: Fetched, max_bytes: int) -> dict[str, Any]:
    """A letter's row as stored: the whole message, or its header block with the reason it is no more."""
    values: dict[str, Any] = {
        "uid": item.uid,
        "size": item.size,
        "received_at": item.internal_date,
        "duplicate_of_id": None,
    }
    if item.complete:
        return values | {"status": "new", "raw": item.raw, "headers": None, "reason": None}
    return values | {
        "status": "error",
        "raw": None,
        "headers": clean_text(item.raw.decode("utf-8", errors="replace")),
        "reason": f"over the size cap: {item.size} bytes > OBMEN_MAIL_MAX_MESSAGE_BYTES {max_bytes}; "
        "only its header block was read",
    }


def _due(new: bool, now: datetime) -> dict[str, datetime | None]:
    return {"processed_at": None, "next_step_at": now} if new else {"processed_at": now, "next_step_at": None}


def _insert(session: Session, rows: list[dict[str, Any]]) -> dict[int, int]:
    """Insert ``rows`` (skipping UIDs another fetcher stored first): the id of each stored, by UID."""
    if not rows:
        return {}
    now = db_now(session)
    # A new letter's processing step is due now: written here, so its stamp costs no UPDATE at the
    # commit (``enqueue_many``'s ``inserted_due``).
    finished = [row | _due(row["status"] == "new", now) for row in rows]
    # One statement with the rows as parameters (SQLAlchemy sends them as one multi-row INSERT): built
    # and compiled once, where a statement holding the values would be built and compiled a batch.
    statement = insert_ignoring_conflicts(session, MailMessage).returning(MailMessage.uid, MailMessage.id)
    return {row.uid: row.id for row in session.connection().execute(statement, finished)}


def fetch_mail(
    settings: Settings | None = None, on_batch: Callable[[int, int], None] | None = None
) -> FetchReport:
    """Store what is new in the mailbox, in batches; at most ``OBMEN_MAIL_FETCH_MAX_PER_RUN`` per run.

    ``on_batch(stored, total)`` follows the batches (the command's progress)."""
    settings = settings or get_settings()
    report = FetchReport()
    if settings.imap_url is None or not settings.imap_url.get_secret_value():
        report.error = "OBMEN_IMAP_URL is not set"
        return report
    with open_mailbox(
        settings.imap_url.get_secret_value(),
        timeout=settings.mail_timeout_s,
        recorder=record_exchange,
        ca_file=settings.mail_ca_file,
    ) as box:
        report.mailbox, report.uidvalidity = box.identity, box.uidvalidity
        with session_scope() as session:
            cursor = _cursor(session, box.identity, box.uidvalidity)
        uids = box.uids_after(cursor)
        report.found = len(uids)
        todo = uids[: settings.mail_fetch_max_per_run]
        for start in range(0, len(todo), settings.mail_fetch_batch):
            batch = todo[start : start + settings.mail_fetch_batch]
            items = box.fetch(batch, settings.mail_max_message_bytes)
            with session_scope() as session:
                store_batch(session, box.identity, box.uidvalidity, items, report)
            # Only now that the rows are committed: a crash before this leaves the flags as they were.
            box.mark_seen([item.uid for item in items])
            if on_batch is not None:
                on_batch(start + len(batch), len(todo))
        if len(uids) > len(todo):
            report.more = True
            with session_scope() as session:
                enqueue(session, FETCH, {}, business_key=f"mail-fetch:{box.identity}")
    return report

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
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from integrations.mail.access import open_mailbox
from integrations.mail.mailbox import Fetched
from integrations.mail.parse import clean_text, content_hash, read_headers
from models.db import insert_ignoring_conflicts, session_scope
from models.mail import MailMessage
from tasks.machinery.exchange import record_exchange
from tasks.machinery.outbox import enqueue
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
    """Insert one row per message (skipping UIDs already stored) and enqueue ``mail.process`` for new ones."""
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
    for item in items:
        headers = read_headers(item.raw)
        key = (hashes[item.uid], headers.message_id)
        values: dict[str, Any] = {
            "mailbox": mailbox,
            "uidvalidity": uidvalidity,
            "uid": item.uid,
            "size": item.size,
            "content_hash": key[0],
            "message_id": (headers.message_id or "")[:998] or None,
            "sender": (headers.sender or "")[:320] or None,
            "subject": headers.subject,
            "received_at": item.internal_date,
        }
        first = known.get(key)
        if first is not None:
            values |= {
                "status": "ignored",
                "reason": f"the same letter as mail_messages {first} (same Message-ID and content): "
                "delivered again, or renumbered by a new UIDVALIDITY",
                "duplicate_of_id": first,
                "processed_at": func.now(),
            }
        elif not item.complete:
            values |= {
                "status": "error",
                "reason": f"over the size cap: {item.size} bytes > OBMEN_MAIL_MAX_MESSAGE_BYTES "
                f"{settings.mail_max_message_bytes}; only its header block was read",
                "headers": clean_text(item.raw.decode("utf-8", errors="replace")),
                "processed_at": func.now(),
            }
        else:
            values |= {"status": "new", "raw": item.raw}
        row_id = session.scalar(
            insert_ignoring_conflicts(session, MailMessage).values(**values).returning(MailMessage.id)
        )
        if row_id is None:  # another fetcher stored this UID first
            continue
        report.stored += 1
        if first is not None:
            report.duplicates += 1
            continue
        known[key] = row_id
        if values["status"] == "new":
            enqueue(session, PROCESS, {"id": row_id}, business_key=f"mail:{row_id}")
        else:
            report.oversize += 1


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

"""Following 1C's change list: payments applied at once, changed documents fetched by a step.

``poll`` (the beat job ``invoices.poll_changes``) reads the change list page by page from the cursor
kept in ``invoice_change_cursors``. 1C is asked outside any transaction; each page is then applied in
one transaction that also moves the cursor, after checking the cursor is still the one the page was
read from (two polls at once: the second finds it moved and stops). So a poll lost anywhere — the
worker killed, the message dropped, 1C refusing for want of a licence — is repeated from the last
applied cursor, and applying a page twice changes nothing.

An entry whose payment changed is applied in place; an entry for an invoice obmen does not know, or
whose 1C data version differs from the register's, becomes an ``invoice_updates`` row keyed by the
id and data version, and ``invoices.apply_update`` fetches and applies the document. An entry that
breaks the contract or contradicts the register is kept as a ``rejected`` update naming the field:
it never blocks the feed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import structlog
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.onec.invoices import ChangesPage, InvoiceChange
from models.db import insert_ignoring_conflicts, session_scope
from models.invoices import UPDATE_PENDING, UPDATE_REJECTED, InvoiceUpdate
from tasks.invoices.chain import APPLY_UPDATE
from tasks.invoices.clients import onec_client
from tasks.invoices.register import (
    ChangeOutcome,
    RegisterConflict,
    advance_cursor,
    apply_change,
    claim_cursor,
    read_cursor,
)
from tasks.machinery.outbox import enqueue

log = structlog.get_logger(__name__)

MAX_PAGES_PER_RUN = 50


@dataclass
class PollReport:
    pages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    cursor: str | None = None
    raced: bool = False


def poll(max_pages: int = MAX_PAGES_PER_RUN) -> PollReport:
    """Read and apply the change list from the stored cursor, until it has no more (or ``max_pages``)."""
    client = onec_client()
    limit = get_settings().onec_changes_page_size
    report = PollReport()
    for _ in range(max_pages):
        with session_scope() as session:
            cursor = read_cursor(session)
        page = client.changes(cursor, limit=limit)
        with session_scope() as session:
            if not claim_cursor(session, cursor):
                report.raced = True  # another poll applied this page meanwhile; it carries on
                break
            report.outcomes.update(apply_page(session, page, cursor))
            advance_cursor(session, page.cursor)
        report.pages += 1
        report.cursor = page.cursor
        if not page.has_more or page.cursor == cursor:
            break
    return report


def apply_page(session: Session, page: ChangesPage, cursor: str | None) -> Counter[str]:
    """Apply one page in the caller's transaction; what became of its entries, counted."""
    counted: Counter[str] = Counter()
    to_fetch: dict[str, InvoiceChange] = {}
    for position, change in enumerate(page.changes):
        outcome = _apply_entry(session, change, _position(cursor, position))
        if outcome == ChangeOutcome.FETCH:
            key = f"{change.onec_id}:{change.data_version or '@' + _position(cursor, position)}"
            to_fetch.setdefault(key, change)
        counted[outcome] += 1
    for rejected in page.rejected:
        _record_update(
            session,
            key=f"rejected@{_position(cursor, rejected.position)}",
            onec_id=rejected.onec_id or "",
            data_version=None,
            refusal=(rejected.error.field, str(rejected.error)),
        )
        counted["rejected"] += 1
    # Enqueued after every savepoint of the page: the outbox publishes what a commit made due, and a
    # savepoint's release counts as a commit to SQLAlchemy's session events.
    for key, change in to_fetch.items():
        _record_update(session, key=key, onec_id=change.onec_id, data_version=change.data_version)
    return counted


def _position(cursor: str | None, position: int) -> str:
    """Where an entry stands in the change list: its key when 1C gives no data version."""
    return f"{cursor or ''}:{position}"


def _apply_entry(session: Session, change: InvoiceChange, position: str) -> str:
    try:
        with session.begin_nested():
            return apply_change(session, change).value
    except RegisterConflict as exc:
        _record_update(
            session,
            key=f"{change.onec_id}:{change.data_version or '@' + position}:{change.number}",
            onec_id=change.onec_id,
            data_version=change.data_version,
            refusal=(exc.field, str(exc)),
        )
        return "rejected"


def _record_update(
    session: Session,
    *,
    key: str,
    onec_id: str,
    data_version: str | None,
    refusal: tuple[str, str] | None = None,
) -> None:
    """An ``invoice_updates`` row once per key: pending with its step, or rejected naming the field."""
    values = {
        "key": key[:300],
        "onec_id": onec_id[:64],
        "data_version": data_version,
        "status": UPDATE_PENDING,
    }
    if refusal is not None:
        values |= {"status": UPDATE_REJECTED, "error_field": refusal[0][:40], "last_error": refusal[1][:4000]}
    made = session.scalar(
        insert_ignoring_conflicts(session, InvoiceUpdate).values(**values).returning(InvoiceUpdate.id)
    )
    if made is not None and refusal is None:
        enqueue(session, APPLY_UPDATE, {"id": made}, business_key=f"invoice_updates:{key[:200]}")
    elif refusal is not None:
        log.warning("invoice.change_rejected", onec_id=onec_id, field=refusal[0], error=refusal[1])

"""Deals in: Bitrix24 outbound events, the sync step that reads the deal, and the reconciliation.

Bitrix24 sends ``ONCRMDEALUPDATE`` with the deal id only, through a queue, and never retries. So an
event only marks the deal's row ``pending`` and enqueues ``acts.deal.sync``, which reads the deal
(``crm.deal.get``); and ``acts.deals.reconcile`` (beat) lists the deals changed since its last run
(``crm.deal.list`` by ``DATE_MODIFY``) and marks those whose change we have not read, so a lost
event costs a delay, never the change. Reactions are decided from the deal's state, not from the
event: a deal standing in «Одобрено комиссией» without a form request gets one, however we learned.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.bitrix24 import Bitrix24Client
from models.acts import CREATED, Act, ActDeal, ActSyncCursor
from models.db import db_now, dialect_insert, session_scope
from tasks.acts.chain import DEAL_SYNC
from tasks.acts.forms import request_form
from tasks.acts.register import claim_cursor
from tasks.machinery.bitrix24 import bitrix24_client
from tasks.machinery.outbox import enqueue

log = structlog.get_logger(__name__)

DEAL_EVENTS = frozenset({"ONCRMDEALADD", "ONCRMDEALUPDATE"})
CURSOR = "bitrix24_deals"


def batched(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def deal_changed(session: Session, deal_id: int) -> int:
    """Mark the deal to be read again (an event, or the reconciliation saw a change); returns its row id."""
    row_id: int = session.execute(
        dialect_insert(session, ActDeal)
        .values(deal_id=deal_id, status="pending", attempts=0)
        .on_conflict_do_update(
            index_elements=["deal_id"],
            set_={"status": "pending", "attempts": 0, "parked_at": None, "updated_at": db_now(session)},
        )
        .returning(ActDeal.id)
    ).scalar_one()
    enqueue(session, DEAL_SYNC, {"id": row_id}, business_key=f"deal:{deal_id}")
    return row_id


def parse_bitrix_time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number or None


# Fields whose change matters here; compared too, since DATE_MODIFY has whole seconds only.
WATCHED = ("STAGE_ID", "ASSIGNED_BY_ID", "COMPANY_ID", "TITLE")


def _unread(row: ActDeal | None, deal: dict[str, Any], modified: datetime) -> bool:
    """Did the deal change after we last read it?"""
    if row is None or row.date_modify is None or modified > row.date_modify:
        return True
    return (
        str(deal.get("STAGE_ID") or "") != (row.stage_id or "")
        or _int(deal.get("ASSIGNED_BY_ID")) != row.assigned_by_id
        or _int(deal.get("COMPANY_ID")) != row.company_id
        or (str(deal.get("TITLE") or "")[:500] or None) != row.title
    )


def apply_deal(session: Session, row: ActDeal, fields: dict[str, Any]) -> None:
    """Take the deal as Bitrix24 shows it, and react to where it stands."""
    row.title = str(fields.get("TITLE") or "")[:500] or None
    row.stage_id = str(fields.get("STAGE_ID") or "") or None
    row.company_id = _int(fields.get("COMPANY_ID"))
    row.assigned_by_id = _int(fields.get("ASSIGNED_BY_ID"))
    row.date_modify = parse_bitrix_time(fields.get("DATE_MODIFY")) or row.date_modify
    row.synced_at = db_now(session)
    row.status = "synced"
    if row.stage_id == get_settings().acts_stage_approved:
        request_form(session, row.deal_id, requested_by="stage", business_key=f"approved:{row.deal_id}")


def marked_products(fields: dict[str, Any]) -> set[str]:
    """The product ids (``PRODUCT_ID``) the deal's user field marks "act needed" (a list, or one value)."""
    value = fields.get(get_settings().acts_deal_products_field)
    values = value if isinstance(value, list) else [value]
    return {str(v).strip() for v in values if v is not None and str(v).strip() not in ("", "0")}


def take_products(
    session: Session, row: ActDeal, fields: dict[str, Any], b24: Bitrix24Client, key: str
) -> None:
    """The products an act is needed for: the deal's product rows (``crm.deal.productrows.get``) whose
    product the deal marks; drafts of the deal drafted without products take them."""
    marked = marked_products(fields)
    if not marked:
        row.act_products = None
        return
    names = [
        str(r.get("PRODUCT_NAME") or "").strip()[:300]
        for r in b24.deal_product_rows(row.deal_id, key=key)
        if str(r.get("PRODUCT_ID")) in marked and str(r.get("PRODUCT_NAME") or "").strip()
    ]
    row.act_products = names
    for act in session.scalars(select(Act).where(Act.deal_id == row.deal_id, Act.status == CREATED)):
        if not act.products:
            act.products = names


def claim_window(session: Session, name: str) -> tuple[ActSyncCursor, datetime] | None:
    """The reconciliation cursor ``name``, locked for this run, and the time to list changes from:
    Bitrix24's own clock as last seen (a day back the first time), minus an overlap for changes
    committed late. None while another run holds the cursor."""
    cursor = claim_cursor(session, name)
    if cursor is None:
        return None
    overlap = timedelta(seconds=get_settings().acts_reconcile_overlap_s)
    return cursor, (cursor.position_at or db_now(session) - timedelta(days=1)) - overlap


def reconcile_deals() -> dict[str, int]:
    """Mark every deal changed in Bitrix24 since the last run whose change we have not read."""
    with session_scope() as session:
        found = claim_window(session, CURSOR)
        if found is None:
            return {"skipped": 1}
        cursor, since = found
        # Read every page first, write after: nothing is held while Bitrix24 answers.
        listed = list(
            bitrix24_client().iter_deals(
                filter={">=DATE_MODIFY": since.isoformat(timespec="seconds")},
                select=["ID", "DATE_MODIFY", *WATCHED],
                order={"DATE_MODIFY": "ASC", "ID": "ASC"},
            )
        )
        marked = 0
        latest = cursor.position_at
        for page in batched(listed, 500):
            by_id = {deal_id: deal for deal in page if (deal_id := _int(deal.get("ID")))}
            known = {
                r.deal_id: r for r in session.scalars(select(ActDeal).where(ActDeal.deal_id.in_(list(by_id))))
            }
            for deal_id, deal in by_id.items():
                modified = parse_bitrix_time(deal.get("DATE_MODIFY"))
                if modified is None:
                    continue
                latest = max(latest, modified) if latest else modified
                if _unread(known.get(deal_id), deal, modified):
                    deal_changed(session, deal_id)
                    marked += 1
        cursor.position_at = latest
        cursor.position = latest.isoformat() if latest else None
    if marked:
        log.info("acts.reconcile.marked", seen=len(listed), marked=marked)
    return {"seen": len(listed), "marked": marked}

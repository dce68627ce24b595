"""Reading the acts register: lists with filters, one act in full, acts of a company, deals without acts.

The gateway (``GET /acts`` …) and ``obmen acts …`` print the same dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from models.acts import (
    ACT_TYPES,
    DEADLINE_SIGNATURE,
    EXCHANGE_METHODS,
    SENT,
    Act,
    ActDeadline,
    ActDeal,
    ActFile,
    ActFormRequest,
    ActHistory,
    ActItem,
)
from models.db import db_now
from tasks.acts.register import ActNotFound

MAX_LIMIT = 1000


@dataclass(frozen=True)
class ActFilter:
    status: str | None = None
    deal_id: int | None = None
    company_id: int | None = None
    act_type: str | None = None
    # Sent and still unsigned past the 5 working days.
    overdue: bool = False
    limit: int = 100
    offset: int = 0


def _due() -> Any:
    return (
        select(ActDeadline.act_id, ActDeadline.due_at, ActDeadline.status.label("deadline_status"))
        .where(ActDeadline.kind == DEADLINE_SIGNATURE)
        .subquery()
    )


def act_row(
    act: Act, due_at: datetime | None, deadline_status: str | None, now: datetime, item_id: int | None = None
) -> dict[str, Any]:
    return {
        "id": act.id,
        "number": act.number,
        "act_date": act.act_date.isoformat(),
        "deal_id": act.deal_id,
        "company_id": act.company_id,
        "counterparty_inn": act.counterparty_inn,
        "counterparty_kpp": act.counterparty_kpp or None,
        "counterparty_name": act.counterparty_name,
        "act_type": act.act_type,
        "act_type_name": ACT_TYPES.get(act.act_type, act.act_type),
        "exchange_method": act.exchange_method,
        "exchange_method_name": EXCHANGE_METHODS.get(act.exchange_method or "", None),
        "edo_operator": act.edo_operator,
        "edo_id": act.edo_id,
        "products": list(act.products or []),
        "amount": str(act.amount) if act.amount is not None else None,
        "status": act.status,
        "sbis_document_id": act.sbis_document_id,
        # The act's item in the Bitrix24 smart process (None: not an item, or not yet added).
        "bitrix24_item_id": item_id,
        "sent_at": act.sent_at.isoformat() if act.sent_at else None,
        "closed_at": act.closed_at.isoformat() if act.closed_at else None,
        "signature_due_at": due_at.isoformat() if due_at else None,
        "overdue": bool(act.status == SENT and due_at is not None and due_at <= now),
        "deadline": deadline_status,
        "parked": act.parked_at is not None,
        "last_error": act.last_error,
    }


def _filtered(query: Select[Any], due: Any, flt: ActFilter, now: datetime) -> Select[Any]:
    if flt.status:
        query = query.where(Act.status == flt.status)
    if flt.deal_id:
        query = query.where(Act.deal_id == flt.deal_id)
    if flt.company_id:
        query = query.where(Act.company_id == flt.company_id)
    if flt.act_type:
        query = query.where(Act.act_type == flt.act_type)
    if flt.overdue:
        query = query.where(Act.status == SENT, due.c.due_at <= now)
    return query


def acts_page(session: Session, flt: ActFilter, before: int | None = None) -> list[dict[str, Any]]:
    """One page of acts, newest first, filtered; ``before``: the keyset cursor (acts with a lower id)."""
    now = db_now(session)
    due = _due()
    base = (
        select(Act, due.c.due_at, due.c.deadline_status, ActItem.item_id)
        .outerjoin(due, due.c.act_id == Act.id)
        .outerjoin(ActItem, ActItem.act_id == Act.id)
    )
    query = _filtered(base, due, flt, now)
    if before is not None:
        query = query.where(Act.id < before)
    limit = max(1, min(flt.limit, MAX_LIMIT))
    rows = session.execute(query.order_by(Act.id.desc()).limit(limit).offset(max(0, flt.offset))).all()
    return [act_row(a, d, s, now, i) for a, d, s, i in rows]


def list_acts(session: Session, flt: ActFilter) -> dict[str, Any]:
    """Acts with their statuses, newest first, filtered; with the total matching."""
    now = db_now(session)
    due = _due()
    total = session.scalar(
        _filtered(select(func.count()).select_from(Act).outerjoin(due, due.c.act_id == Act.id), due, flt, now)
    )
    return {"total": total or 0, "acts": acts_page(session, flt)}


def act_detail(session: Session, act_id: int) -> dict[str, Any]:
    now = db_now(session)
    due = _due()
    found = session.execute(
        select(Act, due.c.due_at, due.c.deadline_status, ActItem.item_id)
        .outerjoin(due, due.c.act_id == Act.id)
        .outerjoin(ActItem, ActItem.act_id == Act.id)
        .where(Act.id == act_id)
    ).one_or_none()
    if found is None:
        raise ActNotFound(f"no act with id {act_id}")
    act, due_at, deadline_status, item_id = found
    files = session.execute(
        select(ActFile.id, ActFile.kind, ActFile.name, ActFile.content_type, ActFile.size, ActFile.sha256)
        .where(ActFile.act_id == act_id)
        .order_by(ActFile.id)
    ).all()
    history = session.scalars(select(ActHistory).where(ActHistory.act_id == act_id).order_by(ActHistory.id))
    return {
        **act_row(act, due_at, deadline_status, now, item_id),
        "files": [
            {
                "id": f.id,
                "kind": f.kind,
                "name": f.name,
                "content_type": f.content_type,
                "size": f.size,
                "sha256": f.sha256,
            }
            for f in files
        ],
        "history": [
            {
                "from": h.from_status,
                "to": h.to_status,
                "actor": h.actor,
                "note": h.note,
                "at": h.at.isoformat(),
            }
            for h in history
        ],
    }


def act_file(session: Session, act_id: int, file_id: int) -> ActFile:
    found = session.scalars(
        select(ActFile).where(ActFile.id == file_id, ActFile.act_id == act_id)
    ).one_or_none()
    if found is None:
        raise ActNotFound(f"act {act_id} has no file {file_id}")
    return found


def deals_without_acts(
    session: Session, stage: str | None = None, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    """Deals obmen knows from Bitrix24 that have no act yet (optionally: standing in ``stage``)."""
    query = select(ActDeal).outerjoin(Act, Act.deal_id == ActDeal.deal_id).where(Act.id.is_(None))
    if stage:
        query = query.where(ActDeal.stage_id == stage)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(
        query.order_by(ActDeal.deal_id).limit(max(1, min(limit, MAX_LIMIT))).offset(offset)
    ).all()
    # The latest form request of each deal: has the counterparty been asked, have they answered.
    form_status = dict(
        session.execute(
            select(ActFormRequest.deal_id, ActFormRequest.status)
            .where(ActFormRequest.deal_id.in_([r.deal_id for r in rows]))
            .order_by(ActFormRequest.id)
        ).all()
    )
    return {
        "total": total or 0,
        "deals": [
            {
                "deal_id": r.deal_id,
                "title": r.title,
                "stage_id": r.stage_id,
                "company_id": r.company_id,
                "assigned_by_id": r.assigned_by_id,
                "exchange_method": r.exchange_method,
                "edo_operator": r.edo_operator,
                "edo_id": r.edo_id,
                "form": form_status.get(r.deal_id),
                "synced_at": r.synced_at.isoformat() if r.synced_at else None,
            }
            for r in rows
        ],
    }

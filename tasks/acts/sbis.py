"""Electronic acts through СБИС: the send step, and ``acts.track`` following the change feed.

Sending is idempotent by construction: the СБИС document carries our own GUID (fixed when the act
was drafted), so the step reads it first and only writes, prepares and executes «Отправка» /
«Отправить» while the document still offers that stage. A retry after a crash finds it sent.

``acts.track`` (beat) reads ``СБИС.СписокИзменений`` page by page from the stored cursor, one
transaction per page. Every event is recorded in ``sbis_events`` under its id, so an event the feed
repeats is applied once; within a page events are applied in time order, and a signature or
refusal older than one already applied is stale (the feed may deliver late events out of order).
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import PermanentError
from integrations.sbis.client import ChangesPage, FeedEvent, SbisClient, SbisRequestError
from integrations.sbis.wire import EVENT_REFUSED, EVENT_SIGNED, format_date
from models.acts import FILE_ACT, REFUSED, SENDING, SENT, SIGNED, Act, ActFile, ActSyncCursor, SbisEvent
from models.db import db_now, dialect_insert, session_scope
from tasks.acts import machine
from tasks.acts.clients import sbis_client
from tasks.acts.register import Effects, change_status, claim_cursor

log = structlog.get_logger(__name__)

STAGE = "Отправка"
ACTION = "Отправить"
DOCUMENT_TYPE = "ДокОтгрИсх"
REGULATION = "Акт выполненных работ"
CURSOR = "sbis_changes"
MAX_PAGES_PER_RUN = 50


def sbis_document(session: Session, act: Act) -> dict[str, Any]:
    """The act as a СБИС document (``Документ`` of ``СБИС.ЗаписатьДокумент``)."""
    s = get_settings()
    if not s.sbis_organization_inn:
        raise PermanentError("OBMEN_SBIS_ORGANIZATION_INN must be set: it is НашаОрганизация of every act")
    file = session.scalars(
        select(ActFile).where(ActFile.act_id == act.id, ActFile.kind == FILE_ACT).order_by(ActFile.id.desc())
    ).first()
    if file is None:
        raise PermanentError(f"act {act.number} has no file to send")
    if act.act_type.endswith("_ip"):
        party: dict[str, Any] = {"СвФЛ": {"ИНН": act.counterparty_inn}}
    else:
        party = {"СвЮЛ": {"ИНН": act.counterparty_inn, "КПП": act.counterparty_kpp}}
    if act.counterparty_name:
        party[next(iter(party))]["Название"] = act.counterparty_name
    if act.edo_id:
        party["Идентификатор"] = act.edo_id
    document: dict[str, Any] = {
        "Идентификатор": act.sbis_document_id,
        "Номер": act.number,
        "Дата": format_date(act.act_date),
        "Тип": DOCUMENT_TYPE,
        "Регламент": {"Название": REGULATION},
        "НашаОрганизация": {"СвЮЛ": {"ИНН": s.sbis_organization_inn, "КПП": s.sbis_organization_kpp}},
        "Контрагент": party,
        "Вложение": [{"Файл": {"Имя": file.name, "ДвоичныеДанные": base64.b64encode(file.content).decode()}}],
    }
    if act.products:
        document["Примечание"] = "; ".join(act.products)[:1000]
    return document


def offers_send(document: dict[str, Any]) -> bool:
    return any(stage.get("Название") == STAGE for stage in document.get("Этап") or [])


# --- the change feed ------------------------------------------------------------------------------
@dataclass
class TrackReport:
    pages: int = 0
    events: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: str | None = None


def _outcome_kind(outcome: str) -> str:
    return outcome.split(":", 1)[0]


def apply_events(session: Session, events: list[FeedEvent]) -> tuple[Counter[str], set[str]]:
    """Apply one page of feed events, each event id only once, ever: (outcomes counted, new event ids)."""
    counted: Counter[str] = Counter()
    unique = {e.event_id: e for e in events}
    if not unique:
        return counted, set()
    seen = set(session.scalars(select(SbisEvent.event_id).where(SbisEvent.event_id.in_(list(unique)))))
    fresh = sorted((e for e in unique.values() if e.event_id not in seen), key=lambda e: e.happened_at)
    counted["repeated"] = len(events) - len(fresh)
    if not fresh:
        return counted, set()
    # Lock the acts first, in id order, like every other writer of acts (no deadlocks).
    acts = {
        a.sbis_document_id: a
        for a in session.scalars(
            select(Act)
            .where(Act.sbis_document_id.in_({e.document_id for e in fresh}))
            .order_by(Act.id)
            .with_for_update()
        )
    }
    rows = []
    effects = Effects()
    for event in fresh:
        act = acts.get(event.document_id)
        outcome = _apply(session, act, event, effects)
        counted[_outcome_kind(outcome)] += 1
        rows.append(
            {
                "event_id": event.event_id,
                "document_id": event.document_id,
                "act_id": act.id if act else None,
                "name": event.name[:200],
                "kind": event.kind,
                "happened_at": event.happened_at,
                "outcome": outcome[:200],
            }
        )
    effects.write(session)
    session.execute(
        dialect_insert(session, SbisEvent).on_conflict_do_nothing(index_elements=["event_id"]), rows
    )
    return counted, {e.event_id for e in fresh}


def _apply(session: Session, act: Act | None, event: FeedEvent, effects: Effects) -> str:
    if act is None:
        return "ignored: not a document of obmen"
    if event.kind not in (EVENT_SIGNED, EVENT_REFUSED):
        return f"noted: {event.kind}"
    if act.sbis_last_event_at is not None and event.happened_at < act.sbis_last_event_at:
        return "stale: older than the signature or refusal already applied"
    target = SIGNED if event.kind == EVENT_SIGNED else REFUSED
    if act.status == target:
        return "already"
    note = f"СБИС: {event.name} ({event.event_id})"
    try:
        if act.status == SENDING:
            # The counterparty answered before the send step recorded the sending.
            change_status(
                session, act, SENT, actor=machine.SBIS, now=event.happened_at, note=note, effects=effects
            )
        change_status(
            session, act, target, actor=machine.SBIS, now=event.happened_at, note=note, effects=effects
        )
    except machine.IllegalTransition as exc:
        return f"ignored: {exc}"
    act.sbis_last_event_at = event.happened_at
    return f"applied: {target}"


def _first_since(session: Session) -> datetime:
    """Without a cursor yet, read from an hour before the oldest act still awaiting СБИС."""
    oldest = session.scalar(
        select(func.min(func.coalesce(Act.sent_at, Act.updated_at))).where(
            Act.sbis_document_id.is_not(None), Act.status.in_([SENDING, SENT])
        )
    )
    return (oldest or db_now(session)) - timedelta(hours=1)


def _read_page(client: SbisClient, cursor: ActSyncCursor, since: datetime, page_size: int) -> ChangesPage:
    try:
        return client.list_changes(cursor=cursor.position, since=since, page_size=page_size)
    except SbisRequestError:
        if not cursor.position:
            raise
        # СБИС no longer knows our event id: fall back to the date; repeated events are harmless.
        log.warning("acts.track.cursor_unknown", cursor=cursor.position)
        return client.list_changes(cursor=None, since=since, page_size=page_size)


def track(max_pages: int = MAX_PAGES_PER_RUN) -> TrackReport:
    """Read the feed from the stored cursor until it has no more (or ``max_pages``), a page per commit."""
    report = TrackReport()
    client = sbis_client()
    page_size = get_settings().sbis_page_size
    for _ in range(max_pages):
        with session_scope() as session:
            cursor = claim_cursor(session, CURSOR)
            if cursor is None:
                report.skipped = "another acts.track holds the cursor"
                return report
            since = cursor.position_at - timedelta(hours=1) if cursor.position_at else _first_since(session)
            page = _read_page(client, cursor, since, page_size)
            report.pages += 1
            report.events += len(page.events)
            counted, fresh = apply_events(session, page.events)
            report.outcomes.update(counted)
            _advance(cursor, page.events, fresh)
        if not page.has_more or not fresh:
            break
    return report


def _advance(cursor: ActSyncCursor, events: list[FeedEvent], fresh: set[str]) -> None:
    """Move the cursor to the last new event as listed (else the last listed): the feed resumes after it.

    Every event of the page listed after that one comes again next time and is recognised as a repeat;
    none is skipped, even when the feed repeats events or lists a page out of order.
    """
    if not events:
        return
    last = next((e for e in reversed(events) if e.event_id in fresh), events[-1])
    cursor.position = last.event_id
    latest = max(e.happened_at for e in events)
    cursor.position_at = max(latest, cursor.position_at) if cursor.position_at else latest

"""The acts register: drafting an act from a deal, and every status change with what follows it.

A status change is one transaction: the act, its history row, its deadline (set on sending,
cancelled on any outcome), the deal's stage move re-armed, and the outbox rows of the steps that
follow. Locks are always taken acts first (by id), then Bitrix24 side-effect rows, so concurrent
changes never deadlock.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.validation import Inn, Kpp, Money
from models.acts import (
    ACCEPTED_UNSIGNED,
    ACT_TYPES,
    CRM_STAGE,
    DEADLINE_SIGNATURE,
    EMAILING,
    FILE_ACT,
    REFUSED,
    SENDING,
    SENT,
    SIGNED,
    Act,
    ActCrmAction,
    ActDeadline,
    ActDeal,
    ActFile,
    ActHistory,
    ActItem,
    ActSyncCursor,
    is_electronic,
)
from models.db import db_now, dialect_insert, session_scope
from tasks.acts import machine
from tasks.acts.chain import DEAL_SYNC, EMAIL_SEND, ITEM_SYNC, MOVE_STAGES, SBIS_SEND
from tasks.machinery.outbox import enqueue, enqueue_many
from tasks.machinery.workdays import moscow_date, working_deadline

# Deal moves per Bitrix24 ``batch`` call (the portal takes at most 50 commands).
STAGE_BATCH = 50
FILE_MAX_NAME = 255
# Statuses the deal's stage depends on (see machine.deal_stage_for); other moves leave it alone.
STAGE_MOVERS = frozenset({SENT, SIGNED, ACCEPTED_UNSIGNED, REFUSED})


class ActConflict(ValueError):
    """The request contradicts what the register holds (an act number used for another deal)."""


class ActNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Upload:
    name: str
    content_type: str
    content: bytes

    def check(self, what: str) -> None:
        if not self.content:
            raise ValueError(f"{what}: the file {self.name!r} is empty")
        if not self.name or len(self.name) > FILE_MAX_NAME:
            raise ValueError(f"{what}: a file name of 1 to {FILE_MAX_NAME} characters is required")


class ActIn(BaseModel):
    """An act to draft for a deal (what ``POST /acts`` and ``obmen acts create`` take)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(min_length=1, max_length=64)
    deal_id: int = Field(gt=0)
    act_type: Literal["paper_ip", "paper_ul", "electronic_ip", "electronic_ul"]
    act_date: date | None = None
    company_id: int | None = Field(None, gt=0)
    counterparty_inn: Inn | None = None
    counterparty_kpp: Kpp | None = None
    counterparty_name: str | None = Field(None, max_length=500)
    exchange_method: Literal["email", "paper", "edo"] | None = None
    edo_operator: str | None = Field(None, max_length=200)
    edo_id: str | None = Field(None, max_length=100)
    products: list[str] = Field(default_factory=list, max_length=200)
    amount: Money | None = None
    send: StrictBool = False

    @field_validator("products")
    @classmethod
    def _products(cls, value: list[str]) -> list[str]:
        cleaned = [p.strip() for p in value]
        if any(not p or len(p) > 300 for p in cleaned):
            raise ValueError("each product is a name of 1 to 300 characters")
        return cleaned

    @model_validator(mode="after")
    def _consistent(self) -> ActIn:
        inn = self.counterparty_inn
        sole_trader = self.act_type.endswith("_ip")
        if inn is not None and sole_trader and len(inn) != 12:
            raise ValueError("an act for an ИП (sole trader) needs the 12-digit ИНН of the person")
        if inn is not None and not sole_trader and len(inn) != 10:
            raise ValueError("an act for a ЮЛ (legal entity) needs a 10-digit ИНН")
        if sole_trader and self.counterparty_kpp:
            raise ValueError("an ИП (sole trader) has no КПП")
        if is_electronic(self.act_type):
            if inn is None:
                raise ValueError("an electronic act goes through СБИС, which needs the counterparty's ИНН")
            if not sole_trader and not self.counterparty_kpp:
                raise ValueError("an electronic act for a ЮЛ needs the counterparty's КПП for СБИС")
            if self.exchange_method not in (None, "edo"):
                raise ValueError(
                    f"an electronic act is exchanged through ЭДО, but the exchange method given is "
                    f"{self.exchange_method!r}: draft a paper act instead"
                )
        return self


def ensure_deal(session: Session, deal_id: int) -> None:
    """Make sure the deal has its row; a new one is read from Bitrix24 by the sync step."""
    inserted = session.execute(
        dialect_insert(session, ActDeal)
        .values(deal_id=deal_id, status="pending")
        .on_conflict_do_nothing(index_elements=["deal_id"])
        .returning(ActDeal.id)
    ).scalar_one_or_none()
    if inserted is not None:
        enqueue(session, DEAL_SYNC, {"id": inserted}, business_key=f"deal:{deal_id}")


def create_act(
    session: Session, data: ActIn, upload: Upload, actor: str = machine.MANAGER
) -> tuple[Act, bool]:
    """Draft the act (or find it again: the act number is its business key). Returns (act, created)."""
    existing = session.scalars(select(Act).where(Act.number == data.number)).one_or_none()
    if existing is not None:
        if existing.deal_id != data.deal_id:
            raise ActConflict(
                f"act number {data.number} already belongs to deal {existing.deal_id}, not {data.deal_id}"
            )
        return existing, False
    upload.check("the act")
    ensure_deal(session, data.deal_id)
    deal = session.scalars(select(ActDeal).where(ActDeal.deal_id == data.deal_id)).one()
    now = db_now(session)
    exchange_method = data.exchange_method or deal.exchange_method
    if is_electronic(data.act_type) and exchange_method not in (None, "edo"):
        raise ValueError(
            f"the counterparty of deal {data.deal_id} chose {exchange_method!r} for acts, not ЭДО: "
            "draft a paper act, or set exchange_method to 'edo' if they changed their mind"
        )
    act = Act(
        number=data.number,
        act_date=data.act_date or moscow_date(now),
        deal_id=data.deal_id,
        company_id=data.company_id or deal.company_id,
        counterparty_inn=data.counterparty_inn,
        counterparty_kpp=data.counterparty_kpp or "",
        counterparty_name=data.counterparty_name,
        act_type=data.act_type,
        exchange_method=exchange_method or ("edo" if is_electronic(data.act_type) else None),
        edo_operator=data.edo_operator or deal.edo_operator,
        edo_id=data.edo_id or deal.edo_id,
        products=data.products or deal.act_products or [],
        amount=data.amount,
        sbis_document_id=str(uuid.uuid4()) if is_electronic(data.act_type) else None,
    )
    session.add(act)
    session.flush()
    _attach(session, act, FILE_ACT, upload)
    session.add(
        ActHistory(
            act_id=act.id,
            from_status=None,
            to_status=act.status,
            actor=actor,
            note=ACT_TYPES[act.act_type],
            at=now,
        )
    )
    effects = Effects(deals={act.deal_id}, items={act.id})
    if data.send:
        change_status(session, act, SENT, actor=actor, now=now, effects=effects)
    effects.write(session)
    return act, True


def _attach(session: Session, act: Act, kind: str, upload: Upload) -> ActFile:
    row = ActFile(
        act_id=act.id,
        kind=kind,
        name=upload.name,
        content_type=upload.content_type or "application/octet-stream",
        size=len(upload.content),
        sha256=hashlib.sha256(upload.content).hexdigest(),
        content=upload.content,
    )
    session.add(row)
    return row


def has_file(session: Session, act: Act, kind: str) -> bool:
    return (
        session.scalar(select(ActFile.id).where(ActFile.act_id == act.id, ActFile.kind == kind).limit(1))
        is not None
    )


def lock_act(session: Session, act_id: int) -> Act:
    act = session.get(Act, act_id, with_for_update=True, populate_existing=True)
    if act is None:
        raise ActNotFound(f"no act with id {act_id}")
    return act


@dataclass
class Effects:
    """What status changes entail beyond the act rows, written together at the end: history, deadlines
    set and cancelled, steps enqueued, deals' stages re-armed. A page of СБИС events shares one, so
    its writes are a few batched statements instead of a few per event; and the CRM rows are locked
    after every act, in deal order, as everywhere (no deadlocks)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    deadlines: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    send: list[int] = field(default_factory=list)
    emails: list[int] = field(default_factory=list)
    deals: set[int] = field(default_factory=set)
    items: set[int] = field(default_factory=set)

    def write(self, session: Session) -> None:
        if self.history:
            session.execute(insert(ActHistory), self.history)
        if self.deadlines:
            session.execute(
                dialect_insert(session, ActDeadline).on_conflict_do_nothing(index_elements=["subject_key"]),
                self.deadlines,
            )
        if self.cancelled:
            session.execute(
                update(ActDeadline)
                .where(ActDeadline.subject_key.in_(self.cancelled), ActDeadline.status == "waiting")
                .values(status="cancelled")
            )
        if self.send:
            enqueue_many(
                session,
                SBIS_SEND,
                [{"id": i} for i in self.send],
                business_keys=[f"act:{i}" for i in self.send],
            )
        if self.emails:
            enqueue_many(
                session,
                EMAIL_SEND,
                [{"id": i} for i in self.emails],
                business_keys=[f"act-email:{i}" for i in self.emails],
            )
        if self.deals:
            rearm_deal_stages(session, sorted(self.deals))
        if self.items:
            rearm_items(session, sorted(self.items))


def change_status(
    session: Session,
    act: Act,
    target: str,
    *,
    actor: str,
    now: datetime | None = None,
    note: str | None = None,
    upload: Upload | None = None,
    effects: Effects | None = None,
) -> str:
    """Move ``act`` (locked by the caller) to ``target`` through the state machine; returns the status set.

    Raises :class:`machine.IllegalTransition` (nothing written) when the move is not allowed. With
    ``effects`` the caller writes them (:meth:`Effects.write`) once it has changed all its acts.
    """
    move = machine.check(act.number, act.act_type, act.status, target, actor, act.exchange_method)
    if move.needs_file:
        if upload is not None:
            upload.check(f"act {act.number}")
        elif not has_file(session, act, move.needs_file):
            raise ValueError(
                f"act {act.number}: moving it to «{target}» needs the scan ({move.needs_file}) uploaded with it"
            )
    if move.lands_on == SENDING and not act.counterparty_inn:
        raise ValueError(f"act {act.number}: СБИС needs the counterparty's ИНН before the act can be sent")
    now = now or db_now(session)
    landed = move.lands_on or move.target
    if upload is not None and move.needs_file:
        _attach(session, act, move.needs_file, upload)
    pending = effects if effects is not None else Effects()
    pending.history.append(
        {
            "act_id": act.id,
            "from_status": act.status,
            "to_status": landed,
            "actor": actor,
            "note": note,
            "at": now,
        }
    )
    previous = act.status
    act.status = landed
    if landed == SENDING:
        act.attempts = 0
        pending.send.append(act.id)
    if landed == EMAILING:
        act.attempts = 0
        pending.emails.append(act.id)
    if landed == SENT:
        act.sent_at = now
        pending.deadlines.append(
            {
                "kind": DEADLINE_SIGNATURE,
                "subject_key": signature_key(act.id),
                "deal_id": act.deal_id,
                "act_id": act.id,
                "due_at": working_deadline(now, get_settings().acts_signature_working_days),
                "status": "waiting",
            }
        )
    if previous == SENT or landed in (SIGNED, ACCEPTED_UNSIGNED, REFUSED):
        pending.cancelled.append(signature_key(act.id))
    if landed in act.TERMINAL:
        act.closed_at = now
    if {previous, landed} & STAGE_MOVERS:
        pending.deals.add(act.deal_id)
    pending.items.add(act.id)
    if effects is None:
        pending.write(session)
    return landed


def signature_key(act_id: int) -> str:
    return f"signature:act:{act_id}"


def cancel_deadline(session: Session, subject_key: str) -> None:
    session.execute(
        update(ActDeadline)
        .where(ActDeadline.subject_key == subject_key, ActDeadline.status == "waiting")
        .values(status="cancelled")
    )


def rearm_deal_stages(session: Session, deal_ids: list[int]) -> None:
    """Ask the CRM step to bring each deal's stage in line with its acts (the step computes the stage
    itself from the acts as committed when it runs, so racing changes cannot leave an older stage)."""
    now = db_now(session)
    keys = [f"stage:deal:{deal_id}" for deal_id in deal_ids]
    rows = session.execute(
        dialect_insert(session, ActCrmAction)
        .on_conflict_do_update(
            index_elements=["business_key"],
            set_={"status": "pending", "attempts": 0, "parked_at": None, "updated_at": now},
        )
        .returning(ActCrmAction.id, ActCrmAction.business_key, sort_by_parameter_order=True),
        [
            {"kind": CRM_STAGE, "business_key": key, "deal_id": deal_id, "status": "pending", "attempts": 0}
            for deal_id, key in zip(deal_ids, keys, strict=True)
        ],
    ).all()
    # One message per batch of deals: ``acts.crm.move_stages`` moves them in one Bitrix24 call.
    chunks = [rows[i : i + STAGE_BATCH] for i in range(0, len(rows), STAGE_BATCH)]
    enqueue_many(
        session,
        MOVE_STAGES,
        [{"ids": [r.id for r in chunk]} for chunk in chunks],
        business_keys=[chunk[0].business_key for chunk in chunks],
    )


def rearm_items(session: Session, act_ids: list[int]) -> None:
    """Ask ``acts.item.sync`` to bring the acts' Bitrix24 items in line (when acts are items at all)."""
    if get_settings().acts_item_entity_type_id is None:
        return
    now = db_now(session)
    ids = (
        session.execute(
            dialect_insert(session, ActItem)
            .on_conflict_do_update(
                index_elements=["act_id"],
                set_={"status": "pending", "attempts": 0, "parked_at": None, "updated_at": now},
            )
            .returning(ActItem.id, sort_by_parameter_order=True),
            [{"act_id": act_id, "status": "pending", "attempts": 0} for act_id in act_ids],
        )
        .scalars()
        .all()
    )
    enqueue_many(
        session, ITEM_SYNC, [{"id": i} for i in ids], business_keys=[f"act-item:{a}" for a in act_ids]
    )


def claim_cursor(session: Session, name: str) -> ActSyncCursor | None:
    """Lock the feed cursor ``name`` for this run, or None while another run holds it.

    The row is created beforehand in a transaction of its own: the caller then calls an external
    system, whose exchange is recorded in another transaction, before it writes anything — the
    embedded demo's SQLite allows one writer at a time.
    """
    with session_scope() as own:
        own.execute(
            dialect_insert(own, ActSyncCursor)
            .values(name=name)
            .on_conflict_do_nothing(index_elements=["name"])
        )
    return session.scalars(
        select(ActSyncCursor).where(ActSyncCursor.name == name).with_for_update(skip_locked=True)
    ).one_or_none()


def deal_stages(session: Session, deal_ids: list[int]) -> dict[int, str | None]:
    """The stage each deal's acts call for (None: no move), from the acts as committed now.

    «Подготовка акта» never takes a deal back: only a deal obmen has read from Bitrix24 (its first
    read re-arms the move) and not on a later stage of the acts (approved by the commission, sent,
    done) goes there.
    """
    s = get_settings()
    later = {s.acts_stage_approved, s.acts_stage_act_sent, s.acts_stage_done, s.acts_stage_remarks}
    acts: dict[int, list[tuple[int, str]]] = {deal_id: [] for deal_id in deal_ids}
    for deal_id, act_id, status in session.execute(
        select(Act.deal_id, Act.id, Act.status).where(Act.deal_id.in_(deal_ids))
    ):
        acts[deal_id].append((act_id, status))
    found_stages = select(ActDeal.deal_id, ActDeal.stage_id).where(ActDeal.deal_id.in_(deal_ids))
    known = dict(session.execute(found_stages).all())
    stages = {deal_id: machine.deal_stage_for(found) for deal_id, found in acts.items()}
    return {
        deal_id: None if stage == s.acts_stage_preparing and known.get(deal_id) in later | {None} else stage
        for deal_id, stage in stages.items()
    }


def deal_stage(session: Session, deal_id: int) -> str | None:
    return deal_stages(session, [deal_id])[deal_id]

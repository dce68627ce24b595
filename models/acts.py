"""Registers of the acts flow (seed 003): acts of completed work (акты выполненных работ) linked to
CRM deals, their files and history, the deals as Bitrix24 last showed them, the counterparty's form,
the working-day deadlines, the Bitrix24 side effects, and the СБИС change feed.

The vocabulary is the seed's: act statuses are stored in Russian, as managers see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow
from models.gauges import Sample, register_gauge
from models.steps import StepMixin

# --- act statuses (статусы акта) --------------------------------------------------------------
CREATED = "Создан"  # drafted from the deal, nothing done with it yet
SIGNED_BY_US = "Подписан с нашей стороны"  # paper: the scan signed by us is uploaded
SENDING = "Отправка в СБИС"  # electronic: being written to СБИС and sent (a step works on it)
EMAILING = "Отправка по e-mail"  # e-mail: the letter with the act is queued; sent when it has left
SENT = "Акт направлен заявителю"  # sent to the counterparty; the 5-working-day clock runs
SIGNED = "Акт получен и подписан"  # signed by the counterparty
ACCEPTED_UNSIGNED = "Акт принят, но не подписан заявителем"  # accepted, the signature will come later
REFUSED = "Отказ от подписания"  # the counterparty refused to sign (remarks)

ACT_STATUSES = (CREATED, SIGNED_BY_US, SENDING, EMAILING, SENT, SIGNED, ACCEPTED_UNSIGNED, REFUSED)

# --- act types (тип акта) and exchange methods (способ обмена) ---------------------------------
ACT_TYPES: dict[str, str] = {
    "paper_ip": "Бумажный акт для ИП",
    "paper_ul": "Бумажный акт для юридических лиц",
    "electronic_ip": "Электронный акт для ИП",
    "electronic_ul": "Электронный акт для юридических лиц",
}
EXCHANGE_METHODS: dict[str, str] = {"email": "e-mail", "paper": "в бумажном виде", "edo": "через ЭДО"}

# --- file kinds -----------------------------------------------------------------------------------
FILE_ACT = "act"  # the act as drafted (what goes to СБИС)
FILE_SIGNED_BY_US = "signed_by_us"  # paper: scan of the act signed on our side
FILE_SIGNED = "signed"  # paper: scan of the act signed by the counterparty


def is_electronic(act_type: str) -> bool:
    return act_type.startswith("electronic")


class ActDeal(StepMixin, Base):
    """A Bitrix24 deal as the acts flow last read it (``crm.deal.get``), and the counterparty's choice.

    ``status`` is ``pending`` when an event or the reconciliation says the deal changed and the
    ``acts.deal.sync`` step has not read it yet, ``synced`` after.
    """

    __tablename__ = "act_deals"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"synced"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deal_id: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", nullable=False)
    title: Mapped[str | None] = mapped_column(String(500))
    stage_id: Mapped[str | None] = mapped_column(String(50))
    company_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    assigned_by_id: Mapped[int | None] = mapped_column(BigInteger)
    # Bitrix24's DATE_MODIFY of the version read; the reconciliation compares against it.
    date_modify: Mapped[datetime | None] = mapped_column(UTCDateTime())
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The counterparty's answer to the form (or the manager's entry): how acts are exchanged.
    exchange_method: Mapped[str | None] = mapped_column(String(10))
    edo_operator: Mapped[str | None] = mapped_column(String(200))
    edo_id: Mapped[str | None] = mapped_column(String(100))
    # The deal's product rows marked "act needed" (their names), as the sync step last read them;
    # None: the deal marks none.
    act_products: Mapped[list[Any] | None] = mapped_column()


class Act(StepMixin, Base):
    """Реестр актов: one act of completed work, drafted from a deal."""

    __tablename__ = "acts"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({SIGNED, ACCEPTED_UNSIGNED, REFUSED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    act_date: Mapped[date] = mapped_column(Date, nullable=False)
    deal_id: Mapped[int] = mapped_column(ForeignKey("act_deals.deal_id"), nullable=False, index=True)
    company_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    counterparty_inn: Mapped[str | None] = mapped_column(String(12))
    # Empty for sole traders (ИП), who have no КПП.
    counterparty_kpp: Mapped[str] = mapped_column(String(9), default="", nullable=False)
    counterparty_name: Mapped[str | None] = mapped_column(String(500))
    act_type: Mapped[str] = mapped_column(String(20), nullable=False)
    exchange_method: Mapped[str | None] = mapped_column(String(10))
    edo_operator: Mapped[str | None] = mapped_column(String(200))
    edo_id: Mapped[str | None] = mapped_column(String(100))
    products: Mapped[list[Any]] = mapped_column(nullable=False, default=list)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(60), default=CREATED, nullable=False, index=True)
    # Our own GUID for the СБИС document, fixed at creation: writing the document twice updates it.
    sbis_document_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    # Time of the latest СБИС event applied; an older event arriving later is stale.
    sbis_last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    @property
    def electronic(self) -> bool:
        return is_electronic(self.act_type)


class ActFile(Base):
    """A file of an act: the act itself, and for paper acts the scans signed by us and by them."""

    __tablename__ = "act_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    act_id: Mapped[int] = mapped_column(ForeignKey("acts.id", ondelete="CASCADE"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)


class ActHistory(Base):
    """Every status change of an act: who (a manager, СБИС, obmen), from what, to what, when."""

    __tablename__ = "act_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    act_id: Mapped[int] = mapped_column(ForeignKey("acts.id", ondelete="CASCADE"), nullable=False, index=True)
    from_status: Mapped[str | None] = mapped_column(String(60))
    to_status: Mapped[str] = mapped_column(String(60), nullable=False)
    actor: Mapped[str] = mapped_column(String(40), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class ActFormRequest(StepMixin, Base):
    """The letter asking the counterparty how to exchange acts (the form link), and the answer.

    ``to_send`` (the ``acts.form.send`` step renders and hands the letter to the mail outbox) →
    ``sent`` → ``answered``. One automatic request per deal (``business_key`` ``approved:<deal>``);
    a manager may send more by hand.
    """

    __tablename__ = "act_form_requests"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"sent", "answered"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_key: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("act_deals.deal_id"), nullable=False, index=True)
    token: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(20), default="to_send", nullable=False)
    requested_by: Mapped[str] = mapped_column(String(20), nullable=False)  # "stage" or "manager"
    email: Mapped[str | None] = mapped_column(String(320))
    company_title: Mapped[str | None] = mapped_column(String(500))
    letter_id: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answer: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)


# --- deadlines ----------------------------------------------------------------------------------
DEADLINE_SIGNATURE = "signature"  # 5 working days after sending → task «Указать статус акта»
DEADLINE_FORM = "form_answer"  # 3 days without the form → notify the responsible manager


class ActDeadline(StepMixin, Base):
    """A deadline as a row (days are far too long for a broker countdown), swept by beat.

    ``waiting`` → ``due`` (swept: its Bitrix24 side effect is to be done by ``acts.deadline.fire``) →
    ``fired``; or ``cancelled`` (the act was settled, the form answered, before it fell due).
    ``subject_key`` makes it one per act or form, and is the task's ``XML_ID`` in Bitrix24.
    """

    __tablename__ = "act_deadlines"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"fired", "cancelled"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    subject_key: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    deal_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    act_id: Mapped[int | None] = mapped_column(ForeignKey("acts.id", ondelete="CASCADE"), index=True)
    form_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("act_form_requests.id", ondelete="CASCADE"), index=True
    )
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="waiting", nullable=False)
    # When the sweep found it due, and what its side effect did (``task 17``, ``skipped: …``).
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (
        # The sweep reads only waiting rows that are due: a small index however large the register.
        Index(
            "ix_act_deadlines_waiting_due",
            "due_at",
            postgresql_where=text("status = 'waiting'"),
            sqlite_where=text("status = 'waiting'"),
        ),
    )


# --- Bitrix24 side effects ------------------------------------------------------------------------
CRM_STAGE = "stage"  # move the deal to the stage its acts call for (one row per deal, re-armed)
CRM_NOTIFY = "notify"  # a notification to the deal's responsible


class ActCrmAction(StepMixin, Base):
    """One Bitrix24 side effect of the acts flow: a deal's stage move, or a notification.

    ``business_key`` is unique. A deal's stage row (``stage:deal:<id>``) is re-armed whenever its acts
    change; the move always applies the stage the acts call for when it runs, so moves that race
    each other cannot leave an older stage. Moves go 50 to a Bitrix24 ``batch`` call
    (``acts.crm.move_stages``); ``acts.crm.apply`` is the per-row way in (notifications, re-drives).
    """

    __tablename__ = "act_crm_actions"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"done"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    business_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", nullable=False)
    deal_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    act_id: Mapped[int | None] = mapped_column(BigInteger)
    form_request_id: Mapped[int | None] = mapped_column(BigInteger)
    stage_id: Mapped[str | None] = mapped_column(String(50))
    title: Mapped[str | None] = mapped_column(String(300))
    message: Mapped[str | None] = mapped_column(Text)
    # What Bitrix24 answered: the task id, the stage applied.
    result: Mapped[str | None] = mapped_column(String(100))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)


# --- the acts as Bitrix24 smart-process items -----------------------------------------------------
class ActItem(StepMixin, Base):
    """An act as an item of the Bitrix24 smart process (``OBMEN_ACTS_ITEM_ENTITY_TYPE_ID``), bound to
    its deal and company, so managers see and move acts in the portal.

    ``pending`` whenever either side may have changed (the act here, the item there: an event, the
    reconciliation) → the ``acts.item.sync`` step takes a manager's move through the state machine,
    then writes the act's stage, file and note to the item → ``synced``.
    """

    __tablename__ = "act_items"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"synced"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    act_id: Mapped[int] = mapped_column(
        ForeignKey("acts.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    status: Mapped[str] = mapped_column(String(20), default="pending", nullable=False)
    item_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # What obmen last wrote to the item (or took from it): a different stage there is a manager's move.
    stage_id: Mapped[str | None] = mapped_column(String(50))
    file_id: Mapped[int | None] = mapped_column(BigInteger)
    # The portal's id of the file its field holds as obmen last saw it: another one is the manager's scan.
    portal_file_id: Mapped[int | None] = mapped_column(BigInteger)
    # The refusal of the manager's last move, as put on the item (empty once a move went through).
    note: Mapped[str | None] = mapped_column(Text)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- СБИС change feed ---------------------------------------------------------------------------
class SbisEvent(Base):
    """Every event read from ``СБИС.СписокИзменений``, keyed by its id: applied once however often
    the feed repeats it. ``outcome`` says what it did (applied, stale, ignored and why)."""

    __tablename__ = "sbis_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    act_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    happened_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    outcome: Mapped[str] = mapped_column(String(200), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)


class ActSyncCursor(Base):
    """Where a feed was read up to: ``sbis_changes`` (the last СБИС event id and time) and
    ``bitrix24_deals`` (the latest DATE_MODIFY the reconciliation saw)."""

    __tablename__ = "act_sync_cursors"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    position: Mapped[str | None] = mapped_column(String(200))
    position_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )


@register_gauge("obmen_acts", "Acts in the register, per status", ("status",))
def _acts_by_status(session: Session) -> Iterable[Sample]:
    for status, count in session.execute(select(Act.status, func.count()).group_by(Act.status)):
        yield {"status": status}, count


@register_gauge(
    "obmen_act_deadlines_overdue", "Deadlines past due and not yet fired (beat down or behind)", ("kind",)
)
def _deadlines_overdue(session: Session) -> Iterable[Sample]:
    overdue = dict(
        session.execute(
            select(ActDeadline.kind, func.count())
            .where(ActDeadline.status == "waiting", ActDeadline.due_at < utcnow())
            .group_by(ActDeadline.kind)
        ).all()
    )
    for kind in (DEADLINE_SIGNATURE, DEADLINE_FORM):
        yield {"kind": kind}, overdue.get(kind, 0)

"""The registers of the SEP exchange (seed 000, «Регистры сведений»), besides the shared
``sep_confirmation_codes`` in ``models/sep_codes.py``.

``sep_exchange_queue`` is the step register: one row per request to SEP, from the moment it is
asked for to the moment its result is applied. The others are what the results are applied to,
and the record of every exchange and error.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow
from models.gauges import Sample, register_gauge
from models.steps import StepMixin

# The request status as the seed's workstation shows it (Статус запроса).
XML_READ_ERROR = "Ошибка чтения XML"
REQUEST_ERROR = "Ошибка запроса"
QUEUE_NUMBER_RECEIVED = "Получен номер очереди"
RESPONSE_RECEIVED = "Получен ответ"

# Asset statuses (Статусы основных средств (СЭП)).
OWNED = "В собственности"
LEASED = "В лизинге"
TRANSFERRED = "Передано клиенту"  # the lease ended: ownership passed to the client

# Not submitted yet: a lease application whose vehicles may still change, a lease change.
DRAFT = "Черновик"

# Application statuses in SEP's own words.
AWAITING_CONFIRMATION = "Ожидает подтверждения"
EXECUTED = "Исполнен"

# Statuses of a lease application of ours (sep_lease_applications.status).
LEASE_DRAFT = DRAFT
LEASE_SUBMITTING = "Отправляется"  # submitted, waiting for SEP's application number
LEASE_REGISTERED = "Зарегистрировано"  # has its number; waits for the lessee's code
LEASE_CONFIRMING = "Подтверждается"  # the lessee's confirmation is on its way
LEASE_EXECUTED = EXECUTED
LEASE_REJECTED = "Отклонено"
LEASE_ERROR = "Ошибка"

# Statuses of a request (sep_exchange_queue.status); the step each open one waits for is in
# tasks/sep/chain.py (NEXT_STEP).
PENDING = "pending"  # asked for, not sent yet
UNCERTAIN = "uncertain"  # may have reached SEP, but no queue number came back: to be sent again
QUEUED = "queued"  # has its queue number; polled until SEP is done
DONE = "done"  # SEP answered Done; the result waits to be applied
ERROR = "error"  # SEP answered Error or refused the request; the error waits to be applied
APPLIED = "applied"  # the result is in the registers: nothing left to do

OPEN_STATUSES = (PENDING, UNCERTAIN, QUEUED, DONE, ERROR)
_OPEN_SQL = "status IN (" + ", ".join(f"'{status}'" for status in OPEN_STATUSES) + ")"


class SepRequest(StepMixin, Base):
    """Очередь обмена СЭП: one request to SEP, its queue number, its polls and its outcome.

    pending → (sent) queued → (polled) done | error → (applied) applied.
    ``uncertain``: the request may have reached SEP but no queue number came back; it is sent
    again with the same ``message_id``, which SEP answers with the original queue number.
    """

    __tablename__ = "sep_exchange_queue"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({APPLIED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operation: Mapped[str] = mapped_column(String(40), nullable=False)
    # At most one open request per business key (a partial unique index): asking twice while
    # the first is on its way is a no-op, by construction.
    business_key: Mapped[str] = mapped_column(String(300), nullable=False)
    # Our idempotency key towards SEP, fixed before the first send.
    message_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    # The operation's arguments (integrations.sep.messages), as stored and as sent.
    payload: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    # What the request is about: the application, or our lease application it submits.
    application_number: Mapped[str | None] = mapped_column(String(64), index=True)
    lease_application_id: Mapped[int | None] = mapped_column(ForeignKey("sep_lease_applications.id"))
    lease_change_id: Mapped[int | None] = mapped_column(ForeignKey("sep_lease_changes.id"))
    counterparty_id: Mapped[int | None] = mapped_column(ForeignKey("sep_counterparties.id"))
    # Who asked: "mail:<mail_messages.id>", "ops", "beat", "auto" ...
    source: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(20), default=PENDING, nullable=False)
    request_status: Mapped[str | None] = mapped_column(String(40))
    queue_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    # Our database clock when the queue number was in hand (never earlier than SEP accepted it);
    # the first poll is due OBMEN_SEP_MIN_POLL_DELAY_S after it.
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sep_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    polls: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    max_polls: Mapped[int | None] = mapped_column(Integer)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The Celery id of the one scheduled poll message; any other poll delivered early is a duplicate.
    poll_task_id: Mapped[str | None] = mapped_column(String(64))
    sep_state: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(String(20))  # Done, Error, Refused
    result: Mapped[dict[str, Any] | None] = mapped_column()
    errors: Mapped[list[Any] | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (
        Index(
            "uq_sep_exchange_queue_open_business_key",
            "business_key",
            unique=True,
            postgresql_where=text(_OPEN_SQL),
            sqlite_where=text(_OPEN_SQL),
        ),
        Index("ix_sep_exchange_queue_status", "status"),
    )


class SepExchangeHistory(Base):
    """История обмена СЭП: every request and answer, classified; the raw bodies are in exchange_log."""

    __tablename__ = "sep_exchange_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), nullable=False, index=True
    )
    # No foreign key: it is written while the step holds the queue row FOR UPDATE, and a key check
    # would wait for that very lock.
    request_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    operation: Mapped[str] = mapped_column(String(40), nullable=False)
    message_id: Mapped[str | None] = mapped_column(String(36))
    queue_number: Mapped[str | None] = mapped_column(String(64), index=True)
    business_key: Mapped[str | None] = mapped_column(String(300))
    request_status: Mapped[str] = mapped_column(String(40), nullable=False)
    sep_state: Mapped[str | None] = mapped_column(String(20))
    http_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    exchange_log_id: Mapped[int | None] = mapped_column(ForeignKey("exchange_log.id", ondelete="SET NULL"))


class SepExchangeError(Base):
    """Ошибки обмена СЭП: every error, keyed by its correlation id (queue number, else message id)."""

    __tablename__ = "sep_exchange_errors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), nullable=False, index=True
    )
    correlation_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    request_id: Mapped[int | None] = mapped_column(BigInteger, index=True)  # no FK: see the history
    operation: Mapped[str] = mapped_column(String(40), nullable=False)
    # transport, http, soap_fault, xml, sep (an Error answer of a queue number)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    code: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text, nullable=False)
    application_number: Mapped[str | None] = mapped_column(String(64), index=True)


class SepApplication(Base):
    """Данные заявлений (СЭП): everything SEP returned about each application."""

    __tablename__ = "sep_applications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    application_number: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # OwnershipChange, Lease
    status: Mapped[str] = mapped_column(String(60), nullable=False)  # SEP's words: «Исполнен» ...
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirm_by: Mapped[date | None] = mapped_column(Date)
    epts: Mapped[str | None] = mapped_column(String(15), index=True)
    vin: Mapped[str | None] = mapped_column(String(17), index=True)
    vehicles: Mapped[list[Any]] = mapped_column(nullable=False)
    parties: Mapped[list[Any]] = mapped_column(nullable=False)
    current_owner_inn: Mapped[str | None] = mapped_column(String(12))
    new_owner_inn: Mapped[str | None] = mapped_column(String(12))
    # Our organisation's role and party status in it (NULL: we are not a party).
    organization_inn: Mapped[str | None] = mapped_column(String(12))
    our_role: Mapped[str | None] = mapped_column(String(20))
    our_status: Mapped[str | None] = mapped_column(String(20))
    asset_inventory_number: Mapped[str | None] = mapped_column(ForeignKey("assets.inventory_number"))
    responsible_id: Mapped[str | None] = mapped_column(ForeignKey("employees.id"))
    data: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The latest request about it and how it went (the colour of the row in the seed's workstation).
    request_status: Mapped[str | None] = mapped_column(String(40))
    last_request_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class SepAssetStatus(Base):
    """Статусы основных средств (СЭП): an asset's SEP status as of a moment (the seed's «Период»)."""

    __tablename__ = "sep_asset_statuses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    asset_inventory_number: Mapped[str | None] = mapped_column(ForeignKey("assets.inventory_number"))
    epts: Mapped[str] = mapped_column(String(15), nullable=False)
    status: Mapped[str] = mapped_column(String(40), nullable=False)
    period: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    application_number: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (
        UniqueConstraint("epts", "application_number", "status"),
        Index("ix_sep_asset_statuses_asset_period", "asset_inventory_number", "period"),
    )


class SepLeaseApplication(Base):
    """Заявления о лизинге: every lease application we submitted, one per lease contract appendix."""

    __tablename__ = "sep_lease_applications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lease_contract_number: Mapped[str] = mapped_column(
        ForeignKey("lease_contracts.number"), nullable=False, unique=True
    )
    organization_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    lessee_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    document_name: Mapped[str] = mapped_column(String(500), nullable=False)
    document_number: Mapped[str] = mapped_column(String(100), nullable=False)
    document_date: Mapped[date] = mapped_column(Date, nullable=False)
    lease_term_end: Mapped[date] = mapped_column(Date, nullable=False)
    epts: Mapped[list[Any]] = mapped_column(nullable=False)
    lessor_status: Mapped[str] = mapped_column(String(20), nullable=False)
    lessee_status: Mapped[str] = mapped_column(String(20), nullable=False)
    confirm_by: Mapped[date] = mapped_column(Date, nullable=False)
    use_technical_mailbox: Mapped[bool] = mapped_column(Boolean, nullable=False)
    notification_email: Mapped[str] = mapped_column(String(320), nullable=False)
    application_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(40), nullable=False)
    request_status: Mapped[str | None] = mapped_column(String(40))
    last_request_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )


# Statuses of a counterparty in SEP (sep_counterparties.status).
COUNTERPARTY_CHECKING = "Проверяется"  # FindCounterparty on its way
COUNTERPARTY_REGISTERING = "Регистрируется"  # not in SEP: RegisterCounterparty on its way
COUNTERPARTY_FOUND = "Есть в СЭП"  # SEP had it already
COUNTERPARTY_REGISTERED = "Зарегистрирован"  # we registered it
COUNTERPARTY_ERROR = "Ошибка"
COUNTERPARTY_IN_SEP = (COUNTERPARTY_FOUND, COUNTERPARTY_REGISTERED)


class SepCounterparty(Base):
    """Контрагенты СЭП: a counterparty looked up in SEP by ИНН and registered there when missing,
    with the form's data as sent (from master data)."""

    __tablename__ = "sep_counterparties"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inn: Mapped[str] = mapped_column(String(12), nullable=False, unique=True)
    kpp: Mapped[str | None] = mapped_column(String(9))
    ogrn: Mapped[str] = mapped_column(String(15), nullable=False)
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    address: Mapped[str] = mapped_column(String(1000), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    organization_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    status: Mapped[str] = mapped_column(String(40), nullable=False)
    sep_id: Mapped[str | None] = mapped_column(String(64))
    in_sep_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    request_status: Mapped[str | None] = mapped_column(String(40))
    last_request_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class SepLeaseChange(Base):
    """Изменения лизинга: a termination, change of lessee (перенаём) or end of lease we submit to SEP
    for one or several vehicles, keyed by our document's number (``change_number``)."""

    __tablename__ = "sep_lease_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    change_number: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # Termination, LesseeChange, LeaseEnd
    organization_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    lessee_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    new_lessee_inn: Mapped[str | None] = mapped_column(String(12))
    document_name: Mapped[str] = mapped_column(String(500), nullable=False)
    document_date: Mapped[date] = mapped_column(Date, nullable=False)
    epts: Mapped[list[Any]] = mapped_column(nullable=False)
    confirm_by: Mapped[date] = mapped_column(Date, nullable=False)
    notification_email: Mapped[str] = mapped_column(String(320), nullable=False)
    application_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(40), nullable=False)
    # The parties as SEP last said: [{"role", "inn", "status"}].
    parties: Mapped[list[Any] | None] = mapped_column()
    request_status: Mapped[str | None] = mapped_column(String(40))
    last_request_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )


@register_gauge("obmen_sep_requests", "SEP requests not yet applied, per status", ("status",))
def _open_requests(session: Session) -> Iterable[Sample]:
    counts = dict(
        session.execute(
            select(SepRequest.status, func.count())
            .where(SepRequest.status.in_(OPEN_STATUSES))
            .group_by(SepRequest.status)
        ).all()
    )
    for status in OPEN_STATUSES:
        yield {"status": status}, counts.get(status, 0)


@register_gauge("obmen_sep_oldest_open_request_seconds", "Age of the oldest SEP request not yet applied")
def _oldest_open(session: Session) -> Iterable[Sample]:
    oldest = session.scalar(
        select(func.min(SepRequest.created_at)).where(SepRequest.status.in_(OPEN_STATUSES))
    )
    yield {}, (utcnow() - oldest).total_seconds() if oldest else 0.0


@register_gauge(
    "obmen_sep_poll_overdue_seconds",
    "How late the latest-overdue poll of a queued SEP request is (0: every poll on time)",
)
def _poll_overdue(session: Session) -> Iterable[Sample]:
    due = session.scalar(
        select(func.min(SepRequest.next_poll_at)).where(
            SepRequest.status == QUEUED, SepRequest.parked_at.is_(None), SepRequest.next_poll_at.is_not(None)
        )
    )
    yield {}, max(0.0, (utcnow() - due).total_seconds()) if due else 0.0

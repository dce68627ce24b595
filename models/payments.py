"""Payments and subscriber billing: payment orders, accruals, allocations, balances, CRM marks,
escalation deadlines and subscriber requests (seed 001)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, BigId, utcnow
from models.gauges import Sample, register_gauge
from models.steps import StepMixin

MONEY = Numeric(14, 2)
ZERO = Decimal("0.00")


class Payment(StepMixin, Base):
    """An incoming payment order (входящее платёжное поручение) as the bank or a payment agent reported it."""

    __tablename__ = "payments"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"posted", "unallocated"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The sender's idempotency key; payment-agent (OSMP) ones are stored as "osmp-<txn_id>".
    transaction_id: Mapped[str] = mapped_column(String(80), nullable=False, unique=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    inn: Mapped[str] = mapped_column(String(12), nullable=False, index=True)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="RUB")
    paid_at: Mapped[datetime] = mapped_column(nullable=False)
    purpose: Mapped[str] = mapped_column(Text, nullable=False, default="")
    payer_name: Mapped[str | None] = mapped_column(String(300))
    # SHA-256 of the validated content: a repeat with the same key and other content is a 409.
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="received")
    # Whose account it was posted to (a person may assign an unallocated payment to another ИНН).
    subscriber_inn: Mapped[str | None] = mapped_column(ForeignKey("subscribers.inn"))
    # The part not yet allocated to accruals: an advance, or all of an unallocated payment.
    remainder: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    posted_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        # The lists by status (unallocated ones wait for a person), newest first.
        Index("ix_payments_status_id", "status", "id"),
        Index(
            "ix_payments_advance",
            "subscriber_inn",
            "id",
            postgresql_where=text("remainder > 0 AND status = 'posted'"),
            sqlite_where=text("remainder > 0 AND status = 'posted'"),
        ),
    )


class Accrual(StepMixin, Base):
    """A monthly charge (начисление) of a subscriber's tariff."""

    __tablename__ = "accruals"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"paid"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_inn: Mapped[str] = mapped_column(ForeignKey("subscribers.inn"), nullable=False)
    period: Mapped[date] = mapped_column(Date, nullable=False)  # the first day of the month
    tariff: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    paid_amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=ZERO)
    # new (reminder process not started yet) -> unpaid -> paid; paid can come straight from new.
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="new")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column()
    workflow_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("subscriber_inn", "period"),
        Index(
            "ix_accruals_open",
            "subscriber_inn",
            "period",
            postgresql_where=text("status <> 'paid'"),
            sqlite_where=text("status <> 'paid'"),
        ),
    )

    @property
    def due(self) -> Decimal:
        return self.amount - self.paid_amount


class PaymentAllocation(Base):
    """Which part of which payment paid which accrual (разноска)."""

    __tablename__ = "payment_allocations"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), nullable=False, index=True)
    accrual_id: Mapped[int] = mapped_column(ForeignKey("accruals.id"), nullable=False, index=True)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    __table_args__ = (UniqueConstraint("payment_id", "accrual_id"),)


class SubscriberBalance(Base):
    """A subscriber's running balance; its row lock serialises everything that moves the balance."""

    __tablename__ = "subscriber_balances"
    inn: Mapped[str] = mapped_column(ForeignKey("subscribers.inn"), primary_key=True)
    debt: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=ZERO)
    advance: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=ZERO)
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), onupdate=func.now(), nullable=False
    )


class DealPaidMark(StepMixin, Base):
    """A Bitrix24 deal to move to «Оплачено» because a payment cleared the subscriber's debt."""

    __tablename__ = "crm_deal_marks"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"done", "superseded"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), nullable=False, unique=True)
    subscriber_inn: Mapped[str] = mapped_column(ForeignKey("subscribers.inn"), nullable=False)
    deal_id: Mapped[int] = mapped_column(nullable=False, index=True)
    # pending -> done; superseded when a newer accrual made the subscriber owe again first.
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    marked_at: Mapped[datetime | None] = mapped_column()


class BillingDeadline(StepMixin, Base):
    """An escalation step of an unpaid accrual, due at ``due_at`` (a row, never a countdown)."""

    __tablename__ = "billing_deadlines"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"done", "cancelled"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    accrual_id: Mapped[int] = mapped_column(ForeignKey("accruals.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    due_at: Mapped[datetime] = mapped_column(nullable=False)
    # waiting -> due (billing.escalate found it due) -> done | cancelled (paid meanwhile)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="waiting")
    fired_at: Mapped[datetime | None] = mapped_column()
    # The Bitrix24 task id or workflow id it created.
    bitrix24_ref: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("accrual_id", "kind"),
        Index(
            "ix_billing_deadlines_waiting",
            "due_at",
            postgresql_where=text("status = 'waiting'"),
            sqlite_where=text("status = 'waiting'"),
        ),
    )


class SubscriberRequest(StepMixin, Base):
    """A subscriber's request from 1C (подключение, отключение, смена тарифа, or a question, a
    complaint, anything else) and its Bitrix24 process or task."""

    __tablename__ = "subscriber_requests"
    # awaiting_payment waits for a payment or a person, not for a step.
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"process_started", "awaiting_payment", "closed"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # 1C's request number
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    subscriber_inn: Mapped[str] = mapped_column(String(12), nullable=False, index=True)
    subscriber_name: Mapped[str | None] = mapped_column(String(500))
    tariff: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    # Where «вы подключены» goes for a new subscriber (a known one's phone is in subscribers).
    phone: Mapped[str | None] = mapped_column(String(32))
    # new -> process_started -> closed; a disconnection of a subscriber in debt waits first:
    # awaiting_payment -> new (the debt paid, or a person's override).
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="new")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    deal_id: Mapped[int | None] = mapped_column()
    workflow_id: Mapped[str | None] = mapped_column(String(64))
    # The department's Bitrix24 task of a request of another kind (question, complaint ...).
    bitrix24_task_id: Mapped[str | None] = mapped_column(String(64))
    # Who let a disconnection go ahead despite the debt, and why.
    override_by: Mapped[str | None] = mapped_column(String(200))
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()


def insert_ignoring_duplicates(session: Session, model: type[Base]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the dialect of the session (Postgres; SQLite in the demo)."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    return insert(model).on_conflict_do_nothing()


@register_gauge("obmen_payments", "Payments per status", ("status",))
def _payments(session: Session) -> Iterable[Sample]:
    for status, count in session.execute(select(Payment.status, func.count()).group_by(Payment.status)):
        yield {"status": status}, count


@register_gauge("obmen_crm_deal_marks_pending", "Deals still to be moved to «Оплачено» in Bitrix24")
def _marks_pending(session: Session) -> Iterable[Sample]:
    yield {}, session.scalar(select(func.count()).where(DealPaidMark.status == "pending")) or 0


@register_gauge("obmen_billing_deadlines_overdue", "Escalation deadlines past due and not yet fired")
def _deadlines_overdue(session: Session) -> Iterable[Sample]:
    query = select(func.count()).where(
        BillingDeadline.status == "waiting", BillingDeadline.due_at <= utcnow()
    )
    yield {}, session.scalar(query) or 0

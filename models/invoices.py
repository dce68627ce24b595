"""Registers of the invoice flow (seed 004): invoices (счета на оплату) keyed by 1C's id, every
version of each, their files kept once per content, the site's requests for an invoice, one-time
download links, and how far 1C's change list has been read.

An invoice row holds the current state (the latest version's data, the payment status and paid
amount); ``invoice_versions`` holds every version of the document (data or file changed), each with
its content hash; an identical re-send makes no version. Payments are not versions: they change
only ``payment_status`` and ``paid_amount``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime
from models.steps import StepMixin

MONEY = Numeric(14, 2)

# --- payment statuses (статусы оплаты) ----------------------------------------------------------
UNPAID = "unpaid"  # «не оплачен»
PARTLY_PAID = "partly_paid"  # «оплачен частично»
PAID = "paid"  # «оплачен»
CANCELLED = "cancelled"  # «отменён»
PAYMENT_STATUSES = (UNPAID, PARTLY_PAID, PAID, CANCELLED)
PAYMENT_LABELS = {
    UNPAID: "не оплачен",
    PARTLY_PAID: "оплачен частично",
    PAID: "оплачен",
    CANCELLED: "отменён",
}

# --- invoice request statuses -------------------------------------------------------------------
REQUEST_PENDING = "pending"  # the step asks 1C
REQUEST_DONE = "done"  # the invoice is in the register
REQUEST_REJECTED = "rejected"  # 1C's answer broke the contract (``error_field`` names where)

# --- invoice update statuses (a document to fetch from 1C after the change list said it changed) ---
UPDATE_PENDING = "pending"
UPDATE_APPLIED = "applied"
UPDATE_REJECTED = "rejected"

# --- statuses of a bank payment whose purpose names an invoice ----------------------------------
MATCH_PENDING = "pending"  # the step matches it
MATCH_MATCHED = "matched"  # counted towards ``invoice_id``
MATCH_AMBIGUOUS = "ambiguous"  # several invoices (or dates) named, or several fit: a person decides
MATCH_UNMATCHED = "unmatched"  # the payer has no invoice with that number: a person decides
MATCH_STATUSES = (MATCH_PENDING, MATCH_MATCHED, MATCH_AMBIGUOUS, MATCH_UNMATCHED)
MATCH_FOR_A_PERSON = (MATCH_AMBIGUOUS, MATCH_UNMATCHED)


class InvoiceFile(Base):
    """A file's bytes, once per content however many versions or invoices point at it."""

    __tablename__ = "invoice_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)


class Invoice(Base):
    """Реестр счетов: one invoice as it is now, keyed by 1C's id («Ид»)."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    onec_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    number: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # The part of the number payers keep (``0000-000123`` → ``123``): matching a payment's purpose.
    number_key: Mapped[str] = mapped_column(String(64), nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    customer_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    order_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    purpose: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # What the site shows: the higher of what 1C says and what bank payments matched here add up to.
    payment_status: Mapped[str] = mapped_column(String(12), nullable=False, default=UNPAID)
    paid_amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0.00"))
    # What 1C said last (its change list or document), and the sum of bank payments matched here.
    onec_payment_status: Mapped[str] = mapped_column(
        String(12), nullable=False, default=UNPAID, server_default=UNPAID
    )
    onec_paid_amount: Mapped[Decimal] = mapped_column(
        MONEY, nullable=False, default=Decimal("0.00"), server_default="0"
    )
    matched_amount: Mapped[Decimal] = mapped_column(
        MONEY, nullable=False, default=Decimal("0.00"), server_default="0"
    )
    current_version: Mapped[int] = mapped_column(Integer, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    file_sha256: Mapped[str] = mapped_column(ForeignKey("invoice_files.sha256"), nullable=False)
    file_name: Mapped[str | None] = mapped_column(String(255))
    onec_data_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint(
            "payment_status IN ('unpaid', 'partly_paid', 'paid', 'cancelled')", name="payment_status"
        ),
        # A customer's list, newest first, keyset-paged on (issued_at, id): one index range scan.
        Index("ix_invoices_customer_list", "customer_inn", issued_at.desc(), id.desc()),
        # Matching a bank payment: the payer's ИНН and the number its purpose names.
        Index("ix_invoices_customer_number_key", "customer_inn", "number_key"),
    )


class InvoiceVersion(Base):
    """Every version of an invoice's document: what 1C sent, the file, and the hash of both."""

    __tablename__ = "invoice_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    number: Mapped[str] = mapped_column(String(64), nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    customer_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    order_id: Mapped[str] = mapped_column(String(64), nullable=False)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    purpose: Mapped[str] = mapped_column(Text, nullable=False, default="")
    file_sha256: Mapped[str] = mapped_column(ForeignKey("invoice_files.sha256"), nullable=False, index=True)
    file_name: Mapped[str | None] = mapped_column(String(255))
    onec_data_version: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (UniqueConstraint("invoice_id", "version"),)


class InvoiceRequest(StepMixin, Base):
    """A request for an invoice for an order and amount, once per business key (order, amount,
    customer): ``pending`` (the step asks 1C) → ``done`` (``invoice_id`` set) or ``rejected``
    (1C's answer broke the contract; ``error_field`` names where). ``request_key`` goes to 1C as
    «ИдЗапроса»."""

    __tablename__ = "invoice_requests"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({REQUEST_DONE, REQUEST_REJECTED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_key: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    order_id: Mapped[str] = mapped_column(String(64), nullable=False)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    customer_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    source: Mapped[str] = mapped_column(String(40), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default=REQUEST_PENDING)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    error_field: Mapped[str | None] = mapped_column(String(40))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (
        UniqueConstraint("order_id", "amount", "customer_inn"),
        # The sweeper reads only pending, unparked rows by age: small however many are done.
        Index(
            "ix_invoice_requests_pending",
            "updated_at",
            postgresql_where=text("status = 'pending' AND parked_at IS NULL"),
            sqlite_where=text("status = 'pending' AND parked_at IS NULL"),
        ),
    )


class InvoiceDownloadLink(Base):
    """A one-time link to an invoice's file (the seed's "issued once at checkout"): only the SHA-256
    of its token is kept; ``used_at`` is set by the one download it allows."""

    __tablename__ = "invoice_download_links"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    invoice_id: Mapped[int] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False, index=True
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)


class InvoiceChangeCursor(Base):
    """How far 1C's change list has been applied (``onec_changes``); moved in the transaction that
    applies the page, so a lost poll repeats from the last applied cursor."""

    __tablename__ = "invoice_change_cursors"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class InvoiceUpdate(StepMixin, Base):
    """A document 1C's change list says changed (or obmen does not know yet), to fetch and apply:
    ``pending`` (the step fetches it) → ``applied`` or ``rejected`` (``error_field`` names where).
    ``key`` is 1C's id with its data version (or, without one, the change list's cursor), so a page
    read twice makes one update."""

    __tablename__ = "invoice_updates"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({UPDATE_APPLIED, UPDATE_REJECTED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), nullable=False, unique=True)
    onec_id: Mapped[str] = mapped_column(String(64), nullable=False)
    data_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), nullable=False, default=UPDATE_PENDING)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    version: Mapped[int | None] = mapped_column(Integer)
    error_field: Mapped[str | None] = mapped_column(String(40))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (
        Index(
            "ix_invoice_updates_pending",
            "updated_at",
            postgresql_where=text("status = 'pending' AND parked_at IS NULL"),
            sqlite_where=text("status = 'pending' AND parked_at IS NULL"),
        ),
    )


class InvoicePayment(StepMixin, Base):
    """A bank payment (``payments``) whose purpose names an invoice: ``pending`` (the step matches
    it) → ``matched`` (its amount counts towards ``invoice_id``), or ``ambiguous`` / ``unmatched``
    for a person (``note`` says why), who may assign it to an invoice."""

    __tablename__ = "invoice_payments"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({MATCH_MATCHED, MATCH_AMBIGUOUS, MATCH_UNMATCHED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), nullable=False, unique=True)
    payer_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    purpose: Mapped[str] = mapped_column(Text, nullable=False)
    # The invoice numbers the purpose names, as written, comma-separated.
    named: Mapped[str] = mapped_column(String(300), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default=MATCH_PENDING)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    matched_by: Mapped[str | None] = mapped_column(String(60))
    matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'matched', 'ambiguous', 'unmatched')", name="invoice_payment_status"
        ),
        # The work list of payments a person must decide: small however many matched.
        Index(
            "ix_invoice_payments_for_a_person",
            "id",
            postgresql_where=text("status IN ('ambiguous', 'unmatched')"),
            sqlite_where=text("status IN ('ambiguous', 'unmatched')"),
        ),
    )

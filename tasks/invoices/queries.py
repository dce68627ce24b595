"""Reading the invoice register: a customer's list (keyset-paged), one invoice with its history, a
file, a request's state, the bank payments waiting for a person.

Plain functions over a session returning typed rows (pydantic models: money serialises as a decimal
string); the gateway, the CLI and the web console print the same rows.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from models.invoices import (
    MATCH_FOR_A_PERSON,
    PAYMENT_LABELS,
    Invoice,
    InvoiceFile,
    InvoicePayment,
    InvoiceRequest,
    InvoiceVersion,
)
from tasks.invoices.register import InvoiceNotInRegister

MAX_LIMIT = 200


class Row(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class InvoiceRow(Row):
    id: int
    onec_id: str
    number: str
    issued_at: datetime
    customer_inn: str
    order_id: str
    amount: Decimal
    purpose: str
    payment_status: str
    payment_label: str
    paid_amount: Decimal
    version: int
    file_name: str | None
    file_sha256: str


class VersionRow(Row):
    version: int
    number: str
    issued_at: datetime
    order_id: str
    amount: Decimal
    purpose: str
    file_name: str | None
    file_sha256: str
    content_hash: str
    received_at: datetime


class PaymentRow(Row):
    id: int
    payment_id: int
    payer_inn: str
    amount: Decimal
    purpose: str
    named: str
    status: str
    invoice_id: int | None
    note: str | None
    matched_by: str | None
    matched_at: datetime | None


class InvoiceDetail(InvoiceRow):
    onec_paid_amount: Decimal
    bank_paid_amount: Decimal
    versions: list[VersionRow]
    payments: list[PaymentRow]


class InvoicePage(Row):
    invoices: list[InvoiceRow]
    # Pass as ``after`` for the next page; None on the last one.
    next: str | None


class RequestRow(Row):
    id: int
    order_id: str
    amount: Decimal
    customer_inn: str
    source: str
    status: str
    error_field: str | None
    error: str | None
    parked: bool
    invoice: InvoiceRow | None


class FileRow(Row):
    invoice_id: int
    number: str
    version: int
    file_name: str | None
    sha256: str
    content: bytes


class BadCursor(ValueError):
    pass


def invoice_row(invoice: Invoice) -> InvoiceRow:
    return InvoiceRow(
        id=invoice.id,
        onec_id=invoice.onec_id,
        number=invoice.number,
        issued_at=invoice.issued_at,
        customer_inn=invoice.customer_inn,
        order_id=invoice.order_id,
        amount=invoice.amount,
        purpose=invoice.purpose,
        payment_status=invoice.payment_status,
        payment_label=PAYMENT_LABELS[invoice.payment_status],
        paid_amount=invoice.paid_amount,
        version=invoice.current_version,
        file_name=invoice.file_name,
        file_sha256=invoice.file_sha256,
    )


def list_invoices(
    session: Session,
    customer_inn: str,
    *,
    status: str | None = None,
    order_id: str | None = None,
    limit: int = 50,
    after: str | None = None,
    offset: int = 0,
) -> InvoicePage:
    """A customer's invoices, newest first: one index range scan of ``(customer_inn, issued_at DESC,
    id DESC)`` per page, however deep (keyset: ``after``; ``offset`` skips rows after it, for the
    command line's paging options)."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Invoice).where(Invoice.customer_inn == customer_inn)
    if status is not None:
        query = query.where(Invoice.payment_status == status)
    if order_id is not None:
        query = query.where(Invoice.order_id == order_id)
    if after is not None:
        issued_at, last_id = decode_cursor(after)
        query = query.where(tuple_(Invoice.issued_at, Invoice.id) < tuple_(issued_at, last_id))
    rows = list(
        session.scalars(
            query.order_by(Invoice.issued_at.desc(), Invoice.id.desc())
            .offset(max(0, offset))
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return InvoicePage(
        invoices=[invoice_row(r) for r in rows],
        next=encode_cursor(rows[-1].issued_at, rows[-1].id) if more else None,
    )


def invoice_detail(session: Session, invoice_id: int) -> InvoiceDetail:
    """One invoice with every version of it and the bank payments matched to it."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise InvoiceNotInRegister(f"no invoice {invoice_id} in the register")
    versions = session.scalars(
        select(InvoiceVersion).where(InvoiceVersion.invoice_id == invoice_id).order_by(InvoiceVersion.version)
    )
    payments = session.scalars(
        select(InvoicePayment).where(InvoicePayment.invoice_id == invoice_id).order_by(InvoicePayment.id)
    )
    return InvoiceDetail(
        **invoice_row(invoice).model_dump(),
        onec_paid_amount=invoice.onec_paid_amount,
        bank_paid_amount=invoice.matched_amount,
        versions=[VersionRow.model_validate(v) for v in versions],
        payments=[PaymentRow.model_validate(p) for p in payments],
    )


def invoice_file(session: Session, invoice_id: int, version: int | None = None) -> FileRow:
    """The file of the invoice's latest version (or of ``version``): served from the register."""
    found = session.execute(
        select(InvoiceVersion, InvoiceFile.content)
        .join(InvoiceFile, InvoiceFile.sha256 == InvoiceVersion.file_sha256)
        .join(Invoice, Invoice.id == InvoiceVersion.invoice_id)
        .where(
            InvoiceVersion.invoice_id == invoice_id,
            InvoiceVersion.version == (version if version is not None else Invoice.current_version),
        )
    ).one_or_none()
    if found is None:
        what = (
            f"version {version} of invoice {invoice_id}" if version is not None else f"invoice {invoice_id}"
        )
        raise InvoiceNotInRegister(f"no {what} in the register")
    row, content = found
    return FileRow(
        invoice_id=invoice_id,
        number=row.number,
        version=row.version,
        file_name=row.file_name,
        sha256=row.file_sha256,
        content=content,
    )


def request_state(session: Session, request_id: int) -> RequestRow:
    request = session.get(InvoiceRequest, request_id)
    if request is None:
        raise LookupError(f"no invoice request {request_id}")
    invoice = session.get(Invoice, request.invoice_id) if request.invoice_id is not None else None
    return RequestRow(
        id=request.id,
        order_id=request.order_id,
        amount=request.amount,
        customer_inn=request.customer_inn,
        source=request.source,
        status=request.status,
        error_field=request.error_field,
        error=request.last_error,
        parked=request.parked_at is not None,
        invoice=invoice_row(invoice) if invoice is not None else None,
    )


def payments_for_a_person(session: Session, limit: int = 100) -> list[PaymentRow]:
    """Bank payments naming an invoice that obmen could not match alone (ambiguous, unmatched)."""
    rows = session.scalars(
        select(InvoicePayment)
        .where(InvoicePayment.status.in_(MATCH_FOR_A_PERSON))
        .order_by(InvoicePayment.id)
        .limit(max(1, min(limit, MAX_LIMIT)))
    )
    return [PaymentRow.model_validate(r) for r in rows]


def encode_cursor(issued_at: datetime, invoice_id: int) -> str:
    return base64.urlsafe_b64encode(f"{issued_at.isoformat()}|{invoice_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, invoice_id = raw.partition("|")
        issued_at = datetime.fromisoformat(moment)
        if issued_at.tzinfo is None:
            raise ValueError("no zone")
        return issued_at, int(invoice_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor(f"{cursor!r} is not a page cursor of this list") from exc

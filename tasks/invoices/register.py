"""The invoice register: applying what 1C sends to it, and recording the site's requests.

A 1C document is applied in a savepoint of the caller's transaction: the invoice, its new version
and its file go in together or not at all, and a typed error leaves the transaction usable for
recording that error. A new version is made only when the document's content changed (its hash);
an identical re-send changes nothing but, where 1C says so, the payment status. Files are stored
once per SHA-256. Rows are locked by 1C's id before they change, so two workers applying the same
invoice at once make one version, not two.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from integrations.onec.invoices import Invoice as Document
from integrations.onec.invoices import InvoiceChange
from integrations.onec.purpose import number_key
from models.db import dialect_insert, insert_ignoring_conflicts
from models.invoices import (
    REQUEST_PENDING,
    Invoice,
    InvoiceChangeCursor,
    InvoiceFile,
    InvoiceRequest,
    InvoiceVersion,
)

ONEC_CHANGES = "onec_changes"


class RegisterConflict(ValueError):
    """1C's document contradicts the register; ``field`` names the key («Номер»)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"«{field}»: {message}")
        self.field = field


class InvoiceRenumbered(RegisterConflict):
    """An invoice the register holds arrived with another number."""


class NumberTaken(RegisterConflict):
    """The number belongs to another invoice (another 1C id) in the register."""


class InvoiceNotInRegister(LookupError):
    pass


@dataclass(frozen=True)
class Applied:
    invoice_id: int
    version: int
    created: bool  # the invoice is new to the register
    new_version: bool  # a version was written (always when created)
    payment_changed: bool


class ChangeOutcome(StrEnum):
    FETCH = "fetch"  # unknown invoice, or its document changed: get it from 1C and apply it
    APPLIED = "applied"  # the payment status or amount changed
    UNCHANGED = "unchanged"


def content_hash(document: Document) -> str:
    """What makes a version: the document's data and file (not its payment, not 1C's DataVersion)."""
    canonical = {
        "number": document.number,
        "issued_at": document.issued_at.isoformat(),
        "customer_inn": document.customer_inn,
        "order_id": document.order_id,
        "amount": f"{document.amount:.2f}",
        "purpose": document.purpose,
        "file_sha256": document.file.sha256,
        "file_name": document.file.name,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def apply_document(session: Session, document: Document) -> Applied:
    """Apply one invoice document from 1C: the invoice, a version if its content changed, its file.

    :class:`InvoiceRenumbered` or :class:`NumberTaken` (naming «Номер») when it contradicts the
    register; then nothing of it is written.
    """
    try:
        with session.begin_nested():
            return _apply(session, document)
    except IntegrityError:
        # Another transaction wrote this id or this number meanwhile and has committed (the unique
        # index made us wait for it): its row decides now.
        with session.begin_nested():
            return _apply(session, document)


def apply_change(session: Session, change: InvoiceChange) -> ChangeOutcome:
    """Apply a change-list entry: its payment, if the register holds the same document; else say
    the document must be fetched (unknown invoice, or 1C's data version differs from ours)."""
    row = session.scalars(
        select(Invoice).where(Invoice.onec_id == change.onec_id).with_for_update()
    ).one_or_none()
    if row is None or change.data_version is None or row.onec_data_version != change.data_version:
        return ChangeOutcome.FETCH
    if row.number != change.number:
        raise InvoiceRenumbered("Номер", _renumbered(row, change.number))
    changed = _set_payment(row, change.payment_status, change.paid_amount)
    return ChangeOutcome.APPLIED if changed else ChangeOutcome.UNCHANGED


def apply_payment(session: Session, onec_id: str, status: str, paid_amount: Decimal) -> bool:
    """Set an invoice's payment status and paid amount; whether anything changed."""
    row = session.scalars(select(Invoice).where(Invoice.onec_id == onec_id).with_for_update()).one_or_none()
    if row is None:
        raise InvoiceNotInRegister(f"no invoice with 1C id {onec_id!r} in the register")
    return _set_payment(row, status, paid_amount)


def store_file(session: Session, content: bytes) -> str:
    """Keep ``content`` once; its SHA-256. A file already kept is not sent to the database again."""
    sha = hashlib.sha256(content).hexdigest()
    if session.scalar(select(InvoiceFile.sha256).where(InvoiceFile.sha256 == sha)) is None:
        session.execute(
            insert_ignoring_conflicts(session, InvoiceFile).values(
                sha256=sha, size=len(content), content=content
            )
        )
    return sha


def record_request(
    session: Session, *, order_id: str, amount: Decimal, customer_inn: str, source: str
) -> tuple[InvoiceRequest, bool]:
    """The request for this order, amount and customer: made once, found every later time (and
    whether this call made it)."""
    amount = amount.quantize(Decimal("0.01"))
    made = session.scalar(
        insert_ignoring_conflicts(session, InvoiceRequest)
        .values(
            request_key=str(uuid.uuid4()),
            order_id=order_id,
            amount=amount,
            customer_inn=customer_inn,
            source=source,
            status=REQUEST_PENDING,
        )
        .returning(InvoiceRequest.id)
    )
    row = session.scalars(
        select(InvoiceRequest).where(
            InvoiceRequest.order_id == order_id,
            InvoiceRequest.amount == amount,
            InvoiceRequest.customer_inn == customer_inn,
        )
    ).one()
    return row, made is not None


def read_cursor(session: Session, name: str = ONEC_CHANGES) -> str | None:
    return session.scalar(select(InvoiceChangeCursor.cursor).where(InvoiceChangeCursor.name == name))


def advance_cursor(session: Session, cursor: str, name: str = ONEC_CHANGES) -> None:
    """Move the change-list cursor, in the transaction that applied the page it ends."""
    statement = dialect_insert(session, InvoiceChangeCursor).values(name=name, cursor=cursor)
    session.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"cursor": cursor}))


# --- the work -----------------------------------------------------------------------------------
def _apply(session: Session, document: Document) -> Applied:
    row = session.scalars(
        select(Invoice).where(Invoice.onec_id == document.onec_id).with_for_update()
    ).one_or_none()
    if row is None:
        return _create(session, document)
    if row.number != document.number:
        raise InvoiceRenumbered("Номер", _renumbered(row, document.number))
    payment_changed = _set_payment(row, document.payment_status, document.paid_amount)
    digest = content_hash(document)
    if digest == row.content_hash:
        row.onec_data_version = document.data_version
        return Applied(row.id, row.current_version, False, False, payment_changed)
    row.current_version += 1
    _write_version(session, row, document, digest)
    return Applied(row.id, row.current_version, False, True, payment_changed)


def _create(session: Session, document: Document) -> Applied:
    holder = session.scalar(select(Invoice.onec_id).where(Invoice.number == document.number))
    if holder is not None:
        raise NumberTaken(
            "Номер",
            f"number {document.number!r} belongs to the invoice with 1C id {holder!r}, "
            f"not to {document.onec_id!r}",
        )
    row = Invoice(
        onec_id=document.onec_id,
        number=document.number,
        payment_status=document.payment_status.value,
        paid_amount=document.paid_amount,
        current_version=1,
    )
    _write_version(session, row, document, content_hash(document))
    return Applied(row.id, 1, True, True, False)


def _write_version(session: Session, row: Invoice, document: Document, digest: str) -> None:
    sha = store_file(session, document.file.content)
    row.number_key = number_key(document.number)
    row.issued_at = document.issued_at
    row.customer_inn = document.customer_inn
    row.order_id = document.order_id
    row.amount = document.amount
    row.purpose = document.purpose
    row.content_hash = digest
    row.file_sha256 = sha
    row.file_name = document.file.name
    row.onec_data_version = document.data_version
    session.add(row)
    session.flush()
    session.add(
        InvoiceVersion(
            invoice_id=row.id,
            version=row.current_version,
            content_hash=digest,
            number=document.number,
            issued_at=document.issued_at,
            customer_inn=document.customer_inn,
            order_id=document.order_id,
            amount=document.amount,
            purpose=document.purpose,
            file_sha256=sha,
            file_name=document.file.name,
            onec_data_version=document.data_version,
        )
    )
    session.flush()


def _set_payment(row: Invoice, status: str, paid_amount: Decimal) -> bool:
    if row.payment_status == status and row.paid_amount == paid_amount:
        return False
    row.payment_status = str(status)
    row.paid_amount = paid_amount
    return True


def _renumbered(row: Invoice, number: str) -> str:
    return f"the invoice with 1C id {row.onec_id!r} arrived as {number!r}; the register holds it as {row.number!r}"

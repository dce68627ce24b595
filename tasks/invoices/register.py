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
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from integrations.onec.invoices import Invoice as Document
from integrations.onec.invoices import InvoiceChange
from integrations.onec.purpose import number_key
from models.db import db_now, dialect_insert, insert_ignoring_conflicts
from models.invoices import (
    CANCELLED,
    PAID,
    PARTLY_PAID,
    REQUEST_DONE,
    REQUEST_PENDING,
    REQUEST_REJECTED,
    UNPAID,
    Invoice,
    InvoiceChangeCursor,
    InvoiceDownloadLink,
    InvoiceFile,
    InvoiceRequest,
    InvoiceUpdate,
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


class LinkUnknown(LookupError):
    """No such one-time link (HTTP 404)."""


class LinkGone(LookupError):
    """The one-time link was used already or has expired (HTTP 410)."""


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


def invoice_for_order(session: Session, *, order_id: str, amount: Decimal, customer_inn: str) -> int | None:
    """The register's invoice for this order, amount and customer (the newest, if not cancelled)."""
    return session.scalar(
        select(Invoice.id)
        .where(
            Invoice.order_id == order_id,
            Invoice.amount == amount.quantize(Decimal("0.01")),
            Invoice.customer_inn == customer_inn,
            Invoice.payment_status != CANCELLED,
        )
        .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
        .limit(1)
    )


def finish_request(session: Session, request: InvoiceRequest, invoice_id: int) -> None:
    request.status = REQUEST_DONE
    request.invoice_id = invoice_id
    request.error_field = None
    request.done_at = db_now(session)


def reject(row: InvoiceRequest | InvoiceUpdate, field: str, error: str) -> None:
    """1C's answer broke the contract or contradicts the register: say where, write nothing else."""
    row.status = REQUEST_REJECTED
    row.error_field = field[:40]
    row.record_error(error)


def reopen_request(request: InvoiceRequest) -> None:
    """The site asks again for a rejected request: ask 1C again (it may have fixed the invoice)."""
    request.status = REQUEST_PENDING
    request.error_field = None
    request.last_error = None
    request.attempts = 0
    request.parked_at = None


def issue_link(session: Session, invoice_id: int, ttl_s: int) -> str:
    """A one-time link to the invoice's current file: its token (only its SHA-256 is kept)."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise InvoiceNotInRegister(f"no invoice {invoice_id} in the register")
    token = secrets.token_urlsafe(24)
    session.add(
        InvoiceDownloadLink(
            token_hash=_token_hash(token),
            invoice_id=invoice_id,
            version=invoice.current_version,
            expires_at=db_now(session) + timedelta(seconds=ttl_s),
        )
    )
    session.flush()
    return token


def use_link(session: Session, token: str) -> tuple[int, int]:
    """Spend a one-time link: the invoice id and version it gives, once. One statement marks it
    used, so of two downloads at once exactly one gets the file; every later one :class:`LinkGone`."""
    digest = _token_hash(token)
    now = db_now(session)
    spent = session.execute(
        update(InvoiceDownloadLink)
        .where(
            InvoiceDownloadLink.token_hash == digest,
            InvoiceDownloadLink.used_at.is_(None),
            or_(InvoiceDownloadLink.expires_at.is_(None), InvoiceDownloadLink.expires_at > now),
        )
        .values(used_at=now)
        .returning(InvoiceDownloadLink.invoice_id, InvoiceDownloadLink.version)
    ).one_or_none()
    if spent is not None:
        return spent.invoice_id, spent.version
    if session.scalar(select(InvoiceDownloadLink.id).where(InvoiceDownloadLink.token_hash == digest)) is None:
        raise LinkUnknown("no such download link")
    raise LinkGone("this download link was used already or has expired")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_cursor(session: Session, name: str = ONEC_CHANGES) -> str | None:
    return session.scalar(select(InvoiceChangeCursor.cursor).where(InvoiceChangeCursor.name == name))


def claim_cursor(session: Session, expected: str | None, name: str = ONEC_CHANGES) -> bool:
    """Lock the cursor row; whether it still is ``expected`` (else another poll applied this page)."""
    session.execute(insert_ignoring_conflicts(session, InvoiceChangeCursor).values(name=name, cursor=None))
    held = session.scalar(
        select(InvoiceChangeCursor.cursor).where(InvoiceChangeCursor.name == name).with_for_update()
    )
    return held == expected


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
    digest = content_hash(document)
    new_version = digest != row.content_hash
    if new_version:
        row.current_version += 1
        _write_version(session, row, document, digest)  # a corrected amount counts in the payment below
    else:
        row.onec_data_version = document.data_version
    payment_changed = _set_payment(row, document.payment_status, document.paid_amount)
    return Applied(row.id, row.current_version, False, new_version, payment_changed)


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
        onec_payment_status=document.payment_status.value,
        onec_paid_amount=document.paid_amount,
        matched_amount=Decimal("0.00"),
        current_version=1,
    )
    _write_version(session, row, document, content_hash(document))
    settle(row)
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
    """Record what 1C says of the payment; whether what the site shows changed."""
    row.onec_payment_status = str(status)
    row.onec_paid_amount = paid_amount
    return settle(row)


_RANK = {UNPAID: 0, PARTLY_PAID: 1, PAID: 2}


def settle(row: Invoice) -> bool:
    """What the site shows, from 1C's word and the bank payments matched here; whether it changed.

    Both sources see the same money (1C books the same bank statement), so the paid amount is the
    higher of the two, never their sum; the status is the further along of 1C's and the one the
    matched payments make. 1C's «Отменён» stands whatever was paid (the money shows beside it).
    """
    before = (row.payment_status, row.paid_amount)
    paid = max(row.onec_paid_amount, row.matched_amount)
    if row.onec_payment_status == CANCELLED:
        status = CANCELLED
    else:
        matched = row.matched_amount
        by_bank = PAID if matched >= row.amount else PARTLY_PAID if matched > 0 else UNPAID
        status = max(row.onec_payment_status, by_bank, key=lambda s: _RANK[s])
    row.payment_status, row.paid_amount = status, paid
    return before != (status, paid)


def count_bank_payment(row: Invoice, amount: Decimal) -> bool:
    """Add a bank payment matched to this (locked) invoice; whether what the site shows changed."""
    row.matched_amount += amount
    return settle(row)


def _renumbered(row: Invoice, number: str) -> str:
    return f"the invoice with 1C id {row.onec_id!r} arrived as {number!r}; the register holds it as {row.number!r}"

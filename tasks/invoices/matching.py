"""Bank payments that name an invoice: matched to it (paid / partly paid) or left for a person.

``payments.post`` calls :func:`note_payment` for every payment it posts: a purpose that names an
invoice («Оплата по счету № 123 от 01.12.2026», «по сч. 123», «счёт №123», «по сч 123») becomes an
``invoice_payments`` row and the step ``invoices.match_payment``, in the posting's transaction. The
step finds the invoice by the payer's ИНН and the number's key (``0000-000123`` is paid as «123»):

* exactly one invoice fits → ``matched``: its amount counts towards the invoice (paid, or partly);
* the purpose names several invoices, or one number with two dates, or several invoices fit, or the
  one that fits has another date → ``ambiguous``;
* none of the payer's invoices has that number → ``unmatched``.

The last two wait for a person (``GET /invoices/payments``, ``obmen invoices payments``), who may
assign the payment to an invoice (:func:`assign_payment`); ``note`` says why it waits.
"""

from __future__ import annotations

from datetime import date

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.onec.invoices import MSK
from integrations.onec.purpose import InvoiceReference, read_purpose
from models.db import db_now, insert_ignoring_conflicts
from models.invoices import (
    MATCH_AMBIGUOUS,
    MATCH_FOR_A_PERSON,
    MATCH_MATCHED,
    MATCH_PENDING,
    MATCH_UNMATCHED,
    Invoice,
    InvoicePayment,
)
from models.payments import Payment
from tasks.invoices.chain import MATCH_PAYMENT
from tasks.invoices.register import InvoiceNotInRegister, count_bank_payment
from tasks.machinery.outbox import enqueue

log = structlog.get_logger(__name__)

NAMED_LIMIT = 300


class NotAssignable(LookupError):
    pass


def note_payment(session: Session, payment: Payment) -> int | None:
    """If the payment's purpose names an invoice: its ``invoice_payments`` row and the matching step
    (once per payment, however often it is posted); the row's id, else None."""
    reading = read_purpose(payment.purpose)
    if not reading.references:
        return None
    named = ", ".join(r.number for r in reading.references)[:NAMED_LIMIT]
    made = session.scalar(
        insert_ignoring_conflicts(session, InvoicePayment)
        .values(
            payment_id=payment.id,
            payer_inn=payment.inn,
            amount=payment.amount,
            purpose=payment.purpose,
            named=named,
            status=MATCH_PENDING,
        )
        .returning(InvoicePayment.id)
    )
    if made is not None:
        enqueue(session, MATCH_PAYMENT, {"id": made}, business_key=f"invoice_payments:{payment.id}")
    return made


def match(session: Session, row: InvoicePayment) -> None:
    """Match one payment to the invoice its purpose names, or say why a person must."""
    reading = read_purpose(row.purpose)
    reference = reading.single
    if reference is None:
        _for_a_person(row, MATCH_AMBIGUOUS, f"the purpose names {row.named}: which invoice is it?")
        return
    found = _candidates(session, row.payer_inn, reference)
    if len(found) == 1 and _dated(found[0], reference):
        _count(session, row, found[0].id, by="obmen")
    elif len(found) == 1:
        _for_a_person(
            row,
            MATCH_AMBIGUOUS,
            f"invoice № {found[0].number} is of {_day(found[0]):%d.%m.%Y}, the purpose says "
            f"{reference.date:%d.%m.%Y}",
        )
    elif found:
        numbers = ", ".join(f"№ {i.number} of {_day(i):%d.%m.%Y}" for i in found[:5])
        _for_a_person(
            row, MATCH_AMBIGUOUS, f"several invoices of the payer fit «{reference.number}»: {numbers}"
        )
    else:
        _for_a_person(
            row,
            MATCH_UNMATCHED,
            f"the payer (ИНН {row.payer_inn}) has no invoice numbered «{reference.number}» in the register",
        )


def assign_payment(session: Session, match_id: int, invoice_id: int, *, by: str) -> InvoicePayment:
    """A person decided which invoice a waiting payment pays: count it there."""
    row = session.get(InvoicePayment, match_id, with_for_update=True)
    if row is None or row.status not in MATCH_FOR_A_PERSON:
        raise NotAssignable(f"invoice payment {match_id} is not waiting for a person")
    if session.get(Invoice, invoice_id) is None:
        raise InvoiceNotInRegister(f"no invoice {invoice_id} in the register")
    _count(session, row, invoice_id, by=by)
    return row


def _candidates(session: Session, payer_inn: str, reference: InvoiceReference) -> list[Invoice]:
    found = list(
        session.scalars(
            select(Invoice)
            .where(Invoice.customer_inn == payer_inn, Invoice.number_key == reference.key)
            .order_by(Invoice.id)
            .limit(20)
        )
    )
    if reference.date is None or len(found) < 2:
        return found
    # Several invoices share the key (numbers restart, prefixes differ): the date decides, if it can.
    dated = [invoice for invoice in found if _day(invoice) == reference.date]
    return dated or found


def _dated(invoice: Invoice, reference: InvoiceReference) -> bool:
    return reference.date is None or _day(invoice) == reference.date


def _day(invoice: Invoice) -> date:
    return invoice.issued_at.astimezone(MSK).date()


def _count(session: Session, row: InvoicePayment, invoice_id: int, *, by: str) -> None:
    invoice = session.get(Invoice, invoice_id, with_for_update=True)
    assert invoice is not None
    count_bank_payment(invoice, row.amount)
    row.status = MATCH_MATCHED
    row.invoice_id = invoice_id
    row.matched_by = by
    row.matched_at = db_now(session)
    row.note = None
    if invoice.matched_amount > invoice.amount:
        row.note = f"overpaid: {invoice.matched_amount} paid against {invoice.amount}"
    log.info(
        "invoice.payment_matched",
        invoice=invoice.number,
        payment_id=row.payment_id,
        amount=str(row.amount),
        status=invoice.payment_status,
        by=by,
    )


def _for_a_person(row: InvoicePayment, status: str, note: str) -> None:
    row.status = status
    row.note = note
    log.warning("invoice.payment_for_a_person", payment_id=row.payment_id, status=status, note=note)

"""The invoice flow's steps: ask 1C for a requested invoice, apply a changed one, match a payment.

Each works on one register row (``tasks.machinery.steps``). Calls to 1C hold one of the
``OBMEN_ONEC_MAX_SESSIONS`` leases; 1C out of licences, or every lease taken, is ``RateLimited``:
the machinery defers the step through the outbox and gives its attempt back, so a refusal is
"try later", never a failure. An answer that breaks the contract, or contradicts the register,
rejects the row naming the field (nothing of the document is written); 1C refusing our login or the
request itself parks it for a person.
"""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session

from integrations.onec.errors import InvalidInvoice
from models.db import db_now
from models.invoices import (
    MATCH_PENDING,
    REQUEST_PENDING,
    UPDATE_APPLIED,
    UPDATE_PENDING,
    InvoicePayment,
    InvoiceRequest,
    InvoiceUpdate,
)
from tasks.invoices import matching
from tasks.invoices.chain import APPLY_UPDATE, ASK_ONEC, MATCH_PAYMENT
from tasks.invoices.clients import onec_client
from tasks.invoices.register import RegisterConflict, apply_document, finish_request, reject
from tasks.machinery.steps import step

log = structlog.get_logger(__name__)


@step(ASK_ONEC, model=InvoiceRequest, statuses={REQUEST_PENDING}, stale_after_s=120)
def ask_onec(session: Session, request: InvoiceRequest) -> None:
    """Ask 1C for the invoice of the request's order and amount, and put it in the register."""
    try:
        document = onec_client().request_invoice(
            order_id=request.order_id,
            amount=request.amount,
            customer_inn=request.customer_inn,
            request_key=request.request_key,
        )
        applied = apply_document(session, document)
    except (InvalidInvoice, RegisterConflict) as exc:
        reject(request, exc.field, str(exc))
        log.warning("invoice.request_rejected", order=request.order_id, field=exc.field, error=str(exc))
        return
    finish_request(session, request, applied.invoice_id)
    log.info(
        "invoice.requested", order=request.order_id, invoice_id=applied.invoice_id, version=applied.version
    )


@step(APPLY_UPDATE, model=InvoiceUpdate, statuses={UPDATE_PENDING}, stale_after_s=300)
def apply_update(session: Session, update: InvoiceUpdate) -> None:
    """Fetch the invoice 1C's change list named and apply it: a new version if its content changed."""
    try:
        applied = apply_document(session, onec_client().get_invoice(update.onec_id))
    except (InvalidInvoice, RegisterConflict) as exc:
        reject(update, exc.field, str(exc))
        log.warning("invoice.update_rejected", onec_id=update.onec_id, field=exc.field, error=str(exc))
        return
    update.status = UPDATE_APPLIED
    update.invoice_id = applied.invoice_id
    update.version = applied.version
    update.done_at = db_now(session)


@step(MATCH_PAYMENT, model=InvoicePayment, statuses={MATCH_PENDING}, stale_after_s=120)
def match_payment(session: Session, row: InvoicePayment) -> None:
    """Count a bank payment towards the invoice its purpose names, or leave it for a person."""
    matching.match(session, row)

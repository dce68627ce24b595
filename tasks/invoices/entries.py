"""The invoice flow's public task (docs/tasks.md): ``invoices.request``, an invoice for an order and
amount, recorded once per business key and answered from the register when the invoice is there."""

from __future__ import annotations

from typing import Annotated

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from integrations.validation import Inn, Money
from models.invoices import REQUEST_PENDING, REQUEST_REJECTED
from tasks.invoices.chain import ASK_ONEC, REQUEST
from tasks.invoices.queries import RequestRow, request_state
from tasks.invoices.register import (
    finish_request,
    invoice_for_order,
    record_request,
    reopen_request,
)
from tasks.machinery.outbox import enqueue
from tasks.machinery.steps import entry

log = structlog.get_logger(__name__)

# What an order id may hold: the site's order numbers, no control characters or spaces at the ends.
ORDER_PATTERN = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"


class InvoiceRequestArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64, pattern=ORDER_PATTERN, description="the site's order")
    amount: Annotated[Money, Field(gt=0, max_digits=14, decimal_places=2)] = Field(
        description='rubles as a decimal string, "1234.50"'
    )
    customer_inn: Inn = Field(description="the customer's ИНН (10 or 12 digits, checksummed)")
    source: str = Field("api", min_length=1, max_length=40, description="who asks: site, console, crm …")


@entry(REQUEST, args=InvoiceRequestArgs)
def request_invoice(session: Session, args: InvoiceRequestArgs) -> RequestRow:
    """The invoice for an order and amount: recorded once per (order, amount, customer); answered
    from the register when the invoice is there already, else 1C is asked (``invoices.ask_onec``).
    A rejected request asked again is asked of 1C again."""
    request, made = record_request(
        session,
        order_id=args.order_id,
        amount=args.amount,
        customer_inn=args.customer_inn,
        source=args.source,
    )
    ask = made
    if made:
        known = invoice_for_order(
            session, order_id=args.order_id, amount=args.amount, customer_inn=args.customer_inn
        )
        if known is not None:
            finish_request(session, request, known)
            ask = False
    elif request.status == REQUEST_REJECTED:
        reopen_request(request)
        ask = True
    if ask:
        assert request.status == REQUEST_PENDING
        enqueue(session, ASK_ONEC, {"id": request.id}, business_key=f"invoice_requests:{request.request_key}")
    log.info("invoice.request", order=args.order_id, request_id=request.id, status=request.status, asked=ask)
    session.flush()
    return request_state(session, request.id)

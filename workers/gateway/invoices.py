"""The invoice API for the site (bearer scope ``invoices``), and the one-time download link.

* ``POST /invoices/requests``: an invoice for an order and amount — 202 with the request while 1C is
  asked, 200 with the invoice when the register has it already;
* ``GET /invoices/requests/{id}``: the request's state, with its invoice when it is ready;
* ``GET /invoices?customer_inn=…``: a customer's invoices, newest first, by payment status and
  order, keyset-paged (``next`` → ``after``);
* ``GET /invoices/{id}``: one invoice with its versions and the bank payments matched to it;
* ``GET /invoices/{id}/file``, ``GET /invoices/{id}/versions/{n}/file``: the PDF from the register
  (never from 1C), ``ETag`` = its SHA-256, ``If-None-Match`` answered 304;
* ``POST /invoices/{id}/links``: a one-time link for the order page; ``GET /invoices/links/{token}``
  (public, the token is the key) gives the file once, then 410;
* ``GET /invoices/payments``, ``POST /invoices/payments/{id}/assign``: bank payments naming an
  invoice that wait for a person;
* ``POST /invoices/changes``: 1C's hint that something changed — an early poll of the change list.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from config.settings import get_settings
from integrations.validation import Inn
from models.db import session_scope
from models.invoices import PAYMENT_STATUSES
from tasks.invoices.chain import POLL_CHANGES
from tasks.invoices.entries import ORDER_PATTERN, InvoiceRequestArgs, request_invoice
from tasks.invoices.matching import NotAssignable, assign_payment
from tasks.invoices.queries import (
    BadCursor,
    FileRow,
    InvoiceDetail,
    InvoicePage,
    PaymentRow,
    RequestRow,
    invoice_detail,
    invoice_file,
    list_invoices,
    payments_for_a_person,
    request_state,
)
from tasks.invoices.register import InvoiceNotInRegister, LinkGone, LinkUnknown, issue_link, use_link
from tasks.machinery.outbox import enqueue
from workers.gateway.access import Access, Refused
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute
from workers.gateway.params import Chars, Digits, Id

router = APIRouter(prefix="/invoices", tags=["invoices"], route_class=EdgeRoute)
scoped = Depends(require("invoices"))


class OneTimeLink(Access):
    """The token of a one-time link, as the key of one file: a malformed one is a 404 before anything
    is read (an unknown or used one is answered by the route: 404, 410)."""

    kind = "form_link"

    async def check(self, request: Request) -> None:
        token = str(request.path_params.get("token", ""))
        if not (
            16 <= len(token) <= 64 and token.isascii() and token.replace("-", "").replace("_", "").isalnum()
        ):
            raise Refused(404, "malformed link token", "no such link")


LINK = Depends(OneTimeLink("the holder of a one-time link the site was given; the token is the key"))
INN = TypeAdapter(Inn)
RowId = Annotated[Id, Path()]
ETag = Annotated[str | None, Chars(200), Header()]
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]


class InvoiceRequestBody(BaseModel):
    """The request as the edge reads it; :class:`InvoiceRequestArgs` then checks its meaning."""

    model_config = ConfigDict(extra="forbid")
    order_id: Annotated[str, Chars(64, 1)] = Field(description="the site's order")
    amount: Annotated[str, Chars(20, 1)] = Field(description='rubles as a decimal string, "1234.50"')
    customer_inn: Annotated[str, Chars(12, 10)] = Field(description="the customer's ИНН (10 or 12 digits)")
    source: Annotated[str, Chars(40, 1)] = Field("api", description="who asks: site, console, crm …")


@router.post("/requests", dependencies=[scoped], status_code=202, response_model=RequestRow)
def post_request(body: InvoiceRequestBody) -> JSONResponse:
    """Ask for the invoice of an order and amount (once per order, amount and customer): 202 while
    1C is asked, 200 with the invoice when the register has it."""
    try:
        args = InvoiceRequestArgs.model_validate(body.model_dump())
    except ValidationError as exc:
        raise HTTPException(422, _errors(exc)) from exc
    with session_scope() as session:
        state = request_invoice.plain(session, args)
    return JSONResponse(state.model_dump(mode="json"), status_code=200 if state.invoice else 202)


@router.get("/requests/{request_id}", dependencies=[scoped])
def get_request(request_id: RowId) -> RequestRow:
    try:
        with session_scope() as session:
            return request_state(session, request_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("", dependencies=[scoped], response_model=InvoicePage)
def get_invoices(
    customer_inn: Annotated[str, Chars(12, 10), Query(description="the customer's ИНН")],
    status: Annotated[str | None, Chars(20), Query(description=" | ".join(PAYMENT_STATUSES))] = None,
    order_id: Annotated[str | None, Chars(64), Query(pattern=ORDER_PATTERN)] = None,
    limit: Annotated[int, Digits(1, 200), Query()] = 50,
    after: Annotated[str | None, Chars(200), Query(description="`next` of the previous page")] = None,
) -> JSONResponse:
    """A customer's invoices, newest first, with their payment status (serialised once, here: the
    site's busiest call)."""
    try:
        customer_inn = INN.validate_python(customer_inn)
    except ValidationError as exc:
        raise HTTPException(422, _errors(exc)) from exc
    if status is not None and status not in PAYMENT_STATUSES:
        raise HTTPException(422, f"unknown status {status!r}; statuses: {', '.join(PAYMENT_STATUSES)}")
    try:
        with session_scope() as session:
            page = list_invoices(
                session, customer_inn, status=status, order_id=order_id, limit=limit, after=after
            )
    except BadCursor as exc:
        raise HTTPException(422, str(exc)) from exc
    return JSONResponse(page.model_dump(mode="json"))


@router.get("/payments", dependencies=[scoped])
def get_payments_for_a_person(limit: Annotated[int, Digits(1, 200), Query()] = 100) -> list[PaymentRow]:
    """Bank payments naming an invoice that obmen could not match alone."""
    with session_scope() as session:
        return payments_for_a_person(session, limit)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_id: Id
    by: Annotated[str, Chars(60, 1)] = Field(description="who decided")


@router.post("/payments/{match_id}/assign", dependencies=[scoped])
def post_assign(match_id: RowId, body: Assignment) -> PaymentRow:
    """A person decided which invoice a waiting payment pays."""
    try:
        with session_scope() as session:
            return PaymentRow.model_validate(assign_payment(session, match_id, body.invoice_id, by=body.by))
    except (NotAssignable, InvoiceNotInRegister) as exc:
        raise HTTPException(409 if isinstance(exc, NotAssignable) else 404, str(exc)) from exc


@router.post("/changes", dependencies=[scoped], status_code=202)
def post_changes() -> dict[str, str]:
    """1C says something changed: poll its change list now (the push carries no data; a repeat costs
    one poll, a lost one the poll interval)."""
    with session_scope() as session:
        enqueue(session, POLL_CHANGES, {}, business_key="invoices:push")
    return {"status": "poll enqueued"}


@router.get("/links/{token}", dependencies=[LINK], response_class=Response)
def get_link(token: Annotated[str, Chars(64, 16), Path()]) -> Response:
    """The file of a one-time link: once, then 410 Gone."""
    try:
        with session_scope() as session:
            invoice_id, version = use_link(session, token)
            found = invoice_file(session, invoice_id, version)
    except LinkUnknown as exc:
        raise HTTPException(404, str(exc)) from exc
    except LinkGone as exc:
        raise HTTPException(410, str(exc)) from exc
    return _pdf(found, None)


@router.get("/{invoice_id}", dependencies=[scoped])
def get_invoice(invoice_id: RowId) -> InvoiceDetail:
    """One invoice with its history (every version) and the bank payments matched to it."""
    try:
        with session_scope() as session:
            return invoice_detail(session, invoice_id)
    except InvoiceNotInRegister as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/{invoice_id}/file", dependencies=[scoped], response_class=Response)
def get_file(invoice_id: RowId, if_none_match: ETag = None) -> Response:
    """The latest file, from the register."""
    return _file(invoice_id, None, if_none_match)


@router.get("/{invoice_id}/versions/{version}/file", dependencies=[scoped], response_class=Response)
def get_version_file(
    invoice_id: RowId,
    version: Annotated[int, Digits(1, 1_000_000), Path()],
    if_none_match: ETag = None,
) -> Response:
    return _file(invoice_id, version, if_none_match)


@router.post("/{invoice_id}/links", dependencies=[scoped], status_code=201)
def post_link(invoice_id: RowId, request: Request) -> dict[str, str]:
    """A one-time download link for the order page (the seed's "issued once at checkout")."""
    try:
        with session_scope() as session:
            token = issue_link(session, invoice_id, get_settings().invoice_link_ttl_s)
    except InvoiceNotInRegister as exc:
        raise HTTPException(404, str(exc)) from exc
    return {"token": token, "url": str(request.url_for("get_link", token=token))}


def _file(invoice_id: int, version: int | None, if_none_match: str | None) -> Response:
    try:
        with session_scope() as session:
            found = invoice_file(session, invoice_id, version)
    except InvoiceNotInRegister as exc:
        raise HTTPException(404, str(exc)) from exc
    return _pdf(found, if_none_match)


def _pdf(found: FileRow, if_none_match: str | None) -> Response:
    etag = f'"{found.sha256}"'
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": etag})
    name = found.file_name or f"Счет на оплату № {found.number}.pdf"
    fallback = _UNSAFE_IN_NAME.sub("_", f"invoice-{found.number}").strip("_") + ".pdf"
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    return Response(
        found.content,
        media_type="application/pdf",
        headers={"Content-Disposition": disposition, "ETag": etag, "Cache-Control": "private, no-cache"},
    )

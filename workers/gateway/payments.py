"""The bank API (GetCustomerInfo / PostCustomersInfo), the OSMP check/pay protocol, and ops on payments.

Every bank request is authenticated by its HMAC signature over the raw bytes before anything parses
them (the route's access rule, ``BankSignature``; ``integrations/bank/signing.py``). A payment is answered 2xx only after its row and the outbox
row of ``payments.post`` are committed; publishing to Redis happens beside the answer, so a broker
outage never fails the bank. A register store that is down answers 503: the bank retries, and the
transaction id makes the retry harmless.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool

from config.settings import get_settings
from integrations.bank import osmp
from integrations.bank.schema import PaymentIn, read_payment
from integrations.bank.signing import TIMESTAMP_HEADER
from integrations.validation import validate_inn
from models.base import utcnow
from models.db import session_scope
from models.master import Subscriber
from models.payments import Payment, SubscriberBalance
from tasks.payments.register import Acceptance, Incoming, NotAssignable, accept_payments, assign_payment
from workers.gateway.access import BankSignature, media_type
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute
from workers.gateway.group_commit import GroupCommit
from workers.gateway.params import Id, Limit, Text
from workers.gateway.problems import problem, unprocessable

log = structlog.get_logger(__name__)

BANK = BankSignature("the bank and payment agents, by the shared HMAC secret")
router = APIRouter(prefix="/bank", tags=["bank"], dependencies=[Depends(BANK)], route_class=EdgeRoute)
ops_router = APIRouter(prefix="/ops/payments", tags=["ops"], route_class=EdgeRoute)
TIMESTAMP_PARAMETER = {
    "name": TIMESTAMP_HEADER,
    "in": "header",
    "required": True,
    "description": "Unix seconds; within OBMEN_BANK_TIMESTAMP_TOLERANCE_S (300 s) of our clock",
    "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
}
STORE_DOWN = (OperationalError, InterfaceError, PoolTimeout)


class StoreUnavailable(Exception):
    pass


def _store(fn: Any, *args: Any) -> Any:
    try:
        with session_scope() as session:
            return fn(session, *args)
    except STORE_DOWN as exc:
        log.error("bank.store_unavailable", error=str(exc)[:300])
        raise StoreUnavailable from exc


# The payments of concurrent requests, bank and agents alike, accepted in one transaction.
ACCEPT = GroupCommit[Incoming, Acceptance](
    lambda payments: _store(accept_payments, payments), shared=(StoreUnavailable,)
)


def _unavailable() -> JSONResponse:
    detail = "the register store is unavailable; nothing was recorded, retry later"
    return problem(503, detail, {"Retry-After": "5"})


def _invalid(errors: list[dict[str, str]]) -> JSONResponse:
    return problem(422, "invalid request", errors=errors)


# --- GetCustomerInfo ---------------------------------------------------------------------------------
class CustomerDebt(BaseModel):
    inn: str
    name: str
    debt: str = Field(description="rubles, a decimal string with 2 decimals", examples=["1500.00"])
    currency: str = "RUB"


def _debt(session: Any, inn: str) -> tuple[str, Decimal] | None:
    subscriber = session.get(Subscriber, inn)
    if subscriber is None:
        return None
    debt = session.scalar(select(SubscriberBalance.debt).where(SubscriberBalance.inn == inn))
    return subscriber.name, Decimal(debt or 0)


@router.get(
    "/v1/customers/{inn}",
    response_model=CustomerDebt,
    responses={
        401: {"description": "bad signature"},
        404: {"description": "no such subscriber"},
        422: {},
        503: {},
    },
    summary="GetCustomerInfo: the subscriber's debt by ИНН",
    openapi_extra={"parameters": [TIMESTAMP_PARAMETER]},
)
async def get_customer(inn: Text) -> Response:
    try:
        validate_inn(inn)
    except ValueError as exc:
        return _invalid([{"field": "inn", "message": str(exc)}])
    try:
        found = await run_in_threadpool(_store, _debt, inn)
    except StoreUnavailable:
        return _unavailable()
    if found is None:
        return problem(404, f"no subscriber with ИНН {inn}")
    name, debt = found
    return JSONResponse(CustomerDebt(inn=inn, name=name, debt=f"{debt:.2f}").model_dump())


# --- PostCustomersInfo ---------------------------------------------------------------------------------
class PaymentAccepted(BaseModel):
    payment_id: int
    status: str = Field("accepted", description="always accepted: posting follows asynchronously")


PAYMENT_SCHEMA = PaymentIn.model_json_schema()


@router.post(
    "/v1/payments",
    status_code=201,
    response_model=PaymentAccepted,
    summary="PostCustomersInfo: a successful payment (idempotent by transaction_id)",
    responses={
        200: {"model": PaymentAccepted, "description": "the identical delivery again: the same body"},
        401: {"description": "bad, missing or expired signature"},
        409: {"description": "this transaction_id was used for a different payment"},
        413: {"description": "body too large"},
        415: {"description": "not JSON"},
        422: {"description": "invalid payment; `errors` names each field"},
        503: {"description": "the register store is down; nothing recorded, retry"},
    },
    openapi_extra={
        "parameters": [TIMESTAMP_PARAMETER],
        "requestBody": {"required": True, "content": {"application/json": {"schema": PAYMENT_SCHEMA}}},
    },
)
async def post_payment(request: Request) -> Response:
    if media_type(request) != "application/json":
        return problem(415, "the body must be application/json")
    settings = get_settings()
    parsed = read_payment(
        await request.body(), settings.bank_max_payment, utcnow(), settings.bank_timestamp_tolerance_s
    )
    if isinstance(parsed, list):
        return _invalid(parsed)
    try:
        acceptance = await ACCEPT.submit(_incoming(parsed))
    except StoreUnavailable:
        return _unavailable()
    if acceptance.outcome == "conflict":
        detail = f"transaction_id {parsed.transaction_id} was already used for a different payment"
        return problem(409, detail, payment_id=acceptance.payment_id)
    body = PaymentAccepted(payment_id=acceptance.payment_id).model_dump()
    return JSONResponse(body, status_code=201 if acceptance.outcome == "created" else 200)


def _incoming(payment: PaymentIn) -> Incoming:
    return Incoming(
        transaction_id=payment.transaction_id,
        source="bank",
        inn=payment.inn,
        amount=payment.amount,
        paid_at=payment.paid_at,
        purpose=payment.purpose,
        payer_name=payment.payer_name,
        content_hash=payment.content_hash(),
    )


# --- OSMP check/pay ---------------------------------------------------------------------------------
def _xml(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


def _osmp_payment(req: osmp.OsmpRequest) -> Incoming:
    assert req.txn_date is not None
    digest = hashlib.sha256(f"{req.account}|{req.sum:.2f}|{req.txn_date.isoformat()}".encode()).hexdigest()
    return Incoming(
        transaction_id=req.transaction_id,
        source="osmp",
        inn=req.account,
        amount=req.sum,
        paid_at=req.txn_date,
        purpose=f"Оплата через платёжного агента, txn_id {req.txn_id}",
        payer_name=None,
        content_hash=digest,
    )


def _osmp_parameter(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": name != "txn_date",
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


@router.get(
    "/osmp",
    summary="The payment agents' check/pay protocol (XML answer; txn_id is the idempotency key)",
    responses={
        200: {"content": {"text/xml": {}}},
        503: {"description": "result 1: try again", "content": {"text/xml": {}}},
    },
    openapi_extra={
        # Read from the raw query string by integrations/bank/osmp.py: every answer is the protocol's XML.
        "parameters": [
            TIMESTAMP_PARAMETER,
            _osmp_parameter("command", "^(check|pay)$", "check or pay"),
            _osmp_parameter("txn_id", "^[0-9]{1,20}$", "the agent's transaction id (idempotency key)"),
            _osmp_parameter("account", "^[0-9]{10}([0-9]{2})?$", "the subscriber's ИНН"),
            _osmp_parameter("sum", "^[0-9]{1,15}(\\.[0-9]{1,2})?$", "rubles, e.g. 1500.00"),
            _osmp_parameter("txn_date", "^[0-9]{14}$", "pay only: YYYYMMDDHHMMSS, Moscow time"),
        ]
    },
)
async def osmp_endpoint(request: Request) -> Response:
    settings = get_settings()
    query = request.scope.get("query_string", b"").decode("latin-1")
    txn_id = osmp.echo_txn_id(query)
    try:
        req = osmp.parse_request(
            query, settings.bank_max_payment, utcnow(), settings.bank_timestamp_tolerance_s
        )
    except osmp.OsmpError as exc:
        return _xml(osmp.render(exc.result, exc.comment, txn_id=txn_id))
    try:
        if req.command == "check":
            found = await run_in_threadpool(_store, _debt, req.account)
            if found is None:
                return _xml(
                    osmp.render(osmp.ACCOUNT_NOT_FOUND, "Абонент не найден", txn_id=txn_id, amount=req.sum)
                )
            return _xml(
                osmp.render(osmp.OK, f"Задолженность {found[1]:.2f} руб.", txn_id=txn_id, amount=req.sum)
            )
        acceptance = await ACCEPT.submit(_osmp_payment(req))
    except StoreUnavailable:
        return _xml(osmp.render(osmp.TEMPORARY_ERROR, "temporary error, retry later", txn_id=txn_id), 503)
    if acceptance.outcome == "conflict":
        return _xml(
            osmp.render(osmp.OTHER_ERROR, "txn_id was already used for another payment", txn_id=txn_id)
        )
    return _xml(osmp.render(osmp.OK, "OK", txn_id=txn_id, prv_txn=acceptance.payment_id, amount=req.sum))


# --- ops: payments a person must resolve ------------------------------------------------------------
class PaymentRow(BaseModel):
    id: int
    transaction_id: str
    source: str
    inn: str
    amount: str
    paid_at: Any
    purpose: str
    payer_name: str | None
    status: str
    subscriber_inn: str | None
    last_error: str | None


@ops_router.get("", dependencies=[Depends(require("read"))])
def list_payments(status: Text = "unallocated", limit: Limit = 100) -> list[PaymentRow]:
    """Payments by status; ``unallocated`` ones (no subscriber with their ИНН) wait for a person."""
    with session_scope() as session:
        rows = session.scalars(
            select(Payment).where(Payment.status == status).order_by(Payment.id).limit(limit)
        )
        return [
            PaymentRow(
                id=p.id,
                transaction_id=p.transaction_id,
                source=p.source,
                inn=p.inn,
                amount=f"{p.amount:.2f}",
                paid_at=p.paid_at,
                purpose=p.purpose,
                payer_name=p.payer_name,
                status=p.status,
                subscriber_inn=p.subscriber_inn,
                last_error=p.last_error,
            )
            for p in rows
        ]


class Assignment(BaseModel):
    inn: Text


@ops_router.post("/{payment_id}/assign", dependencies=[Depends(require("write"))])
def assign(payment_id: Id, body: Assignment) -> dict[str, Any]:
    """Post an unallocated payment to the subscriber a person identified."""
    try:
        inn = validate_inn(body.inn)
        with session_scope() as session:
            payment = assign_payment(session, payment_id, inn)
            return {"payment_id": payment.id, "subscriber_inn": inn, "status": payment.status}
    except ValueError as exc:
        raise unprocessable("inn", str(exc)) from exc
    except NotAssignable as exc:
        raise HTTPException(404, str(exc)) from exc

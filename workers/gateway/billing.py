"""Billing's public entries over HTTP (write scope): the month's accruals and subscribers' requests.

* ``POST /billing/accruals``: charge every subscriber's tariff for a month — ``billing.accrue`` is
  enqueued (a worker runs it; once per subscriber and month however often it is asked);
* ``POST /billing/requests``: a subscriber's request from 1C (connect, disconnect, change tariff),
  recorded once per ``number`` and its Bitrix24 process started — ``billing.submit_request``.

Both answer 202 with the business key; asking again is harmless.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.db import session_scope
from tasks.machinery.outbox import enqueue
from tasks.payments.entries import AccrueArgs, RequestArgs, accrue, submit_request
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute
from workers.gateway.params import Chars
from workers.gateway.problems import invalid

router = APIRouter(
    prefix="/billing", tags=["billing"], dependencies=[Depends(require("write"))], route_class=EdgeRoute
)


class AccrualsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: Annotated[str, Chars(7, 7)] = Field(description="the month, YYYY-MM", examples=["2026-12"])


class AccrualsStarted(BaseModel):
    business_key: str
    period: str
    outbox_id: int


@router.post("/accruals", status_code=202)
def post_accruals(body: AccrualsRequest) -> AccrualsStarted:
    """Charge every subscriber with a tariff for the month (``billing.accrue`` on the billing queue)."""
    try:
        args = AccrueArgs.model_validate(body.model_dump())
    except ValidationError as exc:
        raise invalid(exc) from exc
    key = f"billing.accrue:{args.period}"
    with session_scope() as session:
        row = enqueue(session, accrue.name, args.model_dump(), business_key=key)
        session.flush()
        return AccrualsStarted(business_key=key, period=args.period, outbox_id=row.id)


class SubscriberRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: Annotated[str, Chars(64, 1)] = Field(description="1C's request number (the idempotency key)")
    kind: Literal["connect", "disconnect", "change_tariff"]
    inn: Annotated[str, Chars(12, 10)]
    name: Annotated[str | None, Chars(500)] = None
    tariff: Annotated[str | None, Chars(64)] = None
    comment: Annotated[str | None, Chars(2000)] = None


class RequestRecorded(BaseModel):
    business_key: str
    request_id: int


@router.post("/requests", status_code=202)
def post_request(body: SubscriberRequestBody) -> RequestRecorded:
    """Record a subscriber's request (once per ``number``) and start its Bitrix24 business process."""
    try:
        args = RequestArgs.model_validate(body.model_dump())
    except ValidationError as exc:
        raise invalid(exc) from exc
    with session_scope() as session:
        request_id = submit_request.plain(session, args)
    return RequestRecorded(business_key=f"subscriber_requests:{args.number}", request_id=request_id)

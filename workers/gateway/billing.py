"""Billing's public entries over HTTP (write scope): the month's accruals and subscribers' requests.

* ``POST /billing/accruals``: charge every subscriber's tariff for a month — ``billing.accrue`` is
  enqueued (a worker runs it; once per subscriber and month however often it is asked);
* ``POST /billing/requests``: a subscriber's request from 1C (connect, disconnect, change tariff, or
  a question, a complaint, anything else), recorded once per ``number`` and its Bitrix24 process or
  department task started — ``billing.submit_request``; a disconnection of a subscriber in debt waits;
* ``GET /billing/requests/<number>`` (read): where the request stands;
* ``POST /billing/requests/<number>/override``: a person lets a disconnection held for a debt go
  ahead, saying who and why — ``billing.override_request``;
* ``POST /billing/requests/<number>/close``: its process ended («вы подключены» for a connection) —
  ``billing.close_request``;
* ``POST /billing/works``: planned repair works (line or addresses, from, to, text), recorded once per
  number: the affected subscribers get an SMS each, and a reminder the day before —
  ``billing.announce_works``;
* ``GET /billing/works/<number>`` (read): the mailing's report, delivered and failed.

The first two answer 202 with the business key; asking again is harmless. An action the request's
status does not allow (or an unknown number) is a 409 (404) problem.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from models.db import session_scope
from models.payments import SubscriberRequest
from tasks.machinery.outbox import enqueue
from tasks.payments import requests
from tasks.payments import works as works_logic
from tasks.payments.entries import (
    AccrueArgs,
    CloseArgs,
    OverrideArgs,
    RequestArgs,
    RequestKind,
    WorksArgs,
    accrue,
    announce_works,
    submit_request,
)
from tasks.payments.requests import RequestConflict, UnknownRequest
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute
from workers.gateway.params import Chars
from workers.gateway.problems import invalid, unprocessable

router = APIRouter(
    prefix="/billing", tags=["billing"], dependencies=[Depends(require("write"))], route_class=EdgeRoute
)
read_router = APIRouter(
    prefix="/billing", tags=["billing"], dependencies=[Depends(require("read"))], route_class=EdgeRoute
)
Number = Annotated[str, Chars(64, 1), Path(description="1C's request number")]


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
    kind: RequestKind
    inn: Annotated[str, Chars(12, 10)]
    name: Annotated[str | None, Chars(500)] = None
    tariff: Annotated[str | None, Chars(64)] = None
    comment: Annotated[str | None, Chars(2000)] = None
    phone: Annotated[str | None, Chars(32)] = Field(
        None, description="for «вы подключены» to a new subscriber"
    )


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


class RequestState(BaseModel):
    number: str
    kind: str
    subscriber_inn: str
    status: str = Field(
        description="new, awaiting_payment (a disconnection held for a debt), process_started, closed"
    )
    deal_id: int | None
    workflow_id: str | None
    bitrix24_task_id: str | None
    override_by: str | None
    override_reason: str | None
    override_at: datetime | None
    closed_at: datetime | None
    last_error: str | None


def _state(request: SubscriberRequest) -> RequestState:
    return RequestState.model_validate(request, from_attributes=True)


@read_router.get("/requests/{number}")
def get_request(number: Number) -> RequestState:
    """Where a subscriber's request stands (a held disconnection says ``awaiting_payment``)."""
    return _act(lambda session: requests.find(session, number))


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: Annotated[str, Chars(200, 1)] = Field(description="who decided")
    reason: Annotated[str, Chars(2000, 1)] = Field(description="why the debt does not hold the disconnection")


def _act(action: Callable[[Session], SubscriberRequest]) -> RequestState:
    try:
        with session_scope() as session:
            return _state(action(session))
    except UnknownRequest as exc:
        raise HTTPException(404, str(exc)) from exc
    except RequestConflict as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post("/requests/{number}/override")
def post_override(number: Number, body: OverrideBody) -> RequestState:
    """Let a disconnection held for the subscriber's debt go ahead; who and why are recorded."""
    try:
        args = OverrideArgs.model_validate({"number": number, **body.model_dump()})
    except ValidationError as exc:
        raise invalid(exc) from exc
    return _act(lambda session: requests.override(session, args.number, args.by, args.reason))


@router.post("/requests/{number}/close")
def post_close(number: Number) -> RequestState:
    """The request's process ended: closed; a connection sends «Вы подключены!» by SMS, once."""
    args = CloseArgs(number=number)
    return _act(lambda session: requests.close(session, args.number))


class WorksBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: Annotated[str, Chars(64, 1)] = Field(description="the works' number (the idempotency key)")
    line: Annotated[str | None, Chars(64)] = None
    addresses: list[Annotated[str, Chars(500)]] | None = Field(None, max_length=500)
    starts_at: Annotated[str, Chars(40, 10)] = Field(
        description="ISO 8601 with its offset", examples=["2026-12-10T09:00:00+03:00"]
    )
    ends_at: Annotated[str, Chars(40, 10)] = Field(description="likewise")
    text: Annotated[str, Chars(300, 1)] = Field(description="what subscribers are told")
    by: Annotated[str | None, Chars(200)] = None


class WorksRecorded(BaseModel):
    business_key: str
    works_id: int


@router.post("/works", status_code=202)
def post_works(body: WorksBody) -> WorksRecorded:
    """Announce planned works: an SMS to each affected subscriber now, a reminder the day before."""
    try:
        args = WorksArgs.model_validate(body.model_dump())
        with session_scope() as session:
            works_id = announce_works.plain(session, args)
    except ValidationError as exc:
        raise invalid(exc) from exc
    except ValueError as exc:
        raise unprocessable("ends_at", str(exc)) from exc
    return WorksRecorded(business_key=f"planned_works:{args.number}", works_id=works_id)


@read_router.get("/works/{number}")
def get_works(number: Annotated[str, Chars(64, 1), Path()]) -> dict[str, Any]:
    """The planned works and their mailing: notices and reminders delivered, failed, on their way."""
    try:
        with session_scope() as session:
            return works_logic.report(session, number)
    except works_logic.UnknownWorks as exc:
        raise HTTPException(404, str(exc)) from exc

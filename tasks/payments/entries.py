"""The billing tasks other services enqueue by name (docs/tasks.md): accruals and subscriber requests;
and the batch of deadlines one sweep found due."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.validation import Inn
from models.db import db_now
from models.master import Subscriber, Tariff
from models.payments import (
    Accrual,
    SubscriberRequest,
    insert_ignoring_duplicates,
)
from models.works import PlannedWorks, WorksDeadline
from tasks.machinery.deadlines import batch_entry
from tasks.machinery.outbox import enqueue
from tasks.machinery.steps import entry
from tasks.payments import requests
from tasks.payments import works as works_logic
from tasks.payments.billing import DEADLINES, create_accrual
from tasks.payments.chain import ANNOUNCE_WORKS, NOTIFY_WORKS, START_REQUEST

log = structlog.get_logger(__name__)


class AccrueArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(description="the month, YYYY-MM")

    @field_validator("period")
    @classmethod
    def _month(cls, value: str) -> str:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
            raise ValueError("period is a month, YYYY-MM")
        return value

    @property
    def first_day(self) -> date:
        year, month = self.period.split("-")
        return date(int(year), int(month), 1)


@entry("billing.accrue", args=AccrueArgs)
def accrue(session: Session, args: AccrueArgs) -> dict[str, Any]:
    """Charge every subscriber with a tariff for the month (idempotent per subscriber and month)."""
    period = args.first_day
    now = db_now(session)
    charged = set(session.scalars(select(Accrual.subscriber_inn).where(Accrual.period == period)))
    subscribers = session.execute(
        select(Subscriber, Tariff)
        .join(Tariff, Subscriber.tariff == Tariff.code)
        .where(Tariff.monthly_fee > 0)
        .order_by(Subscriber.inn)
    ).all()
    created = 0
    for subscriber, tariff in subscribers:
        if subscriber.inn not in charged:
            create_accrual(session, subscriber, tariff, period, now)
            created += 1
    log.info("billing.accrued", period=args.period, created=created, already=len(charged))
    return {"period": args.period, "created": created, "already": len(charged)}


RequestNumber = Annotated[
    str, Field(min_length=1, max_length=64, description="1C's request number (the idempotency key)")
]
RequestKind = Literal["connect", "disconnect", "change_tariff", "question", "complaint", "other"]


class RequestArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: RequestNumber
    kind: RequestKind
    inn: Inn
    name: str | None = Field(None, max_length=500)
    tariff: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2000)
    phone: str | None = Field(None, max_length=32, description="for «вы подключены» to a new subscriber")


@entry("billing.submit_request", args=RequestArgs)
def submit_request(session: Session, args: RequestArgs) -> int:
    """Record a subscriber's request (once per number) and start its Bitrix24 process or task; a
    disconnection of a subscriber in debt waits for the payment first."""
    status = requests.first_status(session, args.kind, args.inn)
    inserted, request_id = _record_once(
        session,
        SubscriberRequest,
        number=args.number,
        kind=args.kind,
        subscriber_inn=args.inn,
        subscriber_name=args.name,
        tariff=args.tariff,
        comment=args.comment,
        phone=args.phone,
        status=status,
    )
    if not inserted:
        return request_id
    if status == "new":
        enqueue(session, START_REQUEST, {"id": request_id}, business_key=f"subscriber_requests:{args.number}")
    return request_id


class OverrideArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: RequestNumber
    by: str = Field(min_length=1, max_length=200, description="who decided")
    reason: str = Field(min_length=1, max_length=2000, description="why the debt does not hold it")


@entry("billing.override_request", args=OverrideArgs)
def override_request(session: Session, args: OverrideArgs) -> str:
    """Let a disconnection held for a debt go ahead; who and why are recorded on the request."""
    return requests.override(session, args.number, args.by, args.reason).status


class CloseArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: RequestNumber


@entry("billing.close_request", args=CloseArgs)
def close_request(session: Session, args: CloseArgs) -> str:
    """The request's process ended: close it; a connection sends «вы подключены» by SMS, once."""
    return requests.close(session, args.number).status


class WorksArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=64, description="the works' number (the idempotency key)")
    line: str | None = Field(None, min_length=1, max_length=64, description="the line under repair")
    addresses: list[Annotated[str, Field(min_length=3, max_length=500)]] | None = Field(
        None, min_length=1, max_length=500, description="address prefixes the works concern"
    )
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    text: str = Field(min_length=1, max_length=300, description="what subscribers are told")
    by: str | None = Field(None, max_length=200, description="who announces")

    @model_validator(mode="after")
    def _window(self) -> WorksArgs:
        if not self.line and not self.addresses:
            raise ValueError("name the line or the addresses the works concern")
        if self.ends_at <= self.starts_at:
            raise ValueError("the works end after they start (ends_at > starts_at)")
        return self


@entry(ANNOUNCE_WORKS, args=WorksArgs)
def announce_works(session: Session, args: WorksArgs) -> int:
    """Record planned works (once per number): notify the affected subscribers by SMS now, and write
    the reminder due the day before."""
    now = db_now(session)
    if args.ends_at <= now:
        raise ValueError(f"the works ended already ({args.ends_at.isoformat()})")
    inserted, works_id = _record_once(
        session,
        PlannedWorks,
        number=args.number,
        line=args.line,
        addresses=args.addresses,
        starts_at=args.starts_at,
        ends_at=args.ends_at,
        text=args.text,
        announced_by=args.by,
        status="new",
    )
    if not inserted:
        return works_id
    enqueue(session, NOTIFY_WORKS, {"id": works_id}, business_key=f"planned_works:{args.number}")
    works = session.get(PlannedWorks, works_id)
    assert works is not None
    due = works_logic.reminder_due(works)
    if due > now:
        session.add(WorksDeadline(works_id=works_id, kind="reminder", due_at=due))
    log.info("billing.works_announced", number=args.number, starts_at=args.starts_at.isoformat())
    return works_id


def _record_once(session: Session, model: Any, *, number: str, **values: Any) -> tuple[bool, int]:
    """Insert the row keyed by its unique ``number`` unless it is there: (inserted, its id)."""
    inserted = session.execute(
        insert_ignoring_duplicates(session, model)
        .values(number=number, attempts=0, **values)
        .returning(model.id)
    ).scalar()
    if inserted is not None:
        return True, int(inserted)
    return False, int(session.scalars(select(model.id).where(model.number == number)).one())


fire_deadlines_batch = batch_entry(DEADLINES)
fire_works_batch = batch_entry(works_logic.DEADLINES)

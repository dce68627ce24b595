"""Planned repair works on the lines (seed 001: «оповещение о плановом проведении ремонтных работ
на линиях»): which subscribers a window concerns, what they are told, the reminder the day before
as a deadline row, and the report of what was delivered.

The notice is one step that writes an SMS row per affected subscriber (``works:<id>:<inn>``) in one
transaction; a worker killed in it leaves nothing half-written, and the step run again writes the
same rows. The SMS themselves go at the account's pace (``sms.send``), each on its own: a crash
mid-mailing resumes where it stopped.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.master import Subscriber
from models.sms import DELIVERED, FAILED, SmsMessage
from models.works import PlannedWorks, WorksDeadline
from tasks.machinery.deadlines import DeadlineRegister
from tasks.payments.chain import FIRE_WORKS_BATCH, FIRE_WORKS_REMINDER
from tasks.sms.outgoing import Outgoing, send_many

MSK = ZoneInfo("Europe/Moscow")
NOTICE = "works"
REMINDER = "works_reminder"


def campaign(works: PlannedWorks) -> str:
    return f"works:{works.id}"


def affected(session: Session, works: PlannedWorks) -> list[Subscriber]:
    """The subscribers on the works' line, and those whose address starts with one of its addresses
    (compared case-insensitively in Python: SQLite, the embedded store, lowercases ASCII only)."""
    prefixes = [str(p).casefold() for p in works.addresses or []]
    conditions: list[ColumnElement[bool]] = []
    if works.line:
        conditions.append(Subscriber.line == works.line)
    if prefixes:
        conditions.append(Subscriber.address.is_not(None))
    if not conditions:
        return []
    candidates = session.scalars(select(Subscriber).where(or_(*conditions)).order_by(Subscriber.inn))
    return [
        s
        for s in candidates
        if (works.line and s.line == works.line)
        or any((s.address or "").casefold().startswith(p) for p in prefixes)
    ]


def _window(works: PlannedWorks) -> str:
    start, end = works.starts_at.astimezone(MSK), works.ends_at.astimezone(MSK)
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%d.%m %H:%M}"
    return f"{start:%d.%m %H:%M}–{until}"


def notify(session: Session, works: PlannedWorks, kind: str) -> int:
    """An SMS row for each affected subscriber (once per works, kind and subscriber)."""
    lead = "Плановые ремонтные работы" if kind == NOTICE else "Напоминаем: завтра плановые ремонтные работы"
    where = f" на линии {works.line}" if works.line else ""
    text = f"{lead}{where} {_window(works)} (МСК). {works.text}"
    subscribers = affected(session, works)
    send_many(
        session,
        [
            Outgoing(
                key=f"{kind}:{works.id}:{s.inn}",
                kind=kind,
                phone=s.phone,
                text=text,
                subscriber_inn=s.inn,
                campaign=campaign(works),
            )
            for s in subscribers
        ],
    )
    return len(subscribers)


def reminder_due(works: PlannedWorks) -> datetime:
    return works.starts_at - timedelta(hours=get_settings().works_reminder_before_h)


# A reminder that comes due after the works began is cancelled by the sweep instead of sent.
DEADLINES = DeadlineRegister(
    WorksDeadline,
    fire=FIRE_WORKS_REMINDER,
    fire_batch=FIRE_WORKS_BATCH,
    moot=lambda: exists().where(
        PlannedWorks.id == WorksDeadline.works_id, PlannedWorks.starts_at <= func.now()
    ),
)


class UnknownWorks(LookupError):
    """No planned works have this number."""


def report(session: Session, number: str) -> dict[str, Any]:
    """What the mailing did: per kind, messages delivered, failed and on their way; the failures."""
    works = session.scalars(select(PlannedWorks).where(PlannedWorks.number == number)).first()
    if works is None:
        raise UnknownWorks(f"no planned works {number}")
    counts: dict[str, Counter[str]] = {NOTICE: Counter(), REMINDER: Counter()}
    failures = []
    for message in session.scalars(
        select(SmsMessage).where(SmsMessage.campaign == campaign(works)).order_by(SmsMessage.id)
    ):
        outcome = message.status if message.status in (DELIVERED, FAILED) else "pending"
        if message.parked_at is not None:
            outcome = FAILED
        counts[message.kind][outcome] += 1
        if outcome == FAILED:
            failures.append(
                {
                    "kind": message.kind,
                    "subscriber_inn": message.subscriber_inn,
                    "phone": message.phone,
                    "reason": message.failure or message.last_error,
                }
            )
    reminder = session.scalars(select(WorksDeadline).where(WorksDeadline.works_id == works.id)).first()
    return {
        "number": works.number,
        "status": works.status,
        "line": works.line,
        "addresses": works.addresses,
        "starts_at": works.starts_at.isoformat(),
        "ends_at": works.ends_at.isoformat(),
        "affected": works.affected,
        "reminder": None
        if reminder is None
        else {"due_at": reminder.due_at.isoformat(), "status": reminder.status},
        "notices": {k: counts[NOTICE][k] for k in (DELIVERED, FAILED, "pending")},
        "reminders": {k: counts[REMINDER][k] for k in (DELIVERED, FAILED, "pending")},
        "failures": failures,
    }

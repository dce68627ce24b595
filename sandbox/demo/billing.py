"""Demo of seed 001's SMS side, after the payments scenario: the reminders and the disconnection
warning it caused, a disconnection held for a debt and let go by a person's override, «вы
подключены» when a connection closes, a complaint as its department's task, planned repair works
notified and reminded by SMS with a report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery import current_app
from sqlalchemy import select

from models.db import session_scope
from models.payments import SubscriberRequest
from models.sms import DELIVERED, SmsMessage
from sandbox.demo import DemoContext
from sandbox.demo.payments import DEBTOR
from tasks.machinery.master_data import import_master_data
from tasks.payments import requests, works


def run(ctx: DemoContext) -> None:
    smsc = ctx.sandbox.emulator("sms")
    portal = ctx.sandbox.emulator("bitrix24")
    warning = f"disconnect_warning:{DEBTOR}:2026-11"
    ctx.wait_for(lambda: _sms_status(warning) == DELIVERED, "the disconnection warning delivered")
    with session_scope() as session:
        for message in session.scalars(select(SmsMessage).order_by(SmsMessage.id)):
            ctx.say(
                f"SMS {message.business_key} -> +{message.phone}: {message.status} «{message.text[:70]}…»"
            )
    ctx.say(f"SMSC took {len(smsc.messages)} messages (each once, filed under obmen's row id)")

    _submit(number="О-100", kind="disconnect", inn=DEBTOR)
    held = ctx.wait_for(lambda: _request_status("О-100") == requests.AWAITING_PAYMENT, "the debt gate")
    ctx.say(f"disconnection О-100 of {DEBTOR}, who owes: {requests.AWAITING_PAYMENT if held else '?'}")
    with session_scope() as session:
        requests.override(session, "О-100", "Иванова Анна", "договор расторгнут, долг передан юристам")
    ctx.wait_for(
        lambda: _request_status("О-100") == "process_started", "the overridden disconnection's process"
    )
    ctx.say(
        "override by Иванова Анна recorded (who, why, when); the disconnection process started in Bitrix24"
    )

    _submit(number="П-100", kind="connect", inn="7736050003", name="ООО «Новая связь»", phone="+79990000003")
    ctx.wait_for(lambda: _request_status("П-100") == "process_started", "the connection process")
    with session_scope() as session:
        requests.close(session, "П-100")
    ctx.wait_for(lambda: _sms_status("connected:П-100") == DELIVERED, "«вы подключены»")
    ctx.say(
        f"connection П-100 closed: SMS «{smsc.messages[-1]['text']}» delivered to +{smsc.messages[-1]['phone']}"
    )

    _submit(number="Ж-100", kind="complaint", inn=DEBTOR, comment="Нет связи с утра")
    ctx.wait_for(lambda: _request_status("Ж-100") == "process_started", "the complaint's task")
    task = next(t for t in portal.portal.tasks.values() if t.get("xmlId") == "subscriber_requests:Ж-100")
    ctx.say(
        f"complaint Ж-100 -> Bitrix24 task #{task['id']} «{task['title']}» for user {task['responsibleId']}"
    )

    with session_scope() as session:
        import_master_data(
            session,
            {
                "subscribers": [
                    {"inn": "7701001005", "name": "Петров П.", "phone": "+79990000010", "line": "Л-1"},
                    {
                        "inn": "7701001012",
                        "name": "Сидорова С.",
                        "phone": "+79990000011",
                        "address": "г. Казань, ул. Ленина, д. 3",
                    },
                    {"inn": "7701001020", "name": "Кузнецов К.", "phone": "8 (843) 200-00-12", "line": "Л-1"},
                ]
            },
        )
    # The reminder is due a day before the start: here a day and a few seconds away.
    starts = datetime.now(UTC) + timedelta(days=1, seconds=4)
    current_app.send_task(
        "billing.announce_works",
        kwargs={
            "number": "РР-2026-12-01",
            "line": "Л-1",
            "addresses": ["г. Казань, ул. Ленина"],
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=4)).isoformat(),
            "text": "Возможны перерывы связи.",
            "by": "Диспетчер",
        },
    )
    report = ctx.wait_for(
        lambda: _works_report(lambda r: r["reminders"]["delivered"] == 2), "the planned works' reminders"
    )
    ctx.say(
        f"planned works РР-2026-12-01 on Л-1 and ул. Ленина: {report['affected']} subscribers; notices "
        f"{report['notices']}, reminder the day before ({report['reminder']['status']}) {report['reminders']}"
    )
    for failure in report["failures"][:1]:
        ctx.say(f"  failed: {failure['phone']}: {failure['reason']}")


def _submit(**kwargs: Any) -> None:
    current_app.send_task("billing.submit_request", kwargs=kwargs)


def _request_status(number: str) -> str | None:
    with session_scope() as session:
        return session.scalar(select(SubscriberRequest.status).where(SubscriberRequest.number == number))


def _sms_status(key: str) -> str | None:
    with session_scope() as session:
        return session.scalar(select(SmsMessage.status).where(SmsMessage.business_key == key))


def _works_report(ready: Any) -> dict[str, Any] | None:
    with session_scope() as session:
        try:
            report = works.report(session, "РР-2026-12-01")
        except works.UnknownWorks:
            return None
        return report if ready(report) else None

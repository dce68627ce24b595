"""«SMS»: the register of SMS to subscribers (``sms_messages``, seed 001): to whom, what about, where
each stands — sent, delivered or failed with the provider's reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.sms import DELIVERED, FAILED, NEW, SENT, SmsMessage
from workers.gateway.console.pages import Flow, Page
from workers.gateway.console.payments import before
from workers.gateway.console.web import STATUS_WORDS, Column, ConsoleRoute, Listing, Person, list_page, viewer

router = APIRouter(route_class=ConsoleRoute)

KIND_WORDS = {
    "reminder": "Напоминание об оплате",
    "disconnect_warning": "Предупреждение об отключении",
    "connected": "Вы подключены",
    "works": "Плановые работы",
    "works_reminder": "Напоминание о работах",
}
STATUSES = {s: STATUS_WORDS[s][0] for s in (NEW, SENT, DELIVERED, FAILED)}


def _messages(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    query = select(SmsMessage).order_by(SmsMessage.id.desc()).limit(limit)
    if (cursor := before(after)) is not None:
        query = query.where(SmsMessage.id < cursor)
    for name, column in (
        ("phone", SmsMessage.phone),
        ("inn", SmsMessage.subscriber_inn),
        ("kind", SmsMessage.kind),
        ("status", SmsMessage.status),
        ("campaign", SmsMessage.campaign),
    ):
        if value := chosen.get(name):
            query = query.where(column == value)
    return [
        {
            "id": m.id,
            "phone": m.phone,
            "subscriber_inn": m.subscriber_inn,
            "kind": KIND_WORDS.get(m.kind, m.kind),
            "text": m.text,
            # A message the machinery stopped retrying is shown so, whatever its last status.
            "status": "parked" if m.parked_at is not None else m.status,
            "created_at": m.created_at,
            "sent_at": m.sent_at,
            "delivered_at": m.finished_at if m.status == DELIVERED else None,
            "error": m.failure or m.last_error,
        }
        for m in session.scalars(query)
    ]


MESSAGES = Listing(
    "sms",
    (
        Column("id", "№"),
        Column("phone", "Кому", "code"),
        Column("subscriber_inn", "Абонент", "code"),
        Column("kind", "Вид"),
        Column("text", "Текст"),
        Column("status", "Статус", "status"),
        Column("created_at", "Создано", "dt"),
        Column("sent_at", "Отправлено", "dt"),
        Column("delivered_at", "Доставлено", "dt"),
        Column("error", "Ошибка"),
    ),
    _messages,
    filters=("phone", "inn", "kind", "status", "campaign"),
)


@router.get("/sms")
def messages(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, MESSAGES, "sms.html", title="SMS", kinds=KIND_WORDS, statuses=STATUSES)


FLOW = Flow(router, pages=(Page("/console/sms", "SMS"),), systems=("sms",))

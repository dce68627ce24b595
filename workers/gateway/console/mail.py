"""Mail: the letters read from the mailbox (incoming) and the letters obmen sent (outgoing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.mail import MailMessage, OutgoingLetter
from workers.gateway.console.pages import Flow, Page
from workers.gateway.console.web import Column, ConsoleRoute, Listing, Person, list_page, viewer

router = APIRouter(prefix="/mail", route_class=ConsoleRoute)


def _before(after: Any) -> int | None:
    try:
        return int(after) if after is not None else None
    except ValueError:
        return None


def _incoming(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    query = select(MailMessage).order_by(MailMessage.id.desc()).limit(limit)
    if (cursor := _before(after)) is not None:
        query = query.where(MailMessage.id < cursor)
    if status := chosen.get("status"):
        query = query.where(MailMessage.status == status)
    if number := chosen.get("application"):
        query = query.where(MailMessage.application_number == number)
    return [
        {
            "id": m.id,
            "received_at": m.received_at,
            "sender": m.sender,
            "subject": m.subject,
            "status": m.status if m.parked_at is None else "parked",
            "kind": m.kind,
            "application_number": m.application_number,
            "responsible_id": m.responsible_id,
            "reason": m.reason or m.match_reason,
        }
        for m in session.scalars(query)
    ]


INCOMING = Listing(
    "mail_messages",
    (
        Column("id", "№"),
        Column("received_at", "Получено", "dt"),
        Column("sender", "От кого"),
        Column("subject", "Тема"),
        Column("status", "Статус", "status"),
        Column(
            "application_number", "Заявление", "code", link="/console/sep/applications/{application_number}"
        ),
        Column("responsible_id", "Ответственный"),
        Column("reason", "Примечание"),
    ),
    _incoming,
    filters=("status", "application"),
)


def _outgoing(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    query = select(OutgoingLetter).order_by(OutgoingLetter.id.desc()).limit(limit)
    if (cursor := _before(after)) is not None:
        query = query.where(OutgoingLetter.id < cursor)
    if status := chosen.get("status"):
        query = query.where(OutgoingLetter.status == status)
    return [
        {
            "id": m.id,
            "created_at": m.created_at,
            "to": f"{m.to_name} <{m.to_address}>" if m.to_name else m.to_address,
            "subject": m.subject,
            "status": m.status if m.parked_at is None else "parked",
            "sent_at": m.sent_at,
            "source": m.source,
        }
        for m in session.scalars(query)
    ]


OUTGOING = Listing(
    "outgoing_letters",
    (
        Column("id", "№"),
        Column("created_at", "Создано", "dt"),
        Column("to", "Кому"),
        Column("subject", "Тема"),
        Column("status", "Статус", "status"),
        Column("sent_at", "Отправлено", "dt"),
        Column("source", "Основание", "code"),
    ),
    _outgoing,
    filters=("status",),
)


@router.get("")
def incoming(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, INCOMING, title="Входящие письма")


@router.get("/outgoing")
def outgoing(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, OUTGOING, title="Исходящие письма")


FLOW = Flow(
    router,
    pages=(Page("/console/mail", "Почта"),),
    systems=("imap", "smtp"),
)

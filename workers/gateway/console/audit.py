"""The audit register in the console: who did what, when, to which row, and how it ended."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.console import ConsoleAudit
from workers.gateway.console.pages import Flow, Page
from workers.gateway.console.web import Column, ConsoleRoute, Listing, Person, list_page, viewer

router = APIRouter(route_class=ConsoleRoute)


def _audit(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    query = select(ConsoleAudit).order_by(ConsoleAudit.id.desc()).limit(limit)
    if after is not None and str(after).isdigit():
        query = query.where(ConsoleAudit.id < int(after))
    if login := chosen.get("login"):
        query = query.where(ConsoleAudit.login == login)
    if action := chosen.get("action"):
        query = query.where(ConsoleAudit.action == action)
    return [
        {
            "id": a.id,
            "at": a.at,
            "login": a.login,
            "address": a.address,
            "action": a.action,
            "target": a.target,
            "detail": a.detail,
            "outcome": a.outcome,
        }
        for a in session.scalars(query)
    ]


AUDIT = Listing(
    "console_audit",
    (
        Column("at", "Когда", "dt"),
        Column("login", "Кто"),
        Column("action", "Действие", "code"),
        Column("target", "Строка", "code"),
        Column("detail", "Подробности", "json"),
        Column("outcome", "Итог"),
        Column("address", "Адрес", "code"),
    ),
    _audit,
    filters=("login", "action"),
)


@router.get("/audit")
def audit(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, AUDIT, title="Журнал действий")


FLOW = Flow(router, pages=(Page("/console/audit", "Журнал действий"),))

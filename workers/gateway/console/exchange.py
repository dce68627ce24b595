"""The exchange log (the seed's «XML» tab): every request to and answer from an external system, with
the raw bodies pretty-printed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.db import session_scope
from models.exchange_log import ExchangeLog
from workers.gateway.console.pages import Flow, Page
from workers.gateway.console.web import Column, ConsoleRoute, Listing, Person, list_page, render, viewer
from workers.gateway.params import Id

router = APIRouter(prefix="/exchange", route_class=ConsoleRoute)
# Larger bodies are shown as they are (pretty-printing is for reading, not for megabytes).
PRETTY_LIMIT = 2_000_000


def pretty(body: str | None) -> str:
    """XML or JSON indented for reading; anything else as it is. Never resolves entities or DTDs."""
    if not body:
        return ""
    text = body.strip()
    if len(text) > PRETTY_LIMIT:
        return body
    if text[:1] in "{[":
        try:
            return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
        except ValueError:
            return body
    if text.startswith("<"):
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True, huge_tree=False
        )
        try:
            root = etree.fromstring(text.encode(), parser)
        except (etree.XMLSyntaxError, ValueError):
            return body
        return str(etree.tostring(root, pretty_print=True, encoding="unicode"))
    return body


def _before(after: Any) -> int | None:
    try:
        return int(after) if after is not None else None
    except ValueError:
        return None


def _log(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    query = (
        select(
            ExchangeLog.id,
            ExchangeLog.created_at,
            ExchangeLog.system,
            ExchangeLog.operation,
            ExchangeLog.direction,
            ExchangeLog.business_key,
            ExchangeLog.response_status,
            ExchangeLog.duration_ms,
            ExchangeLog.error,
        )
        .order_by(ExchangeLog.id.desc())
        .limit(limit)
    )
    if (cursor := _before(after)) is not None:
        query = query.where(ExchangeLog.id < cursor)
    if system := chosen.get("system"):
        query = query.where(ExchangeLog.system == system)
    if key := chosen.get("key"):
        query = query.where(ExchangeLog.business_key == key)
    return [
        {
            **row._asdict(),
            "result": "error" if row.error or (row.response_status or 0) >= 400 else "done",
            "duration_ms": round(row.duration_ms) if row.duration_ms is not None else None,
        }
        for row in session.execute(query)
    ]


EXCHANGE = Listing(
    "exchange_log",
    (
        Column("id", "№", link="/console/exchange/{id}"),
        Column("created_at", "Когда", "dt"),
        Column("system", "Система", "code"),
        Column("operation", "Операция"),
        Column("direction", "Направление"),
        Column("business_key", "Ключ", "code"),
        Column("response_status", "HTTP"),
        Column("result", "Итог", "status"),
        Column("duration_ms", "мс"),
    ),
    _log,
    filters=("system", "key"),
)


@router.get("")
def exchange_log(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, EXCHANGE, title="Журнал обмена")


@router.get("/{entry_id}")
def exchange_entry(request: Request, entry_id: Id, person: Person = viewer) -> Response:
    with session_scope() as session:
        entry = session.get(ExchangeLog, entry_id)
        if entry is None:
            raise HTTPException(404, "no such exchange")
        return render(
            request,
            "exchange.html",
            person,
            entry=entry,
            request_body=pretty(entry.request_body),
            response_body=pretty(entry.response_body),
        )


FLOW = Flow(router, pages=(Page("/console/exchange", "Журнал обмена"),))

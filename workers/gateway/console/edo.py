"""Legally significant EDO (seed 002): the company's incoming documents with their answer dates,
the overdue ones on the start page, and a package with its «XML» tab (``tasks/edo/queries.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from models.db import session_scope
from tasks.edo import queries
from workers.gateway.console.exchange import pretty
from workers.gateway.console.pages import Flow, Page, Widget
from workers.gateway.console.web import Column, ConsoleRoute, Listing, Person, list_page, render, viewer
from workers.gateway.params import Id

router = APIRouter(prefix="/edo", route_class=ConsoleRoute)


def _incoming(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    # queries.incoming pages by offset; the cursor here is the offset itself.
    offset = int(after) if after is not None and str(after).isdigit() else 0
    if chosen.get("overdue"):
        rows = queries.overdue(session, limit=limit, offset=offset)
    else:
        rows = queries.incoming(session, chosen.get("status") or None, limit=limit, offset=offset)
    return [{**asdict(r), "position": offset + n} for n, r in enumerate(rows, start=1)]


INCOMING = Listing(
    "edo_incoming",
    (
        Column("title", "Документ", link="/console/edo/packages/{package_id}"),
        Column("document_type", "Вид"),
        Column("customer_name", "Контрагент"),
        Column("customer_inn", "ИНН", "code"),
        Column("status", "Статус", "status"),
        Column("responsible_id", "Ответственный"),
        Column("sent_at", "Получен", "dt"),
        Column("answer_due_at", "Ответить до", "dt"),
        Column("answered_at", "Ответ", "dt"),
    ),
    _incoming,
    cursor="position",
    filters=("status", "overdue"),
)


@router.get("")
def incoming(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, INCOMING, title="ЭДО: входящие документы")


@router.get("/packages/{package_id}")
def package(request: Request, package_id: Id, person: Person = viewer) -> Response:
    try:
        with session_scope() as session:
            found = queries.package(session, package_id)
            log = queries.xml_log(session, package_id)
    except queries.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return render(
        request,
        "edo_package.html",
        person,
        package=found,
        log=[(e, pretty(e.request_body), pretty(e.response_body)) for e in log],
    )


FLOW = Flow(
    router,
    pages=(Page("/console/edo", "ЭДО"),),
    widgets=(
        Widget("overdue_answers", "Просроченные ответы ЭДО", "/console/edo?overdue=1", queries.overdue_count),
    ),
    systems=("synerdocs",),
)

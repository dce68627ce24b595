"""Billing for issue 14 (seed 001): the disconnections held for a debt, which an operator lets go
ahead saying why (``billing.override_request``, as ``POST /billing/requests/<number>/override``; who is
the logged-in person), and the planned works with their mailing's report (``works.report``, as
``GET /billing/works/<number>``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.db import session_scope
from models.master import Subscriber
from models.payments import SubscriberBalance, SubscriberRequest
from models.works import PlannedWorks
from tasks.payments import works as works_logic
from tasks.payments.requests import AWAITING_PAYMENT, RequestConflict, UnknownRequest
from workers.gateway.console.actions import Refused, refused, run_entry
from workers.gateway.console.pages import Flow, Page, Widget
from workers.gateway.console.payments import before
from workers.gateway.console.web import (
    STATUS_WORDS,
    Column,
    ConsoleRoute,
    Listing,
    Person,
    Posted,
    back,
    flash,
    list_page,
    operator,
    posted,
    render,
    viewer,
)
from workers.gateway.params import Id

router = APIRouter(prefix="/billing", route_class=ConsoleRoute)
ANY_STATUS = "all"


def _disconnections(
    session: Session, chosen: Mapping[str, str], after: Any, limit: int
) -> list[dict[str, Any]]:
    query = (
        select(SubscriberRequest, SubscriberBalance.debt, Subscriber.name)
        .outerjoin(SubscriberBalance, SubscriberBalance.inn == SubscriberRequest.subscriber_inn)
        .outerjoin(Subscriber, Subscriber.inn == SubscriberRequest.subscriber_inn)
        .where(SubscriberRequest.kind == "disconnect")
        .order_by(SubscriberRequest.id.desc())
        .limit(limit)
    )
    if (cursor := before(after)) is not None:
        query = query.where(SubscriberRequest.id < cursor)
    # The work is the held ones; «все» shows the others too, with who let them go and why.
    status = chosen.get("status", AWAITING_PAYMENT)
    if status != ANY_STATUS:
        query = query.where(SubscriberRequest.status == status)
    if inn := chosen.get("inn"):
        query = query.where(SubscriberRequest.subscriber_inn == inn)
    return [
        {
            "id": r.id,
            "number": r.number,
            "created_at": r.created_at,
            "subscriber_inn": r.subscriber_inn,
            "subscriber_name": r.subscriber_name or name,
            "debt": debt,
            "comment": r.comment,
            "status": r.status,
            "override_by": r.override_by,
            "override_reason": r.override_reason,
            "override_at": r.override_at,
        }
        for r, debt, name in session.execute(query)
    ]


DISCONNECTIONS = Listing(
    "disconnections",
    (
        Column("number", "Заявка"),
        Column("created_at", "Получена", "dt"),
        Column("subscriber_inn", "Абонент", "code"),
        Column("subscriber_name", "Наименование"),
        Column("debt", "Долг", "money"),
        Column("comment", "Комментарий"),
        Column("status", "Статус", "status"),
        Column("override_by", "Кто разрешил"),
        Column("override_reason", "Почему"),
        Column("override_at", "Когда", "dt"),
    ),
    _disconnections,
    filters=("status", "inn"),
)
DISCONNECTION_STATUSES = {
    s: STATUS_WORDS[s][0] for s in (AWAITING_PAYMENT, "new", "process_started", "closed")
}


@router.get("/disconnections")
def disconnections(request: Request, person: Person = viewer) -> Response:
    return list_page(
        request,
        person,
        DISCONNECTIONS,
        "billing/disconnections.html",
        title="Отключения, ждущие оплаты",
        statuses=DISCONNECTION_STATUSES,
        any_status=ANY_STATUS,
    )


# The override's refusals (the HTTP route's 404/409 problems) in the person's words.
_NOT_WAITING = re.compile(r"request .+ does not wait for a payment \(its status is (?P<s>\w+)\)")


def _in_russian(reason: str) -> str:
    if found := _NOT_WAITING.match(reason):
        status = STATUS_WORDS.get(found["s"], (found["s"], ""))[0]
        return f"заявка уже не ждёт оплаты (статус «{status}»): обновите страницу"
    return "заявка не найдена" if reason.startswith("no request ") else reason


@router.post("/disconnections/{request_id}/override")
def override(request: Request, request_id: Id, person: Person = operator, form: Posted = posted) -> Response:
    """Let a disconnection held for the debt go ahead: the logged-in person and the reason are kept."""
    with session_scope() as session:
        held = session.get(SubscriberRequest, request_id)
        if held is None:
            raise HTTPException(404, "no such request")
        number = held.number
    action, target = "billing.override_request", f"subscriber_requests:{number}"
    reason = form.get("reason")
    try:
        if not reason:
            raise refused(request, person, action, target, {}, "укажите причину")
        kwargs = {"number": number, "by": f"console:{person.login}", "reason": reason}
        run_entry(request, person, action, kwargs, target, refusals=(RequestConflict, UnknownRequest))
    except Refused as exc:
        flash(request, f"Отключение по заявке {number} не разрешено: {_in_russian(str(exc))}", "bad")
        return back(request, "/console/billing/disconnections")
    flash(request, f"Отключение по заявке {number} разрешено несмотря на долг: причина записана")
    return back(request, "/console/billing/disconnections")


def _works(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    query = select(PlannedWorks).order_by(PlannedWorks.id.desc()).limit(limit)
    if (cursor := before(after)) is not None:
        query = query.where(PlannedWorks.id < cursor)
    if line := chosen.get("line"):
        query = query.where(PlannedWorks.line == line)
    return [
        {
            "id": w.id,
            "number": w.number,
            "line": w.line,
            "addresses": "; ".join(map(str, w.addresses or [])),
            "starts_at": w.starts_at,
            "ends_at": w.ends_at,
            "text": w.text,
            "announced_by": w.announced_by,
            "status": w.status,
            "affected": w.affected,
        }
        for w in session.scalars(query)
    ]


WORKS = Listing(
    "planned_works",
    (
        Column("number", "Номер", link="/console/billing/works/{id}"),
        Column("line", "Линия"),
        Column("addresses", "Адреса"),
        Column("starts_at", "Начало", "dt"),
        Column("ends_at", "Окончание", "dt"),
        Column("text", "Текст SMS"),
        Column("announced_by", "Кто объявил"),
        Column("status", "Статус", "status"),
        Column("affected", "Абонентов", "num"),
    ),
    _works,
    filters=("line",),
)


@router.get("/works")
def works(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, WORKS, title="Плановые работы")


@router.get("/works/{works_id}")
def works_report(request: Request, works_id: Id, person: Person = viewer) -> Response:
    """The mailing's report: notices and reminders delivered, failed (with why) and on their way."""
    with session_scope() as session:
        found = session.get(PlannedWorks, works_id)
        if found is None:
            raise HTTPException(404, "no such works")
        report = works_logic.report(session, found.number)
        campaign = works_logic.campaign(found)
    return render(request, "billing/works.html", person, report=report, campaign=campaign)


def _held(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(SubscriberRequest)
            .where(SubscriberRequest.kind == "disconnect", SubscriberRequest.status == AWAITING_PAYMENT)
        )
        or 0
    )


FLOW = Flow(
    router,
    pages=(
        Page("/console/billing/disconnections", "Отключения"),
        Page("/console/billing/works", "Плановые работы"),
    ),
    widgets=(
        Widget("disconnections_held", "Отключения ждут оплаты", "/console/billing/disconnections", _held),
    ),
)

"""Acts of completed work (seed 003): the register with filters, overdue acts, deals without acts, one
act with its files and history, and a manager's status step with the scan (``change_status``, as
``POST /acts/{id}/status``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.acts import ACT_STATUSES, ACT_TYPES, DEADLINE_SIGNATURE, EMAILING, SENDING, SENT, Act, ActDeadline
from models.db import db_now, session_scope
from tasks.acts import machine
from tasks.acts.queries import ActFilter, act_detail, acts_page, deals_without_acts
from tasks.acts.register import ActNotFound, Upload, change_status, lock_act
from workers.gateway.console.actions import record
from workers.gateway.console.pages import Flow, Page, Widget
from workers.gateway.console.web import (
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

router = APIRouter(prefix="/acts", route_class=ConsoleRoute)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _acts(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    flt = ActFilter(
        status=chosen.get("status"),
        deal_id=_int(chosen.get("deal")),
        company_id=_int(chosen.get("company")),
        act_type=chosen.get("type"),
        overdue=chosen.get("overdue") == "1",
        limit=limit,
    )
    return acts_page(session, flt, _int(after))


ACTS = Listing(
    "acts",
    (
        Column("number", "Номер", link="/console/acts/{id}"),
        Column("act_date", "Дата", "d"),
        Column("deal_id", "Сделка"),
        Column("counterparty_name", "Контрагент"),
        Column("counterparty_inn", "ИНН", "code"),
        Column("act_type_name", "Тип акта"),
        Column("amount", "Сумма", "money"),
        Column("status", "Статус", "status"),
        Column("signature_due_at", "Подписать до", "dt"),
    ),
    _acts,
    filters=("status", "deal", "company", "type", "overdue"),
)


@router.get("")
def acts(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, ACTS, "acts.html", title="Акты", statuses=ACT_STATUSES, types=ACT_TYPES)


def _deals(session: Session, chosen: Mapping[str, str], after: Any, limit: int) -> list[dict[str, Any]]:
    # deals_without_acts pages by offset; the cursor here is the offset itself.
    offset = _int(after) or 0
    rows: list[dict[str, Any]] = deals_without_acts(session, chosen.get("stage"), limit, offset)["deals"]
    for number, row in enumerate(rows, start=offset + 1):
        row["position"] = number
    return rows


DEALS = Listing(
    "deals_without_acts",
    (
        Column("deal_id", "Сделка"),
        Column("title", "Название"),
        Column("stage_id", "Стадия", "code"),
        Column("company_id", "Компания"),
        Column("exchange_method", "Способ обмена"),
        Column("form", "Анкета", "status"),
        Column("synced_at", "Обновлено", "dt"),
    ),
    _deals,
    cursor="position",
    filters=("stage",),
)


@router.get("/deals")
def deals(request: Request, person: Person = viewer) -> Response:
    return list_page(request, person, DEALS, title="Сделки без актов")


@router.get("/{act_id}")
def act(request: Request, act_id: Id, person: Person = viewer) -> Response:
    try:
        with session_scope() as session:
            found = act_detail(session, act_id)
    except ActNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    # The machine refuses a step that does not fit the act; the page offers every one a manager takes
    # (the sends to СБИС and by e-mail are obmen's own).
    steps = [s for s in ACT_STATUSES if s not in (SENDING, EMAILING)]
    return render(request, "act.html", person, act=found, steps=steps)


@router.post("/{act_id}/status")
async def act_status(
    request: Request, act_id: Id, person: Person = operator, form: Posted = posted
) -> Response:
    """A manager's step, with the scan where the step needs one."""
    status = form.get("status")
    scan = form.file("scan")
    upload = (
        Upload(scan.filename or "", scan.content_type or "application/octet-stream", await scan.read())
        if scan
        else None
    )
    target = f"acts:{act_id}"
    detail = {"status": status, "scan": upload.name if upload else None}
    outcome = "ok"
    try:
        with session_scope() as session:
            change_status(
                session,
                lock_act(session, act_id),
                status,
                actor=machine.MANAGER,
                note=form.get("note") or None,
                upload=upload,
            )
            record(session, request, person, "acts.status", target, detail)
        flash(request, f"Статус акта: {status}")
    except (ActNotFound, machine.IllegalTransition, ValueError) as exc:
        outcome = str(exc)
        flash(request, f"Статус не изменён: {exc}", "bad")
    if outcome != "ok":
        with session_scope() as session:
            record(session, request, person, "acts.status", target, detail, outcome)
    return back(request)


def _overdue(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Act)
            .join(ActDeadline, ActDeadline.act_id == Act.id)
            .where(
                Act.status == SENT,
                ActDeadline.kind == DEADLINE_SIGNATURE,
                ActDeadline.due_at <= db_now(session),
            )
        )
        or 0
    )


FLOW = Flow(
    router,
    pages=(Page("/console/acts", "Акты"), Page("/console/acts/deals", "Сделки без актов")),
    widgets=(Widget("overdue_acts", "Просроченные акты", "/console/acts?overdue=1", _overdue),),
    systems=("sbis",),
)

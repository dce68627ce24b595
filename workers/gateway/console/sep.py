"""АРМ СЭП: the seed's workstation tabs with their counts, the application form, the asset card.

The lists are ``tasks/sep/queries.py``'s; every button enqueues the same public entry
(``sep.request_applications``, ``sep.request_application_data``, ``sep.confirm_ownership_change``,
``sep.submit_lease_application``, ``sep.confirm_lease_application``) other services call.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.db import db_now, session_scope
from models.master import Asset, Employee, Organization
from models.sep import QUEUED, SepApplication, SepAssetStatus, SepRequest
from tasks.sep import queries
from workers.gateway.console.actions import Refused, enqueue_entry
from workers.gateway.console.pages import Flow, Page, Widget
from workers.gateway.console.web import (
    ConsoleRoute,
    Person,
    Posted,
    back,
    cached,
    flash,
    operator,
    posted,
    render,
    viewer,
)
from workers.gateway.params import Text

router = APIRouter(prefix="/sep", route_class=ConsoleRoute)


def window(request: Request) -> tuple[int, int]:
    """A work list's page: ``OBMEN_CONSOLE_PAGE_SIZE`` rows from ``?start=`` (rows skipped; work lists
    are the open work, short, so skipping costs little), and the whole count in the tab."""
    start = request.query_params.get("start", "")
    return get_settings().console_page_size, int(start) if start.isdigit() and len(start) <= 9 else 0


# The seed's tabs, in its order: (key, title, the summary count shown in brackets).
TABS = (
    ("request", "Запрос заявлений за период", None),
    ("letters", "Список писем к обработке", "letters"),
    ("ownership", "Смена собственника", "ownership_changes"),
    ("lease", "Заявление на лизинг", "lease_applications"),
    ("queue", "Очередь", "queue"),
    ("errors", "Ошибки", "errors"),
    ("changes", "Изменения лизинга", "lease_changes"),
    ("counterparties", "Контрагенты СЭП", "counterparties"),
)


def _summary() -> dict[str, int]:
    def compute() -> dict[str, int]:
        with session_scope() as session:
            return {
                **queries.summary(session),
                "lease_changes": queries.lease_changes(session, open_only=True, limit=0).count,
                "counterparties": queries.counterparties(session, open_only=True, limit=0).count,
            }

    counts: dict[str, int] = cached("sep.summary", compute)
    return counts


def tab_page(request: Request, person: Person, key: str, **context: Any) -> Response:
    counts = _summary()
    tabs = [(k, title, counts.get(c) if c else None) for k, title, c in TABS]
    return render(request, f"sep/{key}.html", person, tabs=tabs, tab=key, **context)


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def our_organizations(session: Session) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.name)))


@router.get("", dependencies=[viewer])
def sep_home() -> Response:
    return RedirectResponse("/console/sep/letters", status_code=303)


@router.get("/request")
def request_tab(request: Request, person: Person = viewer) -> Response:
    with session_scope() as session:
        recent = session.scalars(
            select(SepRequest)
            .where(SepRequest.operation == "RequestApplications")
            .order_by(SepRequest.id.desc())
            .limit(20)
        ).all()
        return tab_page(request, person, "request", organizations=our_organizations(session), recent=recent)


def _act(request: Request, person: Person, name: str, kwargs: dict[str, Any], target: str) -> bool:
    try:
        with session_scope() as session:
            enqueue_entry(session, request, person, name, kwargs, target)
    except Refused as exc:
        flash(request, f"{target}: {exc}", "bad")
        return False
    return True


@router.post("/request")
def request_applications(request: Request, person: Person = operator, form: Posted = posted) -> Response:
    kwargs = {
        "organization_inn": form.get("organization") or None,
        "period_from": _date(form.get("period_from")),
        "period_to": _date(form.get("period_to")),
    }
    if _act(request, person, "sep.request_applications", kwargs, "sep:period"):
        flash(request, "Запрос заявлений за период отправлен в очередь")
    return back(request)


@router.get("/letters")
def letters_tab(request: Request, person: Person = viewer) -> Response:
    size, start = window(request)
    with session_scope() as session:
        found = queries.letters(session, size, start)
    return tab_page(request, person, "letters", found=found, start=start)


@router.post("/letters")
def request_data(request: Request, person: Person = operator, form: Posted = posted) -> Response:
    """«Запрос данных заявления» for the selected letters' applications."""
    numbers = form.all("selected")
    if not numbers:
        flash(request, "Отметьте письма", "bad")
    sent = [
        n
        for n in dict.fromkeys(numbers)
        if _act(
            request,
            person,
            "sep.request_application_data",
            {"application_number": n, "refresh": True},
            f"sep_applications:{n}",
        )
    ]
    if sent:
        flash(request, f"Запрос данных заявления отправлен: {', '.join(sent)}")
    return back(request)


OWNERSHIP_FILTERS = ("responsible", "asset", "vin", "epts")


@router.get("/ownership")
def ownership_tab(request: Request, person: Person = viewer) -> Response:
    chosen = {k: request.query_params.get(k, "").strip() or None for k in OWNERSHIP_FILTERS}
    size, start = window(request)
    with session_scope() as session:
        found = queries.ownership_changes(
            session,
            responsible=chosen["responsible"],
            asset=chosen["asset"],
            vin=chosen["vin"],
            epts=chosen["epts"],
            limit=size,
            offset=start,
        )
        employees = list(session.scalars(select(Employee).order_by(Employee.name)))
    return tab_page(
        request, person, "ownership", found=found, employees=employees, chosen=chosen, start=start
    )


@router.post("/ownership")
def ownership_action(request: Request, person: Person = operator, form: Posted = posted) -> Response:
    """«Подтвердить» (with a code entered by hand where given) or «Обновить данные заявления»."""
    numbers = list(dict.fromkeys(form.all("selected")))
    action = form.get("action")
    if not numbers:
        flash(request, "Отметьте заявления", "bad")
        return back(request)
    done = []
    for number in numbers:
        target = f"sep_applications:{number}"
        if action == "refresh":
            ok = _act(
                request,
                person,
                "sep.request_application_data",
                {"application_number": number, "refresh": True},
                target,
            )
        else:
            code = form.get(f"code:{number}") or None
            ok = _act(
                request,
                person,
                "sep.confirm_ownership_change",
                {"application_number": number, "code": code},
                target,
            )
        if ok:
            done.append(number)
    if done:
        what = "Обновление данных" if action == "refresh" else "Подтверждение"
        flash(request, f"{what} отправлено в очередь: {', '.join(done)}")
    return back(request)


@router.get("/lease")
def lease_tab(request: Request, person: Person = viewer) -> Response:
    query = request.query_params
    organization = query.get("organization", "").strip() or None
    period_from, period_to = _date(query.get("period_from", "")), _date(query.get("period_to", ""))
    size, start = window(request)
    with session_scope() as session:
        candidates = (
            queries.lease_candidates_list(
                session, organization=organization, period_from=period_from, period_to=period_to
            )
            if query.get("fill")
            else None
        )
        leases = queries.lease_applications(
            session, status=query.get("status") or None, limit=size, offset=start
        )
        organizations = our_organizations(session)
    return tab_page(
        request,
        person,
        "lease",
        candidates=candidates,
        leases=leases,
        organizations=organizations,
        start=start,
    )


@router.post("/lease")
def lease_action(request: Request, person: Person = operator, form: Posted = posted) -> Response:
    """«Отправить заявление на лизинг» for selected appendices, or «Подтвердить» selected applications."""
    if form.get("action") == "confirm":
        numbers = list(dict.fromkeys(form.all("application")))
        done = [
            n
            for n in numbers
            if _act(
                request,
                person,
                "sep.confirm_lease_application",
                {"application_number": n, "code": form.get(f"code:{n}") or None},
                f"sep_lease_applications:{n}",
            )
        ]
        if done:
            flash(request, f"Подтверждение заявления на лизинг отправлено: {', '.join(done)}")
        elif not numbers:
            flash(request, "Отметьте заявления", "bad")
        return back(request)
    contracts = list(dict.fromkeys(form.all("contract")))
    kwargs = {
        "use_technical_mailbox": form.get("technical") == "on",
        "confirm_by": _date(form.get("confirm_by")),
    }
    done = [
        c
        for c in contracts
        if _act(
            request,
            person,
            "sep.submit_lease_application",
            {"lease_contract": c, **kwargs},
            f"lease_contracts:{c}",
        )
    ]
    if done:
        flash(request, f"Заявление на лизинг отправлено: {', '.join(done)}")
    elif not contracts:
        flash(request, "Отметьте приложения ДЛ", "bad")
    return back(request)


@router.get("/queue")
def queue_tab(request: Request, person: Person = viewer) -> Response:
    size, start = window(request)
    with session_scope() as session:
        found = queries.queue(session, size, start)
    return tab_page(request, person, "queue", found=found, start=start)


@router.get("/errors")
def errors_tab(request: Request, person: Person = viewer) -> Response:
    size, start = window(request)
    with session_scope() as session:
        found = queries.errors(session, size, start)
    return tab_page(request, person, "errors", found=found, start=start)


@router.get("/applications/{number}")
def application(request: Request, number: Text, person: Person = viewer) -> Response:
    """The application as SEP shows it: its data, vehicles and parties with their statuses."""
    with session_scope() as session:
        found = session.scalars(
            select(SepApplication).where(SepApplication.application_number == number[:64])
        ).one_or_none()
        if found is None:
            raise HTTPException(404, "no such application")
        requests = session.scalars(
            select(SepRequest)
            .where(SepRequest.application_number == found.application_number)
            .order_by(SepRequest.id.desc())
            .limit(20)
        ).all()
        return tab_page(request, person, "application", app=found, requests=requests)


@router.get("/assets/{inventory_number}")
def asset_card(request: Request, inventory_number: Text, person: Person = viewer) -> Response:
    """The asset card with «Статусы основных средств» and their period."""
    with session_scope() as session:
        asset = session.get(Asset, inventory_number[:64])
        if asset is None:
            raise HTTPException(404, "no such asset")
        statuses = session.scalars(
            select(SepAssetStatus)
            .where(SepAssetStatus.asset_inventory_number == asset.inventory_number)
            .order_by(SepAssetStatus.period.desc(), SepAssetStatus.id.desc())
            .limit(200)
        ).all()
        responsible = session.get(Employee, asset.responsible_id) if asset.responsible_id else None
        return tab_page(request, person, "asset", asset=asset, statuses=statuses, responsible=responsible)


def _ready_queue_numbers(session: Session) -> int:
    """Queue numbers whose result may be read now (their poll time has come)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(SepRequest)
            .where(SepRequest.status == QUEUED, SepRequest.next_poll_at <= db_now(session))
        )
        or 0
    )


FLOW = Flow(
    router,
    pages=(Page("/console/sep/letters", "АРМ СЭП"),),
    widgets=(
        Widget(
            "letters", "Необработанные письма", "/console/sep/letters", lambda s: queries.letters(s, 0).count
        ),
        Widget("ready_queue", "Номера очереди готовы к чтению", "/console/sep/queue", _ready_queue_numbers),
    ),
    systems=("sep", "mail"),
)

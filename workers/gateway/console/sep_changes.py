"""АРМ СЭП for issue 14: the tabs «Изменения лизинга» (terminations, перенаём, ends of lease, confirmed
with the parties' codes) and «Контрагенты СЭП» (a counterparty registered in SEP by its ИНН).

Both forms run the public entries (``sep.confirm_lease_change``, ``sep.register_counterparty``) in the
request, as ``POST /sep/lease-change-confirmations`` and ``/sep/counterparty-registrations`` do, not
through the outbox: what the registers refuse (a change not registered yet, no code, a counterparty
missing from master data) is said on the page at once, in Russian, and nothing but the audit row is
written. What the entries start (the SEP request and its first step) runs on a worker as always.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from integrations.sep.messages import PartyRole, PartyStatus
from integrations.validation import validate_inn, validate_kpp
from models.db import session_scope
from models.sep import (
    COUNTERPARTY_CHECKING,
    COUNTERPARTY_ERROR,
    COUNTERPARTY_FOUND,
    COUNTERPARTY_REGISTERED,
    COUNTERPARTY_REGISTERING,
    LEASE_CONFIRMING,
    LEASE_DRAFT,
    LEASE_ERROR,
    LEASE_EXECUTED,
    LEASE_REGISTERED,
    LEASE_REJECTED,
    LEASE_SUBMITTING,
)
from tasks.sep import queries
from tasks.sep.lease_changes import CONFIRMING
from workers.gateway.console.actions import Refused, refused, run_entry
from workers.gateway.console.pages import Flow, Widget
from workers.gateway.console.sep import our_organizations, tab_page, window
from workers.gateway.console.web import ConsoleRoute, Person, Posted, back, flash, operator, posted, viewer

router = APIRouter(prefix="/sep", route_class=ConsoleRoute)

KIND_WORDS = {"Termination": "Расторжение", "LesseeChange": "Перенаём", "LeaseEnd": "Окончание лизинга"}
ROLE_WORDS = {
    "Lessor": "лизингодатель",
    "Lessee": "лизингополучатель",
    "NewLessee": "новый лизингополучатель",
}
PARTY_WORDS = {"Confirmed": "подтвердил", "Rejected": "отклонил", "NotApplicable": "ещё не подтвердил"}
CODE_LABELS = {
    PartyRole.LESSEE: "код лизингополучателя",
    PartyRole.NEW_LESSEE: "код нового лизингополучателя",
}
CODE = re.compile(r"\d{4,12}")
CHANGE_STATUSES = (
    LEASE_DRAFT,
    LEASE_SUBMITTING,
    LEASE_REGISTERED,
    LEASE_CONFIRMING,
    LEASE_EXECUTED,
    LEASE_REJECTED,
    LEASE_ERROR,
)
COUNTERPARTY_STATUSES = (
    COUNTERPARTY_CHECKING,
    COUNTERPARTY_REGISTERING,
    COUNTERPARTY_FOUND,
    COUNTERPARTY_REGISTERED,
    COUNTERPARTY_ERROR,
)


def _missing(found: dict[str, str]) -> str:
    words = {"ogrn": "ОГРН", "address": "адреса"}
    return " и ".join(words.get(m, m) for m in found["m"].split(" and no "))


# The registers' refusals (the HTTP routes' 409 problems, in English) in the person's words.
REFUSALS: tuple[tuple[re.Pattern[str], Callable[[dict[str, str]], str]], ...] = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        (r"no lease change № (?P<n>.+)$", lambda g: f"нет изменения лизинга № {g['n']}"),
        (
            r"lease change № .+ is «(?P<s>[^»]+)»: only a registered one",
            lambda g: f"оно в статусе «{g['s']}», подтверждается только «{LEASE_REGISTERED}»",
        ),
        (
            r".+ has nothing to confirm in lease change",
            lambda g: "эта сторона уже ответила — обновите страницу",
        ),
        (
            r"no code for the (?P<r>\w+) of lease change",
            lambda g: f"введите {CODE_LABELS.get(PartyRole(g['r']), 'код')} из письма СЭП",
        ),
        (
            r"no counterparty with ИНН (?P<i>\d+)",
            lambda g: f"контрагента с ИНН {g['i']} нет в справочнике из 1С",
        ),
        (
            r"ИНН \d+ has several КПП in master data \((?P<k>[^)]*)\)",
            lambda g: f"у этого ИНН в справочнике несколько КПП ({g['k']}): укажите КПП",
        ),
        (
            r"the counterparty ИНН \d+ has no (?P<m>.+?) in master data",
            lambda g: (
                f"в справочнике из 1С у контрагента нет {_missing(g)}: добавьте в выгрузку 1С и повторите"
            ),
        ),
        (
            r"the counterparty ИНН \d+ in master data cannot be sent: (?P<p>.+)",
            lambda g: f"данные контрагента из 1С не проходят проверку СЭП ({g['p']})",
        ),
        (r"ИНН (?P<i>\d+) is not one of our organisations", lambda g: f"ИНН {g['i']} — не наша организация"),
        (r"say which organisation asks", lambda g: "выберите организацию: настройки СЭП есть у нескольких"),
        (r"no organisation has SEP settings", lambda g: "ни у одной организации нет настроек СЭП"),
    )
)


def in_russian(reason: str) -> str:
    for pattern, words in REFUSALS:
        if found := pattern.match(reason):
            return words(found.groupdict())
    return reason


def _change_row(item: dict[str, Any]) -> dict[str, Any]:
    parties = item.get("parties") or []
    waiting = [
        (role, CODE_LABELS[role])
        for role in CONFIRMING
        for p in parties
        if p["role"] == role.value and p["status"] != PartyStatus.CONFIRMED.value
    ]
    return {
        **item,
        "kind_words": KIND_WORDS.get(item["kind"], item["kind"]),
        "party_words": [
            f"{ROLE_WORDS.get(p['role'], p['role'])} {p['inn']}: {PARTY_WORDS.get(p['status'], p['status'])}"
            for p in parties
        ],
        # Codes are asked for only where SEP waits for them (the entry refuses the others).
        "waiting": waiting if item["status"] == LEASE_REGISTERED else [],
    }


def _filtered(request: Request) -> tuple[int, int, str | None]:
    """The tab's page (``window``) and its status filter."""
    size, start = window(request)
    return size, start, request.query_params.get("status", "").strip() or None


@router.get("/changes")
def changes_tab(request: Request, person: Person = viewer) -> Response:
    size, start, status = _filtered(request)
    with session_scope() as session:
        found = queries.lease_changes(session, status=status, limit=size, offset=start)
    found.items = [_change_row(item) for item in found.items]
    return tab_page(request, person, "changes", found=found, start=start, statuses=CHANGE_STATUSES)


@router.post("/changes/confirm")
def confirm_change(request: Request, person: Person = operator, form: Posted = posted) -> Response:
    """«Подтвердить» a registered lease change with the codes from the parties' letters."""
    number = form.get("change_number")
    codes = {role.value: form.get(f"code:{role.value}") for role in CONFIRMING}
    codes = {role: code for role, code in codes.items() if code}
    action, target = "sep.confirm_lease_change", f"sep_lease_changes:{number}"
    try:
        problems = [
            f"{CODE_LABELS[PartyRole(role)]} — от 4 до 12 цифр"
            for role, code in codes.items()
            if not CODE.fullmatch(code)
        ]
        if not number or len(number) > 100:
            problems.insert(0, "не указан номер изменения лизинга")
        if problems:
            raise refused(request, person, action, target, {"codes": codes}, "; ".join(problems))
        answer = run_entry(request, person, action, {"change_number": number, "codes": codes}, target)
    except Refused as exc:
        flash(request, f"Изменение лизинга № {number} не подтверждено: {in_russian(str(exc))}", "bad")
        return back(request, "/console/sep/changes")
    if answer["created"]:
        flash(request, f"Подтверждение изменения лизинга № {number} отправлено в СЭП")
    else:
        flash(request, f"Подтверждение изменения лизинга № {number} уже отправлено, ждёт ответа СЭП")
    return back(request, "/console/sep/changes")


@router.get("/counterparties")
def counterparties_tab(request: Request, person: Person = viewer) -> Response:
    size, start, status = _filtered(request)
    with session_scope() as session:
        found = queries.counterparties(session, status=status, limit=size, offset=start)
        organizations = our_organizations(session)
    return tab_page(
        request,
        person,
        "counterparties",
        found=found,
        start=start,
        statuses=COUNTERPARTY_STATUSES,
        organizations=organizations,
    )


def _checked(value: str, check: Callable[[str], str], problem: str, problems: list[str]) -> str | None:
    try:
        return check(value) if value else None
    except ValueError:
        problems.append(problem)
        return None


@router.post("/counterparties")
def register_counterparty(request: Request, person: Person = operator, form: Posted = posted) -> Response:
    """«Зарегистрировать в СЭП»: look the counterparty up by ИНН, registered from master data if missing."""
    given = {k: form.get(k) for k in ("inn", "kpp", "organization")}
    action, target = "sep.register_counterparty", f"sep_counterparties:{given['inn']}"
    problems: list[str] = [] if given["inn"] else ["укажите ИНН контрагента"]
    inn = _checked(given["inn"], validate_inn, "ИНН — 10 или 12 цифр с верной контрольной суммой", problems)
    kpp = _checked(
        given["kpp"], validate_kpp, "КПП — 9 знаков: 4 цифры, 2 цифры или буквы, 3 цифры", problems
    )
    try:
        if problems:
            raise refused(request, person, action, target, given, "; ".join(problems))
        kwargs = {"inn": inn, "kpp": kpp, "organization_inn": given["organization"] or None}
        answer = run_entry(request, person, action, kwargs, target)
    except Refused as exc:
        flash(request, f"Контрагент не зарегистрирован: {in_russian(str(exc))}", "bad")
        return back(request, "/console/sep/counterparties")
    if answer["request_id"] is None:
        flash(request, f"Контрагент с ИНН {inn} уже в СЭП («{answer['counterparty_status']}»)")
    elif answer["created"]:
        flash(request, f"Контрагент с ИНН {inn}: запрос в СЭП отправлен («{answer['counterparty_status']}»)")
    else:
        flash(request, f"Контрагент с ИНН {inn}: запрос уже отправлен, ждёт ответа СЭП")
    return back(request, "/console/sep/counterparties")


FLOW = Flow(
    router,
    widgets=(
        Widget(
            "lease_changes_waiting",
            "Изменения лизинга ждут кодов",
            f"/console/sep/changes?status={quote(LEASE_REGISTERED)}",
            lambda s: queries.lease_changes(s, status=LEASE_REGISTERED, limit=0).count,
        ),
        Widget(
            "counterparty_errors",
            "Контрагенты СЭП с ошибкой",
            f"/console/sep/counterparties?status={quote(COUNTERPARTY_ERROR)}",
            lambda s: queries.counterparties(s, status=COUNTERPARTY_ERROR, limit=0).count,
        ),
    ),
)

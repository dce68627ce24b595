"""What the seed's people are told by e-mail, through the mail flow's one outgoing path (``queue_letter``).

* «заявление исполнено»: the application's responsible, once, when obmen first sees it executed;
* a request that failed: the responsible of what it is about, else the SEP-responsible;
* the daily digest of what waits for a person (``sep.send_digest``): the SEP-responsible.

Every letter has a business key, so a step that runs twice, or a beat that fires twice a day,
writes one letter. Somebody without an e-mail in master data is skipped with a log line: the
registers and work lists still show it all.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.master import Asset, Employee, SepSettings
from models.sep import (
    AWAITING_CONFIRMATION,
    LEASE_REGISTERED,
    SepApplication,
    SepLeaseApplication,
    SepLeaseChange,
    SepRequest,
)
from tasks.mail.letters import queue_letter
from tasks.sep.lookup import sep_responsible, today, usable_code

log = structlog.get_logger(__name__)

# Errors that are an answer, not a failure: SEP has no such counterparty, so obmen registers it.
EXPECTED_ERRORS = {("FindCounterparty", "CounterpartyNotFound")}


def _send(
    session: Session, employee_id: str | None, business_key: str, subject: str, lines: list[str]
) -> bool:
    employee = session.get(Employee, employee_id) if employee_id else None
    if employee is None or not employee.email:
        log.warning("sep.notice_nobody_to_tell", business_key=business_key, employee=employee_id)
        return False
    text = "\n".join([f"{employee.name}, здравствуйте.", "", *lines, ""])
    queue_letter(
        session,
        business_key=business_key,
        to_address=employee.email,
        to_name=employee.name,
        subject=subject,
        text=text,
        source="sep",
    )
    return True


def application_executed(session: Session, row: SepApplication) -> None:
    """«Заявление исполнено», to the application's responsible (asset's, else the SEP-responsible)."""
    asset = session.get(Asset, row.asset_inventory_number) if row.asset_inventory_number else None
    vehicles = ", ".join(v["epts"] for v in row.vehicles)
    _send(
        session,
        row.responsible_id,
        f"sep-executed:{row.application_number}",
        f"СЭП: заявление № {row.application_number} исполнено",
        [
            f"Заявление СЭП № {row.application_number} ({row.kind}) исполнено.",
            f"ЭПТС: {vehicles}",
            f"Основное средство: {asset.inventory_number} {asset.name}" if asset else "Основное средство: —",
        ],
    )


def request_failed(session: Session, request: SepRequest) -> None:
    """A request that ended in SEP's error or refusal: its responsible person is told what and why."""
    errors = request.errors or []
    if any((request.operation, e.get("code")) in EXPECTED_ERRORS for e in errors):
        return
    what = request.application_number or request.business_key
    _send(
        session,
        responsible_for(session, request),
        f"sep-failed:{request.id}",
        f"СЭП: запрос {request.operation} не выполнен ({what})",
        [
            f"Запрос {request.operation} по «{what}» не выполнен.",
            *(f"{e.get('code')}: {e.get('message')}" for e in errors),
            f"Очередь обмена СЭП: sep_exchange_queue № {request.id}.",
        ],
    )


def responsible_for(session: Session, request: SepRequest) -> str | None:
    """Whose a request is: the application's, else the first vehicle's asset's, else the SEP-responsible."""
    if request.application_number:
        found = session.scalars(
            select(SepApplication.responsible_id).where(
                SepApplication.application_number == request.application_number
            )
        ).first()
        if found:
            return found
    epts = request.payload.get("epts") or []
    if epts:
        found = session.scalars(
            select(Asset.responsible_id).where(Asset.epts.in_(epts)).where(Asset.responsible_id.is_not(None))
        ).first()
        if found:
            return found
    organization = request.payload.get("organization_inn") or request.payload.get("lessor_inn")
    return sep_responsible(session, organization)


# --- the daily digest ---------------------------------------------------------------------------------
def waiting(session: Session, organization_inn: str) -> list[dict[str, Any]]:
    """What waits for a person in ``organization_inn``'s SEP work: a code missing, or a confirm-by
    date within ``OBMEN_SEP_DIGEST_DAYS`` (today included)."""
    day = today(session)
    soon = day + timedelta(days=get_settings().sep_digest_days)
    found: list[dict[str, Any]] = []

    def add(kind: str, number: str | None, confirm_by: date | None) -> None:
        if number is None:
            return
        no_code = usable_code(session, number) is None
        due = confirm_by is not None and day <= confirm_by <= soon
        if no_code or due:
            found.append(
                {"what": kind, "application_number": number, "confirm_by": confirm_by, "no_code": no_code}
            )

    for application in session.scalars(
        select(SepApplication)
        .where(SepApplication.organization_inn == organization_inn)
        .where(SepApplication.status == AWAITING_CONFIRMATION)
        .where(SepApplication.kind == "OwnershipChange")
        .where(SepApplication.our_status == "NotApplicable")
        .order_by(SepApplication.confirm_by)
    ):
        add("смена собственника", application.application_number, application.confirm_by)
    for lease in session.scalars(
        select(SepLeaseApplication)
        .where(SepLeaseApplication.organization_inn == organization_inn)
        .where(SepLeaseApplication.status == LEASE_REGISTERED)
        .order_by(SepLeaseApplication.confirm_by)
    ):
        add("заявление на лизинг", lease.application_number, lease.confirm_by)
    for change in session.scalars(
        select(SepLeaseChange)
        .where(SepLeaseChange.organization_inn == organization_inn)
        .where(SepLeaseChange.status == LEASE_REGISTERED)
        .order_by(SepLeaseChange.confirm_by)
    ):
        add(f"изменение лизинга {change.change_number}", change.application_number, change.confirm_by)
    return found


def send_digests(session: Session) -> list[dict[str, Any]]:
    """One digest a day per organisation with SEP settings, when anything waits (keyed by the day)."""
    day = today(session)
    sent = []
    for settings in session.scalars(select(SepSettings).order_by(SepSettings.organization_inn)):
        items = waiting(session, settings.organization_inn)
        if not items:
            continue
        lines = [f"Ожидают действий в СЭП на {day:%d.%m.%Y}: {len(items)}.", ""]
        for item in items:
            notes = ["нет кода подтверждения"] if item["no_code"] else []
            if item["confirm_by"] is not None:
                notes.append(f"подтвердить до {item['confirm_by']:%d.%m.%Y}")
            lines.append(f"• {item['what']}, заявление № {item['application_number']}: {', '.join(notes)}")
        told = _send(
            session,
            settings.responsible_id,
            f"sep-digest:{settings.organization_inn}:{day.isoformat()}",
            f"СЭП: ожидают действий — {len(items)} ({day:%d.%m.%Y})",
            lines,
        )
        sent.append({"organization_inn": settings.organization_inn, "items": len(items), "sent": told})
    return sent

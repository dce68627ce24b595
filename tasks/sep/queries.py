"""The work lists of the seed's SEP workstation (АРМ СЭП), each with its count: what a person has to
deal with. Read by the gateway (``/sep/...``) and ``obmen sep ...``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models.mail import MailMessage
from models.master import Asset, Employee
from models.sep import (
    COUNTERPARTY_IN_SEP,
    EXECUTED,
    LEASE_REJECTED,
    OPEN_STATUSES,
    SepApplication,
    SepCounterparty,
    SepExchangeError,
    SepLeaseApplication,
    SepLeaseChange,
    SepRequest,
)
from models.sep_codes import SepConfirmationCode
from tasks.sep.actions import lease_candidates

# Applications nobody needs to act on any more.
CLOSED_APPLICATION = (EXECUTED, "Отклонено", "Срок истёк")
DEFAULT_LIMIT = 200


@dataclass
class WorkList:
    name: str
    title: str
    count: int
    items: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "count": self.count, "items": self.items}


def _count(session: Session, query: Any) -> int:
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def _value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _row(obj: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    return {c: _value(getattr(obj, c)) for c in columns}


def letters(session: Session, limit: int = DEFAULT_LIMIT, offset: int = 0) -> WorkList:
    """Список писем к обработке: letters not read yet, letters that could not be read, and SEP
    letters whose application is not dealt with yet (no data, or not closed)."""
    query = (
        select(
            MailMessage,
            SepConfirmationCode.code,
            SepApplication.status,
            SepApplication.request_status,
            Employee.name,
        )
        .outerjoin(SepConfirmationCode, SepConfirmationCode.source_message_id == MailMessage.id)
        .outerjoin(SepApplication, SepApplication.application_number == MailMessage.application_number)
        .outerjoin(Employee, Employee.id == MailMessage.responsible_id)
        .where(MailMessage.duplicate_of_id.is_(None))
        .where(
            or_(
                MailMessage.status.in_(("new", "error")),
                (MailMessage.status == "processed")
                & (MailMessage.kind != "lease_entered")
                & or_(SepApplication.id.is_(None), SepApplication.status.not_in(CLOSED_APPLICATION)),
            )
        )
        .order_by(MailMessage.id)
    )
    columns = (
        "id",
        "received_at",
        "sender",
        "subject",
        "status",
        "reason",
        "kind",
        "application_number",
        "asset_inventory_number",
        "responsible_id",
        "match_reason",
    )
    items = []
    for message, code, application_status, request_status, responsible in session.execute(
        query.limit(limit).offset(offset)
    ):
        item = _row(message, columns)
        item.update(
            code=code,
            responsible=responsible,
            application_status=application_status,
            request_status=request_status,
        )
        items.append(item)
    return WorkList("letters", "Письма к обработке (letters to process)", _count(session, query), items)


def ownership_changes(
    session: Session,
    *,
    responsible: str | None = None,
    asset: str | None = None,
    vin: str | None = None,
    epts: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> WorkList:
    """Смена собственника: ownership changes to us not yet «Исполнен», with the seed's filters."""
    query = (
        select(SepApplication, Asset.name, Employee.name)
        .outerjoin(Asset, Asset.inventory_number == SepApplication.asset_inventory_number)
        .outerjoin(Employee, Employee.id == SepApplication.responsible_id)
        .where(SepApplication.kind == "OwnershipChange")
        .where(SepApplication.our_role == "NewOwner")
        .where(SepApplication.status != EXECUTED)
        .order_by(SepApplication.registered_at, SepApplication.id)
    )
    if responsible:
        query = query.where(SepApplication.responsible_id == responsible)
    if asset:
        query = query.where(SepApplication.asset_inventory_number == asset)
    if vin:
        query = query.where(SepApplication.vin == vin.strip().upper())
    if epts:
        query = query.where(SepApplication.epts == epts.strip())
    items = []
    for application, asset_name, responsible_name in session.execute(query.limit(limit).offset(offset)):
        item = _row(
            application,
            (
                "application_number",
                "status",
                "epts",
                "vin",
                "asset_inventory_number",
                "responsible_id",
                "current_owner_inn",
                "new_owner_inn",
                "our_status",
                "confirm_by",
                "request_status",
                "last_error",
                "fetched_at",
            ),
        )
        item["asset"] = asset_name
        item["responsible"] = responsible_name
        code = session.scalars(
            select(SepConfirmationCode.code)
            .where(SepConfirmationCode.application_number == application.application_number)
            .where(SepConfirmationCode.used_at.is_(None))
            .order_by(SepConfirmationCode.id.desc())
            .limit(1)
        ).first()
        item["code"] = code
        items.append(item)
    return WorkList(
        "ownership_changes", "Смена собственника (ownership changes)", _count(session, query), items
    )


def lease_applications(
    session: Session,
    *,
    status: str | None = None,
    open_only: bool = False,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> WorkList:
    """Заявления на лизинг: our lease applications, those still in progress first."""
    query = select(SepLeaseApplication).order_by(
        (SepLeaseApplication.status == EXECUTED), SepLeaseApplication.created_at, SepLeaseApplication.id
    )
    if status:
        query = query.where(SepLeaseApplication.status == status)
    if open_only:
        query = query.where(SepLeaseApplication.status != EXECUTED)
    columns = (
        "id",
        "lease_contract_number",
        "application_number",
        "status",
        "request_status",
        "lessee_inn",
        "epts",
        "lessor_status",
        "lessee_status",
        "confirm_by",
        "notification_email",
        "last_error",
        "updated_at",
    )
    items = [_row(r, columns) for r in session.scalars(query.limit(limit).offset(offset))]
    return WorkList(
        "lease_applications", "Заявления на лизинг (lease applications)", _count(session, query), items
    )


def lease_candidates_list(
    session: Session,
    *,
    organization: str | None = None,
    period_from: date | None = None,
    period_to: date | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> WorkList:
    """Приложения ДЛ: lease contract appendices that may get a lease application (``ready``)."""
    found = lease_candidates(session, organization, period_from, period_to)
    items = [
        {
            "lease_contract": c.contract.number,
            "date": _value(c.contract.date),
            "document_name": c.contract.document_name,
            "lessee_inn": c.contract.lessee_inn,
            "lease_term_end": _value(c.contract.lease_term_end),
            "vehicles": c.statuses,
            "ready": c.ready,
        }
        for c in found[offset : offset + limit]
    ]
    return WorkList("lease_candidates", "Приложения ДЛ (lease contract appendices)", len(found), items)


def lease_changes(
    session: Session,
    *,
    status: str | None = None,
    open_only: bool = False,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> WorkList:
    """Изменения лизинга: terminations, changes of lessee and ends of lease, those in progress first
    (``open_only``: not executed nor rejected, the console tab's count)."""
    query = select(SepLeaseChange).order_by(
        (SepLeaseChange.status == EXECUTED), SepLeaseChange.created_at, SepLeaseChange.id
    )
    if status:
        query = query.where(SepLeaseChange.status == status)
    if open_only:
        query = query.where(SepLeaseChange.status.not_in((EXECUTED, LEASE_REJECTED)))
    columns = (
        "id",
        "change_number",
        "kind",
        "application_number",
        "status",
        "request_status",
        "lessee_inn",
        "new_lessee_inn",
        "epts",
        "parties",
        "confirm_by",
        "last_error",
        "updated_at",
    )
    items = [_row(r, columns) for r in session.scalars(query.limit(limit).offset(offset))]
    return WorkList("lease_changes", "Изменения лизинга (lease changes)", _count(session, query), items)


def counterparties(
    session: Session,
    *,
    status: str | None = None,
    open_only: bool = False,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> WorkList:
    """Контрагенты СЭП: counterparties looked up or registered in SEP, by ИНН (``open_only``: not in
    SEP yet — on their way or in error, the console tab's count)."""
    query = select(SepCounterparty).order_by(SepCounterparty.inn)
    if status:
        query = query.where(SepCounterparty.status == status)
    if open_only:
        query = query.where(SepCounterparty.status.not_in(COUNTERPARTY_IN_SEP))
    columns = (
        "id",
        "inn",
        "kpp",
        "ogrn",
        "name",
        "status",
        "sep_id",
        "in_sep_since",
        "request_status",
        "last_error",
        "updated_at",
    )
    items = [_row(r, columns) for r in session.scalars(query.limit(limit).offset(offset))]
    return WorkList("counterparties", "Контрагенты СЭП (counterparties)", _count(session, query), items)


def queue(session: Session, limit: int = DEFAULT_LIMIT, offset: int = 0) -> WorkList:
    """Очередь: requests not yet applied — their queue numbers, polls and next poll; parked ones first."""
    query = (
        select(SepRequest)
        .where(SepRequest.status.in_(OPEN_STATUSES))
        .order_by(SepRequest.parked_at.is_(None), SepRequest.next_poll_at, SepRequest.id)
    )
    columns = (
        "id",
        "operation",
        "business_key",
        "queue_number",
        "status",
        "request_status",
        "sep_state",
        "submitted_at",
        "polls",
        "next_poll_at",
        "sends",
        "attempts",
        "parked_at",
        "last_error",
    )
    items = [_row(r, columns) for r in session.scalars(query.limit(limit).offset(offset))]
    return WorkList("queue", "Очередь (open queue numbers)", _count(session, query), items)


def errors(session: Session, limit: int = DEFAULT_LIMIT, offset: int = 0) -> WorkList:
    """Ошибки обмена: the newest errors, per correlation id."""
    query = select(SepExchangeError).order_by(SepExchangeError.id.desc())
    columns = (
        "id",
        "created_at",
        "correlation_id",
        "operation",
        "kind",
        "code",
        "message",
        "application_number",
    )
    items = [_row(r, columns) for r in session.scalars(query.limit(limit).offset(offset))]
    return WorkList("errors", "Ошибки обмена (errors)", _count(session, query), items)


def summary(session: Session) -> dict[str, int]:
    """The count of each list, as the seed's tabs show it in brackets."""
    return {
        "letters": letters(session, limit=0).count,
        "ownership_changes": ownership_changes(session, limit=0).count,
        "lease_applications": lease_applications(session, open_only=True, limit=0).count,
        "queue": queue(session, limit=0).count,
        "errors": errors(session, limit=0).count,
    }

"""What a SEP result changes in the registers, per operation, and the follow-ups it may start.

Called by the ``sep.apply_result`` step inside its transaction, under the queue row's lock, once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.sep.messages import (
    Application,
    ApplicationKind,
    PartyRole,
    PartyStatus,
    application_from_json,
)
from models.db import db_clock
from models.sep import (
    AWAITING_CONFIRMATION,
    ERROR,
    EXECUTED,
    LEASE_ERROR,
    LEASE_EXECUTED,
    LEASE_REGISTERED,
    LEASE_REJECTED,
    LEASED,
    OWNED,
    TRANSFERRED,
    SepApplication,
    SepAssetStatus,
    SepLeaseApplication,
    SepRequest,
)
from models.sep_codes import SepConfirmationCode
from tasks.sep import actions, notices
from tasks.sep.lookup import find_asset, our_inns, sep_responsible, usable_code

log = structlog.get_logger(__name__)

CODE_REFUSALS = ("WrongConfirmationCode", "ConfirmationCodeExpired")

# The status («Статусы основных средств») an executed application gives our vehicles, by its kind
# and our role in it.
EXECUTED_STATUS: dict[tuple[ApplicationKind, PartyRole], str] = {
    (ApplicationKind.OWNERSHIP_CHANGE, PartyRole.NEW_OWNER): OWNED,
    (ApplicationKind.LEASE, PartyRole.LESSOR): LEASED,
    (ApplicationKind.LEASE_TERMINATION, PartyRole.LESSOR): OWNED,  # taken back from the lessee
    (ApplicationKind.LESSEE_CHANGE, PartyRole.LESSOR): LEASED,  # in lease still, to the new lessee
    (ApplicationKind.LEASE_END, PartyRole.LESSOR): TRANSFERRED,
}

Applier = Callable[[Session, SepRequest], None]


def apply_request(session: Session, request: SepRequest) -> None:
    APPLIERS[request.operation](session, request)


def applies(operation: str) -> Callable[[Applier], Applier]:
    """Register what a result of ``operation`` changes (modules of further operations use it)."""

    def register(applier: Applier) -> Applier:
        APPLIERS[operation] = applier
        return applier

    return register


def errors_text(request: SepRequest) -> str:
    return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in request.errors or []) or "no details"


def applications_of(request: SepRequest) -> list[Application]:
    result = request.result or {}
    found = [result["application"]] if result.get("application") else []
    found += result.get("applications") or []
    return [application_from_json(a) for a in found]


# --- the registers results land in --------------------------------------------------------------------
def upsert_application(
    session: Session, application: Application, request: SepRequest, now: datetime
) -> SepApplication:
    """Данные заявлений: keep what SEP said; set the asset statuses an executed application implies."""
    ours = our_inns(session)
    our_party = next((p for p in application.parties if p.inn in ours), None)
    vehicle = application.vehicles[0]
    asset = find_asset(session, vehicle.epts, vehicle.vin)
    owners = {p.role: p.inn for p in application.parties}
    values = {
        "kind": application.kind.value,
        "status": application.status,
        "registered_at": application.registered_at,
        "confirm_by": application.confirm_by,
        "epts": vehicle.epts,
        "vin": vehicle.vin,
        "vehicles": [{"epts": v.epts, "vin": v.vin} for v in application.vehicles],
        "parties": [
            {"role": p.role.value, "inn": p.inn, "name": p.name, "status": p.status.value}
            for p in application.parties
        ],
        "current_owner_inn": owners.get(PartyRole.CURRENT_OWNER) or owners.get(PartyRole.LESSOR),
        "new_owner_inn": owners.get(PartyRole.NEW_OWNER) or owners.get(PartyRole.LESSEE),
        "organization_inn": our_party.inn if our_party else None,
        "our_role": our_party.role.value if our_party else None,
        "our_status": our_party.status.value if our_party else None,
        "asset_inventory_number": asset.inventory_number if asset else None,
        "data": application.to_json(),
        "fetched_at": now,
    }
    row = session.scalars(
        select(SepApplication)
        .where(SepApplication.application_number == application.number)
        .with_for_update()
    ).first()
    # News: an application seen before in another status, or first seen through a request of ours
    # about it (not the periodic request of a period, which brings old executed ones).
    news = application.status == EXECUTED and (
        row.status != EXECUTED if row is not None else request.operation != "RequestApplications"
    )
    if row is None:
        row = SepApplication(application_number=application.number, **values)
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    if row.responsible_id is None:
        code = session.scalars(
            select(SepConfirmationCode).where(SepConfirmationCode.application_number == application.number)
        ).first()
        row.responsible_id = (
            (asset.responsible_id if asset else None)
            or (code.responsible_id if code else None)
            or sep_responsible(session, row.organization_inn)
        )
    if request.source and row.source is None:
        row.source = request.source
    row.last_error = None
    if application.status == EXECUTED and our_party is not None:
        status = EXECUTED_STATUS.get((application.kind, our_party.role))
        if status is not None:
            set_asset_statuses(session, application, status, request.completed_at or now)
    session.flush()
    if news and our_party is not None:
        notices.application_executed(session, row)
    return row


def set_asset_statuses(session: Session, application: Application, status: str, period: datetime) -> None:
    """Статусы основных средств: one row per vehicle, application and status (a repeat adds nothing)."""
    for vehicle in application.vehicles:
        exists = session.scalars(
            select(SepAssetStatus.id)
            .where(SepAssetStatus.epts == vehicle.epts)
            .where(SepAssetStatus.application_number == application.number)
            .where(SepAssetStatus.status == status)
        ).first()
        if exists is None:
            asset = find_asset(session, vehicle.epts, vehicle.vin)
            session.add(
                SepAssetStatus(
                    asset_inventory_number=asset.inventory_number if asset else None,
                    epts=vehicle.epts,
                    status=status,
                    period=period,
                    application_number=application.number,
                )
            )


def mark_code_used(session: Session, application_number: str, code: str | None, now: datetime) -> None:
    if code is None:
        return
    row = session.scalars(
        select(SepConfirmationCode)
        .where(SepConfirmationCode.application_number == application_number)
        .where(SepConfirmationCode.code == code)
    ).first()
    if row is not None and row.used_at is None:
        row.used_at = now


def _refuse_code(session: Session, request: SepRequest, now: datetime) -> None:
    """SEP said the code is wrong or expired: keep it, but never offer it again."""
    refused = [e for e in request.errors or [] if e.get("code") in CODE_REFUSALS]
    code = request.payload.get("confirmation_code")
    if not refused or code is None or request.application_number is None:
        return
    row = session.scalars(
        select(SepConfirmationCode)
        .where(SepConfirmationCode.application_number == request.application_number)
        .where(SepConfirmationCode.code == code)
    ).first()
    if row is not None and row.refused_at is None:
        row.refused_at = now
        row.refusal = f"{refused[0]['code']}: {refused[0]['message']}"


def _application_error(session: Session, request: SepRequest) -> None:
    if request.application_number is None:
        return
    row = session.scalars(
        select(SepApplication).where(SepApplication.application_number == request.application_number)
    ).first()
    if row is not None:
        row.last_error = f"{request.operation}: {errors_text(request)}"


# --- per operation --------------------------------------------------------------------------------------
def _fetched_applications(session: Session, request: SepRequest) -> None:
    """Запрос заявлений за период, Запрос данных заявления: keep every application SEP returned.

    An error answer to a request about one application is shown on that application.
    """
    if request.status == ERROR and request.application_number is not None:
        _application_error(session, request)
        return
    now = db_clock(session)
    for application in applications_of(request):
        row = upsert_application(session, application, request, now)
        auto_confirm(session, row, application)


def confirmation_error(session: Session, request: SepRequest) -> None:
    """A confirmation SEP answered with an error: shown on the application; a refused code never offered again."""
    _application_error(session, request)
    _refuse_code(session, request, db_clock(session))


def _confirmation(session: Session, request: SepRequest, role: PartyRole, asked: str) -> list[Application]:
    """A confirmation for the party in ``role``, with the status in ``request.payload[asked]``.

    An error is shown on the application, and a code SEP refused is never offered again. Otherwise
    what SEP said is kept, and the code is used once the party's status is the one asked for.
    Returns the applications SEP returned (none after an error).
    """
    if request.status == ERROR:
        confirmation_error(session, request)
        return []
    now = db_clock(session)
    applications = applications_of(request)
    for application in applications:
        upsert_application(session, application, request, now)
        party = application.party(role)
        if party is not None and party.status.value == request.payload[asked]:
            mark_code_used(session, application.number, request.payload.get("confirmation_code"), now)
    return applications


def _confirm_ownership_change(session: Session, request: SepRequest) -> None:
    _confirmation(session, request, PartyRole.NEW_OWNER, "party_status")


def _lease_of(session: Session, request: SepRequest) -> SepLeaseApplication:
    lease = session.get(SepLeaseApplication, request.lease_application_id, with_for_update=True)
    if lease is None:
        raise LookupError(f"sep_lease_applications row {request.lease_application_id} is gone")
    return lease


def _submit_lease_application(session: Session, request: SepRequest) -> None:
    lease = _lease_of(session, request)
    if request.status == ERROR:
        lease.status = LEASE_ERROR
        lease.last_error = errors_text(request)
        return
    now = db_clock(session)
    for application in applications_of(request):
        lease.application_number = application.number
        lease.status = LEASE_REGISTERED
        lease.last_error = None
        upsert_application(session, application, request, now)


def _confirm_lease_application(session: Session, request: SepRequest) -> None:
    lease = _lease_of(session, request)
    if request.status == ERROR:
        lease.status = LEASE_REGISTERED  # still waiting for a confirmation that works
        lease.last_error = errors_text(request)
    for application in _confirmation(session, request, PartyRole.LESSEE, "lessee_status"):
        lessee = application.party(PartyRole.LESSEE)
        lease.lessee_status = lessee.status.value if lessee else lease.lessee_status
        lease.status = {EXECUTED: LEASE_EXECUTED, "Отклонено": LEASE_REJECTED}.get(
            application.status, LEASE_REGISTERED
        )
        lease.last_error = None


APPLIERS: dict[str, Applier] = {
    "RequestApplications": _fetched_applications,
    "RequestApplicationData": _fetched_applications,
    "ConfirmOwnershipChange": _confirm_ownership_change,
    "SubmitLeaseApplication": _submit_lease_application,
    "ConfirmLeaseApplication": _confirm_lease_application,
}


# --- follow-ups ---------------------------------------------------------------------------------------
def auto_confirm(session: Session, row: SepApplication, application: Application) -> None:
    """With ``OBMEN_SEP_AUTO_CONFIRM``, confirm what waits for us when the asset is known and a code is at hand.

    By default nothing happens: the application waits in the work list for a person.
    """
    if not get_settings().sep_auto_confirm or application.status != AWAITING_CONFIRMATION:
        return
    if usable_code(session, application.number) is None:
        return
    if (
        application.kind is ApplicationKind.OWNERSHIP_CHANGE
        and row.our_role == PartyRole.NEW_OWNER.value
        and row.our_status == PartyStatus.NOT_APPLICABLE.value
        and row.asset_inventory_number is not None  # an unknown vehicle is for a person to look at
    ):
        request, created = actions.confirm_ownership(session, application.number, source="auto")
    elif application.kind is ApplicationKind.LEASE and row.our_role == PartyRole.LESSOR.value:
        lessee = application.party(PartyRole.LESSEE)
        lease = session.scalars(
            select(SepLeaseApplication).where(SepLeaseApplication.application_number == application.number)
        ).first()
        if lease is None or lessee is None or lessee.status is not PartyStatus.NOT_APPLICABLE:
            return
        request, created = actions.confirm_lease(session, application.number, source="auto")
    else:
        return
    if created:
        log.info("sep.auto_confirm", application=application.number, request_id=request.id)

"""What a SEP result changes in the registers, per operation, and the follow-ups it may start.

Called by the ``sep.apply_result`` step inside its transaction, under the queue row's lock, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import inspect, select
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
from models.master import Asset, SepSettings
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
from tasks.sep.lookup import assets_of, our_inns, pick_asset, usable_code
from tasks.sep.rows import locked

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


@dataclass
class Known:
    """What the results of one apply transaction look up, loaded once for all of them (the step's
    prefetch) instead of a query each: our organisations, the assets of their vehicles, their
    applications (locked, in number order), the responsibles of their codes and the SEP-responsibles,
    and the database clock, read once. Anything not loaded (a number no result named) is asked for."""

    ours: set[str]
    assets: list[Asset]
    vehicles: set[tuple[str | None, str | None]]
    # None: not in the register when loaded.
    applications: dict[str, SepApplication | None]
    code_responsibles: dict[str, str | None]
    sep_responsibles: dict[str, str | None]
    clock: datetime
    # When ``clock`` was read, by this process's monotonic clock.
    clock_read: float

    @classmethod
    def load(cls, session: Session, requests: Sequence[SepRequest]) -> Known:
        results = [application for request in requests for application in applications_of(request)]
        numbers = sorted(
            {a.number for a in results} | {r.application_number for r in requests if r.application_number}
        )
        vehicles: set[tuple[str | None, str | None]] = {(v.epts, v.vin) for a in results for v in a.vehicles}
        clock, clock_read = db_clock(session), time.monotonic()
        rows = session.scalars(
            select(SepApplication)
            .where(SepApplication.application_number.in_(numbers))
            .order_by(SepApplication.application_number)
            .with_for_update()
        )
        applications: dict[str, SepApplication | None] = dict.fromkeys(numbers)
        applications.update({row.application_number: row for row in rows})
        codes: dict[str, str | None] = {}
        for number, responsible in session.execute(
            select(SepConfirmationCode.application_number, SepConfirmationCode.responsible_id).where(
                SepConfirmationCode.application_number.in_(numbers)
            )
        ):
            codes.setdefault(number, responsible)
        return cls(
            ours=our_inns(session),
            assets=assets_of(session, vehicles),
            vehicles=vehicles,
            applications=applications,
            code_responsibles={number: codes.get(number) for number in numbers},
            sep_responsibles=dict(
                session.execute(select(SepSettings.organization_inn, SepSettings.responsible_id)).all()
            ),
            clock=clock,
            clock_read=clock_read,
        )

    def now(self) -> datetime:
        """The database clock now: its one reading and the time since, without asking it again."""
        return self.clock + timedelta(seconds=time.monotonic() - self.clock_read)

    def held(self, number: str | None) -> SepApplication | None:
        """The application ``number`` as this transaction holds it, if it does (loaded or written)."""
        row = self.applications.get(number) if number is not None else None
        if row is None or inspect(row).transient or inspect(row).detached:
            return None  # a row written in a savepoint that rolled back is gone
        return row

    def application(self, session: Session, number: str) -> SepApplication | None:
        """The register's application ``number``, locked, or None when there is none."""
        row = self.held(number)
        if row is None and (number not in self.applications or self.applications[number] is not None):
            row = session.scalars(
                select(SepApplication).where(SepApplication.application_number == number).with_for_update()
            ).first()
            self.applications[number] = row
        return row

    def asset(self, session: Session, epts: str | None, vin: str | None) -> Asset | None:
        if (epts, vin) not in self.vehicles:
            self.assets += assets_of(session, [(epts, vin)])
            self.vehicles.add((epts, vin))
        return pick_asset(self.assets, epts, vin)

    def code_responsible(self, session: Session, number: str) -> str | None:
        """The responsible of an application's code (the first filed), when one is filed."""
        if number not in self.code_responsibles:
            self.code_responsibles[number] = session.scalars(
                select(SepConfirmationCode.responsible_id).where(
                    SepConfirmationCode.application_number == number
                )
            ).first()
        return self.code_responsibles[number]


@contextmanager
def known_to_apply(session: Session, requests: Sequence[SepRequest]) -> Iterator[Known]:
    """``sep.apply_result``'s prefetch: what its results look up, in one query per kind."""
    yield Known.load(session, requests)


Applier = Callable[[Session, SepRequest, Known], None]


def apply_request(session: Session, request: SepRequest, known: Known) -> None:
    APPLIERS[request.operation](session, request, known)


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
    session: Session, application: Application, request: SepRequest, known: Known
) -> SepApplication:
    """Данные заявлений: keep what SEP said; set the asset statuses an executed application implies."""
    now = known.now()
    our_party = next((p for p in application.parties if p.inn in known.ours), None)
    vehicle = application.vehicles[0]
    asset = known.asset(session, vehicle.epts, vehicle.vin)
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
    row = known.application(session, application.number)
    # News: an application seen before in another status, or first seen through a request of ours
    # about it (not the periodic request of a period, which brings old executed ones).
    news = application.status == EXECUTED and (
        row.status != EXECUTED if row is not None else request.operation != "RequestApplications"
    )
    if row is None:
        row = known.applications[application.number] = SepApplication(
            application_number=application.number, **values
        )
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    if row.responsible_id is None:
        row.responsible_id = (
            (asset.responsible_id if asset else None)
            or known.code_responsible(session, application.number)
            or (known.sep_responsibles.get(row.organization_inn) if row.organization_inn else None)
        )
    if request.source and row.source is None:
        row.source = request.source
    row.last_error = None
    if application.status == EXECUTED and our_party is not None:
        status = EXECUTED_STATUS.get((application.kind, our_party.role))
        if status is not None:
            set_asset_statuses(session, application, status, request.completed_at or now, known)
    if news and our_party is not None:
        notices.application_executed(session, row)
    return row


def set_asset_statuses(
    session: Session, application: Application, status: str, period: datetime, known: Known
) -> None:
    """Статусы основных средств: one row per vehicle, application and status (a repeat adds nothing)."""
    for vehicle in application.vehicles:
        exists = session.scalars(
            select(SepAssetStatus.id)
            .where(SepAssetStatus.epts == vehicle.epts)
            .where(SepAssetStatus.application_number == application.number)
            .where(SepAssetStatus.status == status)
        ).first()
        if exists is None:
            asset = known.asset(session, vehicle.epts, vehicle.vin)
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
    # One code (a confirmation of ours), or each party's (a lease change's confirmations).
    codes = [request.payload.get("confirmation_code")]
    codes += [c.get("confirmation_code") for c in request.payload.get("confirmations") or []]
    given = [code for code in codes if code is not None]
    if not refused or not given or request.application_number is None:
        return
    for row in session.scalars(
        select(SepConfirmationCode)
        .where(SepConfirmationCode.application_number == request.application_number)
        .where(SepConfirmationCode.code.in_(given))
        .where(SepConfirmationCode.refused_at.is_(None))
    ):
        row.refused_at = now
        row.refusal = f"{refused[0]['code']}: {refused[0]['message']}"


def _application_error(session: Session, request: SepRequest, known: Known) -> None:
    if request.application_number is None:
        return
    row = known.application(session, request.application_number)
    if row is not None:
        row.last_error = f"{request.operation}: {errors_text(request)}"


# --- per operation --------------------------------------------------------------------------------------
def _fetched_applications(session: Session, request: SepRequest, known: Known) -> None:
    """Запрос заявлений за период, Запрос данных заявления: keep every application SEP returned.

    An error answer to a request about one application is shown on that application.
    """
    if request.status == ERROR and request.application_number is not None:
        _application_error(session, request, known)
        return
    for application in applications_of(request):
        row = upsert_application(session, application, request, known)
        auto_confirm(session, row, application)


def confirmation_error(session: Session, request: SepRequest, known: Known) -> None:
    """A confirmation SEP answered with an error: shown on the application; a refused code never offered again."""
    _application_error(session, request, known)
    _refuse_code(session, request, known.now())


def _confirmation(
    session: Session, request: SepRequest, known: Known, role: PartyRole, asked: str
) -> list[Application]:
    """A confirmation for the party in ``role``, with the status in ``request.payload[asked]``.

    An error is shown on the application, and a code SEP refused is never offered again. Otherwise
    what SEP said is kept, and the code is used once the party's status is the one asked for.
    Returns the applications SEP returned (none after an error).
    """
    if request.status == ERROR:
        confirmation_error(session, request, known)
        return []
    applications = applications_of(request)
    for application in applications:
        upsert_application(session, application, request, known)
        party = application.party(role)
        if party is not None and party.status.value == request.payload[asked]:
            mark_code_used(session, application.number, request.payload.get("confirmation_code"), known.now())
    return applications


def _confirm_ownership_change(session: Session, request: SepRequest, known: Known) -> None:
    _confirmation(session, request, known, PartyRole.NEW_OWNER, "party_status")


def _lease_of(session: Session, request: SepRequest) -> SepLeaseApplication:
    return locked(session, SepLeaseApplication, request.lease_application_id)


def _submit_lease_application(session: Session, request: SepRequest, known: Known) -> None:
    lease = _lease_of(session, request)
    if request.status == ERROR:
        lease.status = LEASE_ERROR
        lease.last_error = errors_text(request)
        return
    for application in applications_of(request):
        lease.application_number = application.number
        lease.status = LEASE_REGISTERED
        lease.last_error = None
        upsert_application(session, application, request, known)


def _confirm_lease_application(session: Session, request: SepRequest, known: Known) -> None:
    lease = _lease_of(session, request)
    if request.status == ERROR:
        lease.status = LEASE_REGISTERED  # still waiting for a confirmation that works
        lease.last_error = errors_text(request)
    for application in _confirmation(session, request, known, PartyRole.LESSEE, "lessee_status"):
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

"""Lease changes (the seed's «Развитие» 2 and 3), for one or several vehicles «В лизинге»:

* ``Termination`` — прекращение лизинга: the vehicle is taken back from the lessee («В собственности»);
* ``LesseeChange`` — перенаём: a new lessee, who must be in SEP already, takes the lease over («В лизинге»);
* ``LeaseEnd`` — окончание срока: ownership passes to the client, the lease mark goes («Передано клиенту»).

A change is kept in ``sep_lease_changes`` under our document's number, «Черновик» until submitted;
``SubmitLeaseChange`` gets SEP's application number and SEP sends each confirming party (the
lessee; for перенаём the new lessee too) its code; ``ConfirmLeaseChange`` gives the parties' codes,
as for the lease application itself. Each is one request on the SEP chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import PermanentError
from integrations.sep.messages import (
    ConfirmLeaseChange,
    LeaseChangeKind,
    PartyConfirmation,
    PartyRole,
    PartyStatus,
    SubmitLeaseChange,
)
from models.sep import (
    COUNTERPARTY_IN_SEP,
    DRAFT,
    ERROR,
    EXECUTED,
    LEASE_CONFIRMING,
    LEASE_ERROR,
    LEASE_EXECUTED,
    LEASE_REGISTERED,
    LEASE_REJECTED,
    LEASE_SUBMITTING,
    LEASED,
    SepApplication,
    SepAssetStatus,
    SepCounterparty,
    SepLeaseChange,
    SepRequest,
)
from tasks.sep.actions import notification_email
from tasks.sep.apply import (
    Known,
    applications_of,
    applies,
    confirmation_error,
    errors_text,
    mark_code_used,
    upsert_application,
)
from tasks.sep.chain import open_request
from tasks.sep.lookup import asset_status, code_for, sep_organization, today, usable_code
from tasks.sep.rows import locked, store

DOCUMENT_NAMES = {
    LeaseChangeKind.TERMINATION: "Уведомление о прекращении лизинга",
    LeaseChangeKind.LESSEE_CHANGE: "Соглашение о перенайме",
    LeaseChangeKind.LEASE_END: "Акт о переходе права собственности",
}
# The parties that confirm a change with their codes (the lessor's is given when submitting).
CONFIRMING = (PartyRole.LESSEE, PartyRole.NEW_LESSEE)
# A change that ended so may be submitted again under the same number.
RESUBMITTABLE = (LEASE_ERROR, LEASE_REJECTED)


def current_lessee(session: Session, epts: str) -> str | None:
    """Whom a vehicle is leased to, from the executed application that made it «В лизинге» last."""
    number = session.scalars(
        select(SepAssetStatus.application_number)
        .where(SepAssetStatus.epts == epts)
        .where(SepAssetStatus.status == LEASED)
        .order_by(SepAssetStatus.period.desc(), SepAssetStatus.id.desc())
        .limit(1)
    ).first()
    application = (
        session.scalars(select(SepApplication).where(SepApplication.application_number == number)).first()
        if number
        else None
    )
    if application is None:
        return None
    roles = {p["role"]: p["inn"] for p in application.parties}
    return roles.get(PartyRole.NEW_LESSEE.value) or roles.get(PartyRole.LESSEE.value)


def _lessee_of(session: Session, epts: list[str]) -> str:
    """The one lessee of all the vehicles; a change is refused for vehicles not in lease or leased to several."""
    not_leased = {e: status for e in epts if (status := asset_status(session, e)) != LEASED}
    if not_leased:
        listed = ", ".join(f"{e} ({status or 'no SEP status'})" for e, status in not_leased.items())
        raise PermanentError(
            f"only vehicles «{LEASED}» can have their lease changed; these are not: {listed}"
        )
    lessees = {e: current_lessee(session, e) for e in epts}
    if None in lessees.values() or len(set(lessees.values())) != 1:
        listed = ", ".join(f"{e} → ИНН {inn or 'unknown'}" for e, inn in lessees.items())
        raise PermanentError(f"one change covers the vehicles of one lessee; these differ: {listed}")
    lessee = next(iter(lessees.values()))
    assert lessee is not None
    return lessee


def _check_new_lessee(session: Session, kind: LeaseChangeKind, lessee: str, new_lessee: str | None) -> None:
    if kind is not LeaseChangeKind.LESSEE_CHANGE:
        if new_lessee is not None:
            raise PermanentError(f"new_lessee_inn is for a change of lessee (LesseeChange), not {kind.value}")
        return
    if new_lessee is None:
        raise PermanentError("a change of lessee (перенаём) needs new_lessee_inn")
    if new_lessee == lessee:
        raise PermanentError(f"ИНН {new_lessee} is the lessee already")
    known = session.scalars(select(SepCounterparty.status).where(SepCounterparty.inn == new_lessee)).first()
    if known not in COUNTERPARTY_IN_SEP:
        raise PermanentError(
            f"the new lessee ИНН {new_lessee} is not known to be in SEP ({known or 'never looked up'}): "
            f"register it first (obmen sep register-counterparty {new_lessee})"
        )


def submit_lease_change(
    session: Session,
    change_number: str,
    *,
    kind: LeaseChangeKind,
    epts: list[str],
    new_lessee_inn: str | None = None,
    organization_inn: str | None = None,
    document_name: str | None = None,
    document_date: date | None = None,
    confirm_by: date | None = None,
    use_technical_mailbox: bool = True,
    draft: bool = False,
    source: str | None = None,
) -> tuple[SepLeaseChange, SepRequest | None, bool]:
    """Keep a lease change as «Черновик» (``draft``) or submit it; asking again returns the one there is.

    A draft asked for again is replaced by what is asked now (and submitted unless ``draft``); one
    submitted is returned as it is; one that ended in «Ошибка» or «Отклонено» is submitted anew.
    """
    row = session.scalars(
        select(SepLeaseChange).where(SepLeaseChange.change_number == change_number).with_for_update()
    ).first()
    if row is not None and row.status not in (DRAFT, *RESUBMITTABLE):
        current = session.get(SepRequest, row.last_request_id) if row.last_request_id else None
        return row, current, False
    if len(set(epts)) != len(epts):
        raise PermanentError(f"a vehicle is listed twice: {', '.join(epts)}")
    organization = sep_organization(session, organization_inn)
    lessee = _lessee_of(session, epts)
    _check_new_lessee(session, kind, lessee, new_lessee_inn)
    day = today(session)
    confirm_by = confirm_by or day + timedelta(days=get_settings().sep_lease_confirm_days)
    if confirm_by < day:
        raise PermanentError(f"confirm_by {confirm_by} has passed")
    values = {
        "kind": kind.value,
        "organization_inn": organization,
        "lessee_inn": lessee,
        "new_lessee_inn": new_lessee_inn,
        "document_name": document_name or DOCUMENT_NAMES[kind],
        "document_date": document_date or day,
        "epts": list(epts),
        "confirm_by": confirm_by,
        "notification_email": notification_email(session, organization, lessee, use_technical_mailbox),
        "application_number": None,
        "parties": None,
        "status": DRAFT,
        "last_error": None,
        "source": source,
    }
    row = store(session, row, SepLeaseChange, {"change_number": change_number, **values})
    if draft:
        return row, None, True
    return (row, *_submit(session, row))


def _submit(session: Session, row: SepLeaseChange) -> tuple[SepRequest, bool]:
    args = SubmitLeaseChange(
        lessor_inn=row.organization_inn,
        kind=LeaseChangeKind(row.kind),
        lessee_inn=row.lessee_inn,
        new_lessee_inn=row.new_lessee_inn,
        document_name=row.document_name,
        document_number=row.change_number,
        document_date=row.document_date,
        epts=list(row.epts),
        confirm_by=row.confirm_by,
        notification_email=row.notification_email,
    )
    request, created = open_request(
        session,
        args,
        business_key=f"lease-change:{row.change_number}",
        source=row.source,
        lease_change_id=row.id,
    )
    row.status = LEASE_SUBMITTING
    row.last_request_id = request.id
    return request, created


def confirm_lease_change(
    session: Session,
    change_number: str,
    *,
    codes: Mapping[PartyRole, str] | None = None,
    reject: bool = False,
    source: str | None = None,
) -> tuple[SepRequest, bool]:
    """Confirm a registered lease change for the parties still to confirm, each with its code.

    Codes entered by hand are given by role (and kept in ``sep_confirmation_codes``). Where one
    party only is left without a code, the register's unused code of the application is its code;
    with two (перенаём), which letter's code is whose cannot be told: they must be given by role.
    """
    codes = dict(codes or {})
    row = session.scalars(
        select(SepLeaseChange).where(SepLeaseChange.change_number == change_number).with_for_update()
    ).first()
    if row is None:
        raise PermanentError(f"no lease change № {change_number}")
    if row.status not in (LEASE_REGISTERED, LEASE_CONFIRMING) or row.application_number is None:
        raise PermanentError(
            f"lease change № {change_number} is «{row.status}»: only a registered one («{LEASE_REGISTERED}») "
            "is confirmed"
        )
    number = row.application_number
    waiting = [
        PartyRole(p["role"])
        for p in row.parties or []
        if p["role"] in {r.value for r in CONFIRMING} and p["status"] != PartyStatus.CONFIRMED.value
    ]
    unknown = sorted(role.value for role in codes if role not in waiting)
    if unknown:
        raise PermanentError(
            f"{', '.join(unknown)} has nothing to confirm in lease change № {change_number}; "
            f"waiting: {', '.join(r.value for r in waiting) or 'nobody'}"
        )
    confirmations = []
    for role in waiting:
        if reject:
            confirmations.append(PartyConfirmation(role=role, status=PartyStatus.REJECTED))
            continue
        code = codes.get(role)
        if code is None and len(waiting) == 1 and (found := usable_code(session, number)) is not None:
            code = found.code
        if code is None:
            raise PermanentError(
                f"no code for the {role.value} of lease change № {change_number}: give the code from the letter"
                + (" of each party by role" if len(waiting) > 1 else "")
            )
        code_for(session, number, code)  # a code entered by hand is kept in the register
        confirmations.append(
            PartyConfirmation(role=role, status=PartyStatus.CONFIRMED, confirmation_code=code)
        )
    args = ConfirmLeaseChange(
        organization_inn=row.organization_inn, application_number=number, confirmations=confirmations
    )
    request, created = open_request(
        session,
        args,
        business_key=f"confirm-lease-change:{number}",
        source=source,
        application_number=number,
        lease_change_id=row.id,
    )
    if created:
        row.status = LEASE_CONFIRMING
        row.last_request_id = request.id
    return request, created


def _row_of(session: Session, request: SepRequest) -> SepLeaseChange:
    return locked(session, SepLeaseChange, request.lease_change_id)


@applies("SubmitLeaseChange")
def _submitted(session: Session, request: SepRequest, known: Known) -> None:
    row = _row_of(session, request)
    if request.status == ERROR:
        row.status = LEASE_ERROR
        row.last_error = errors_text(request)
        return
    applications = applications_of(request)
    if not applications:  # Done without the application: not what the contract says; a person looks
        row.status = LEASE_ERROR
        row.last_error = "SEP answered Done without the application"
    for application in applications:
        upsert_application(session, application, request, known)
        row.application_number = application.number
        row.parties = [
            {"role": p.role.value, "inn": p.inn, "status": p.status.value} for p in application.parties
        ]
        row.status = LEASE_REGISTERED
        row.last_error = None


@applies("ConfirmLeaseChange")
def _confirmed(session: Session, request: SepRequest, known: Known) -> None:
    row = _row_of(session, request)
    if request.status == ERROR:
        confirmation_error(session, request, known)
        row.status = LEASE_REGISTERED  # still waiting for confirmations that work
        row.last_error = errors_text(request)
        return
    for application in applications_of(request):
        upsert_application(session, application, request, known)
        row.parties = [
            {"role": p.role.value, "inn": p.inn, "status": p.status.value} for p in application.parties
        ]
        row.status = {EXECUTED: LEASE_EXECUTED, "Отклонено": LEASE_REJECTED}.get(
            application.status, LEASE_REGISTERED
        )
        row.last_error = None
        for confirmation in request.payload["confirmations"]:
            party = application.party(PartyRole(confirmation["role"]))
            if party is not None and party.status.value == confirmation["status"]:
                mark_code_used(
                    session, application.number, confirmation.get("confirmation_code"), known.now()
                )

"""What a person, another service or a follow-up can ask of SEP: each starts one request on its chain.

Plain functions in the caller's transaction. The public entry tasks (``entries.py``), the ``obmen
sep`` commands and the auto-confirmation (``apply.py``) all come through here, so the rules are
the same whoever asks: one open request per business key, codes from the register or by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import PermanentError
from integrations.sep.messages import (
    ConfirmLeaseApplication,
    ConfirmOwnershipChange,
    PartyStatus,
    RequestApplicationData,
    RequestApplications,
    SubmitLeaseApplication,
)
from models.db import db_now
from models.master import Asset, Counterparty, LeaseContract, SepSettings
from models.sep import (
    APPLIED,
    LEASE_CONFIRMING,
    LEASE_DRAFT,
    LEASE_ERROR,
    LEASE_REJECTED,
    LEASE_SUBMITTING,
    OWNED,
    SepApplication,
    SepLeaseApplication,
    SepRequest,
)
from models.sep_codes import SepConfirmationCode
from tasks.sep.chain import open_request
from tasks.sep.lookup import asset_status, code_for, sep_organization, today


def ask_applications(
    session: Session,
    organization_inn: str | None = None,
    period_from: date | None = None,
    period_to: date | None = None,
    source: str | None = None,
) -> list[tuple[SepRequest, bool]]:
    """Запрос заявлений за период: for one organisation, or every one with SEP settings."""
    period_to = period_to or today(session)
    period_from = period_from or period_to - timedelta(days=get_settings().sep_request_applications_days)
    if period_from > period_to:
        raise PermanentError(f"the period runs backwards: {period_from} > {period_to}")
    inns = (
        [sep_organization(session, organization_inn)]
        if organization_inn
        else list(
            session.scalars(select(SepSettings.organization_inn).order_by(SepSettings.organization_inn))
        )
    )
    return [
        open_request(
            session,
            RequestApplications(organization_inn=inn, period_from=period_from, period_to=period_to),
            business_key=f"applications:{inn}:{period_from}:{period_to}",
            source=source,
        )
        for inn in inns
    ]


def organization_of(session: Session, application_number: str, given: str | None = None) -> str:
    """Which of our organisations an application concerns, from what the registers know of it."""
    if given:
        return sep_organization(session, given)
    known = session.scalars(
        select(SepApplication.organization_inn).where(SepApplication.application_number == application_number)
    ).first()
    if known:
        return known
    lease = session.scalars(
        select(SepLeaseApplication.organization_inn).where(
            SepLeaseApplication.application_number == application_number
        )
    ).first()
    if lease:
        return lease
    from_code = session.scalars(
        select(Asset.organization_inn)
        .join(SepConfirmationCode, SepConfirmationCode.asset_inventory_number == Asset.inventory_number)
        .where(SepConfirmationCode.application_number == application_number)
        .where(Asset.organization_inn.is_not(None))
    ).first()
    return from_code or sep_organization(session)


def ask_application_data(
    session: Session,
    application_number: str,
    *,
    organization_inn: str | None = None,
    source: str | None = None,
    refresh: bool = False,
) -> tuple[SepRequest, bool]:
    """Запрос данных заявления. A request already on its way, or one answered within
    ``OBMEN_SEP_APPLICATION_DATA_FRESH_S`` (unless ``refresh``), is returned instead of a new one."""
    key = f"application-data:{application_number}"
    if not refresh:
        fresh_after = db_now(session) - timedelta(seconds=get_settings().sep_application_data_fresh_s)
        recent = session.scalars(
            select(SepRequest)
            .where(SepRequest.business_key == key)
            .where(SepRequest.status == APPLIED)
            .where(SepRequest.applied_at >= fresh_after)
            .order_by(SepRequest.applied_at.desc())
            .limit(1)
        ).first()
        if recent is not None:
            return recent, False
    args = RequestApplicationData(
        organization_inn=organization_of(session, application_number, organization_inn),
        application_number=application_number,
    )
    return open_request(session, args, business_key=key, source=source, application_number=application_number)


def confirm_ownership(
    session: Session,
    application_number: str,
    *,
    party_status: PartyStatus = PartyStatus.CONFIRMED,
    code: str | None = None,
    source: str | None = None,
) -> tuple[SepRequest, bool]:
    """Подтвердить смену собственника, with the code from the register or one entered by hand."""
    application = session.scalars(
        select(SepApplication).where(SepApplication.application_number == application_number)
    ).first()
    if application is not None and application.kind != "OwnershipChange":
        raise PermanentError(
            f"application № {application_number} is a {application.kind}, not an ownership change"
        )
    asset = (
        session.get(Asset, application.asset_inventory_number)
        if application and application.asset_inventory_number
        else None
    )
    code_row = code_for(session, application_number, code, asset=asset)
    if party_status is PartyStatus.CONFIRMED and code_row is None:
        raise PermanentError(
            f"no confirmation code for application № {application_number} in sep_confirmation_codes; "
            "enter the one from the letter by hand"
        )
    args = ConfirmOwnershipChange(
        organization_inn=organization_of(session, application_number),
        application_number=application_number,
        party_status=party_status,
        confirmation_code=code_row.code if code_row and party_status is PartyStatus.CONFIRMED else None,
    )
    return open_request(
        session,
        args,
        business_key=f"confirm-ownership:{application_number}",
        source=source,
        application_number=application_number,
    )


@dataclass(frozen=True)
class LeaseCandidate:
    contract: LeaseContract
    statuses: dict[str, str | None]  # ЭПТС (the draft's, when it has one) -> its SEP status

    @property
    def ready(self) -> bool:
        return all(status == OWNED for status in self.statuses.values())


def lease_candidates(
    session: Session,
    organization_inn: str | None = None,
    period_from: date | None = None,
    period_to: date | None = None,
) -> list[LeaseCandidate]:
    """Заполнить список приложений ДЛ: lease contract appendices of the organisation dated in the
    period, with no lease application yet; ``ready`` when every vehicle is «В собственности»."""
    query = select(LeaseContract).order_by(LeaseContract.date, LeaseContract.number)
    if organization_inn:
        # An appendix without an organisation belongs to the one SEP organisation there is.
        query = query.where(
            or_(LeaseContract.organization_inn == organization_inn, LeaseContract.organization_inn.is_(None))
        )
    if period_from:
        query = query.where(LeaseContract.date >= period_from)
    if period_to:
        query = query.where(LeaseContract.date <= period_to)
    leases = {lease.lease_contract_number: lease for lease in session.scalars(select(SepLeaseApplication))}
    return [
        LeaseCandidate(contract, {epts: asset_status(session, epts) for epts in _vehicles(contract, lease)})
        for contract in session.scalars(query)
        if (lease := leases.get(contract.number)) is None or lease.status in EDITABLE
    ]


# A lease application whose vehicles may change, and which may be submitted (again).
EDITABLE = (LEASE_DRAFT, LEASE_ERROR, LEASE_REJECTED)


def _vehicles(contract: LeaseContract, lease: SepLeaseApplication | None) -> list[str]:
    """The vehicles to submit: the appendix's, as changed with «+»/«−» once there is a lease application."""
    return list(lease.epts) if lease is not None else list(contract.epts)


def edit_lease_vehicles(
    session: Session,
    contract_number: str,
    *,
    add: list[str] | None = None,
    remove: list[str] | None = None,
    source: str | None = None,
) -> SepLeaseApplication:
    """«+» / «−»: add vehicles to, or remove them from, the lease application of an appendix before it
    is submitted. The first change makes a «Черновик» with the appendix's vehicles; one submitted
    is refused (SEP has it), one that ended in «Ошибка» or «Отклонено» becomes a draft again."""
    add, remove = list(add or []), list(remove or [])
    if not add and not remove:
        raise PermanentError("say which ЭПТС to add or to remove")
    if both := sorted(set(add) & set(remove)):
        raise PermanentError(f"ЭПТС {', '.join(both)} is both added and removed")
    contract = session.get(LeaseContract, contract_number)
    if contract is None:
        raise PermanentError(f"no lease contract appendix № {contract_number} in master data")
    lease = session.scalars(
        select(SepLeaseApplication)
        .where(SepLeaseApplication.lease_contract_number == contract_number)
        .with_for_update()
    ).first()
    if lease is not None and lease.status not in EDITABLE:
        raise PermanentError(
            f"the lease application of {contract_number} is «{lease.status}»: its vehicles can be changed "
            f"only before it is submitted («{LEASE_DRAFT}») or after «{LEASE_ERROR}» or «{LEASE_REJECTED}»"
        )
    epts = _vehicles(contract, lease)
    present = [e for e in add if e in epts]
    absent = [e for e in remove if e not in epts]
    unknown = [e for e in add if session.scalars(select(Asset.epts).where(Asset.epts == e)).first() is None]
    if present or absent or unknown:
        problems = [f"{e} is in the list already" for e in present]
        problems += [f"{e} is not in the list" for e in absent]
        problems += [f"no asset with ЭПТС {e} in master data" for e in unknown]
        raise PermanentError(
            f"the vehicles of {contract_number} stay as they are ({', '.join(epts)}): " + "; ".join(problems)
        )
    epts = [e for e in epts if e not in remove] + add
    if not epts:
        raise PermanentError(f"a lease application needs a vehicle: removing {', '.join(remove)} leaves none")
    values = _lease_values(session, contract, epts, source=source)
    if lease is None:
        lease = SepLeaseApplication(lease_contract_number=contract_number, **values)
        session.add(lease)
    else:
        lease.epts, lease.status, lease.source = epts, LEASE_DRAFT, source
    session.flush()
    return lease


def _lease_values(
    session: Session,
    contract: LeaseContract,
    epts: list[str],
    *,
    use_technical_mailbox: bool = True,
    confirm_by: date | None = None,
    lessor_status: PartyStatus = PartyStatus.CONFIRMED,
    source: str | None = None,
) -> dict[str, object]:
    """A lease application's columns for ``contract`` (status «Черновик»: not submitted yet)."""
    organization = sep_organization(session, contract.organization_inn)
    return {
        "organization_inn": organization,
        "lessee_inn": contract.lessee_inn,
        "document_name": contract.document_name,
        "document_number": contract.number,
        "document_date": contract.date,
        "lease_term_end": contract.lease_term_end,
        "epts": epts,
        "lessor_status": lessor_status.value,
        "lessee_status": PartyStatus.NOT_APPLICABLE.value,
        "confirm_by": confirm_by or today(session) + timedelta(days=get_settings().sep_lease_confirm_days),
        "use_technical_mailbox": use_technical_mailbox,
        "notification_email": notification_email(
            session, organization, contract.lessee_inn, use_technical_mailbox
        ),
        "application_number": None,
        "status": LEASE_DRAFT,
        "last_error": None,
        "source": source,
    }


def submit_lease(
    session: Session,
    contract_number: str,
    *,
    use_technical_mailbox: bool = True,
    confirm_by: date | None = None,
    lessor_status: PartyStatus = PartyStatus.CONFIRMED,
    source: str | None = None,
) -> tuple[SepLeaseApplication, SepRequest | None, bool]:
    """Отправить заявление на лизинг for a lease contract appendix whose vehicles are «В собственности».

    Lessor ``Confirmed`` (or as chosen), lessee ``NotApplicable``; SEP sends the lessee's code to our
    technical mailbox or to the lessee's e-mail. One lease application per appendix: asking again
    returns the one there is, unless it ended in an error or was rejected. The vehicles are the
    appendix's, or the draft's when they were changed with «+»/«−» (:func:`edit_lease_vehicles`).
    """
    contract = session.get(LeaseContract, contract_number)
    if contract is None:
        raise PermanentError(f"no lease contract appendix № {contract_number} in master data")
    lease = session.scalars(
        select(SepLeaseApplication)
        .where(SepLeaseApplication.lease_contract_number == contract_number)
        .with_for_update()
    ).first()
    if lease is not None and lease.status not in EDITABLE:
        current = session.get(SepRequest, lease.last_request_id) if lease.last_request_id else None
        return lease, current, False
    epts = _vehicles(contract, lease)
    not_owned = {e: status for e in epts if (status := asset_status(session, e)) != OWNED}
    if not_owned:
        listed = ", ".join(f"{e} ({status or 'no SEP status'})" for e, status in not_owned.items())
        raise PermanentError(f"only vehicles «{OWNED}» can be leased; these are not: {listed}")
    values = _lease_values(
        session,
        contract,
        epts,
        use_technical_mailbox=use_technical_mailbox,
        confirm_by=confirm_by,
        lessor_status=lessor_status,
        source=source,
    )
    values["status"] = LEASE_SUBMITTING
    if lease is None:
        lease = SepLeaseApplication(lease_contract_number=contract_number, **values)
        session.add(lease)
    else:
        for key, value in values.items():
            setattr(lease, key, value)
    session.flush()
    args = SubmitLeaseApplication(
        lessor_inn=lease.organization_inn,
        lessee_inn=contract.lessee_inn,
        document_name=contract.document_name,
        document_number=contract.number,
        document_date=contract.date,
        lease_term_end=contract.lease_term_end,
        epts=epts,
        lessor_status=lessor_status,
        lessee_status=PartyStatus.NOT_APPLICABLE,
        confirm_by=lease.confirm_by,
        notification_email=lease.notification_email,
    )
    request, created = open_request(
        session, args, business_key=f"lease:{contract_number}", source=source, lease_application_id=lease.id
    )
    lease.last_request_id = request.id
    return lease, request, created


def notification_email(session: Session, organization: str, lessee_inn: str, technical: bool) -> str:
    if technical:
        settings = session.get(SepSettings, organization)
        if settings is None or not settings.technical_email:
            raise PermanentError(f"no technical mailbox in the SEP settings of ИНН {organization}")
        return settings.technical_email
    email = session.scalars(
        select(Counterparty.email)
        .where(Counterparty.inn == lessee_inn)
        .where(Counterparty.email.is_not(None))
    ).first()
    if not email:
        raise PermanentError(
            f"the lessee (ИНН {lessee_inn}) has no e-mail in master data: use the technical mailbox"
        )
    return email


def confirm_lease(
    session: Session,
    application_number: str,
    *,
    lessee_status: PartyStatus = PartyStatus.CONFIRMED,
    code: str | None = None,
    source: str | None = None,
) -> tuple[SepRequest, bool]:
    """Подтвердить заявление на лизинг as the lessee, with the lessee's code (from the letter)."""
    lease = session.scalars(
        select(SepLeaseApplication)
        .where(SepLeaseApplication.application_number == application_number)
        .with_for_update()
    ).first()
    if lease is None:
        raise PermanentError(f"no lease application of ours has SEP number № {application_number}")
    code_row = code_for(session, application_number, code)
    if lessee_status is PartyStatus.CONFIRMED and code_row is None:
        raise PermanentError(
            f"no confirmation code for lease application № {application_number} in sep_confirmation_codes; "
            "enter the lessee's code from the letter by hand"
        )
    args = ConfirmLeaseApplication(
        organization_inn=lease.organization_inn,
        application_number=application_number,
        lessee_status=lessee_status,
        confirmation_code=code_row.code if code_row and lessee_status is PartyStatus.CONFIRMED else None,
    )
    request, created = open_request(
        session,
        args,
        business_key=f"confirm-lease:{application_number}",
        source=source,
        application_number=application_number,
        lease_application_id=lease.id,
    )
    if created:
        lease.status = LEASE_CONFIRMING
        lease.last_request_id = request.id
    return request, created

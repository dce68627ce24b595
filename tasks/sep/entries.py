"""The public SEP tasks other services enqueue by name (documented in docs/tasks.md).

Each validates its JSON arguments and starts one request through ``actions.py``; asking again while
the request is on its way returns that request (``"created": false``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from integrations.sep.messages import (
    ApplicationNumber,
    ConfirmationCode,
    LeaseChangeKind,
    PartyRole,
    PartyStatus,
)
from integrations.validation import Epts, Inn, Kpp
from models.sep import SepRequest
from tasks.machinery.steps import entry
from tasks.sep import actions, counterparties, lease_changes, notices


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    # Who asks, for the record: "mail:<mail_messages.id>", "ops", "beat", a service's name.
    source: str | None = Field(None, max_length=120)


def _answer(request: SepRequest | None, created: bool, **more: Any) -> dict[str, Any]:
    return {
        "request_id": request.id if request else None,
        "business_key": request.business_key if request else None,
        "status": request.status if request else None,
        "created": created,
        **more,
    }


class RequestApplicationsArgs(_Args):
    organization_inn: Inn | None = None
    period_from: date | None = None
    period_to: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RequestApplicationsArgs:
        if self.period_from and self.period_to and self.period_from > self.period_to:
            raise ValueError("period_from is after period_to")
        return self


@entry("sep.request_applications", args=RequestApplicationsArgs)
def request_applications(session: Session, args: RequestApplicationsArgs) -> list[dict[str, Any]]:
    """Ask SEP for the applications of a period (default: the last OBMEN_SEP_REQUEST_APPLICATIONS_DAYS)."""
    found = actions.ask_applications(
        session, args.organization_inn, args.period_from, args.period_to, source=args.source
    )
    return [_answer(request, created) for request, created in found]


class RequestApplicationDataArgs(_Args):
    application_number: ApplicationNumber
    organization_inn: Inn | None = None
    refresh: bool = False


@entry("sep.request_application_data", args=RequestApplicationDataArgs)
def request_application_data(session: Session, args: RequestApplicationDataArgs) -> dict[str, Any]:
    """Ask SEP for an application's data (mail intake does, once a letter with its code is read)."""
    request, created = actions.ask_application_data(
        session,
        args.application_number,
        organization_inn=args.organization_inn,
        source=args.source,
        refresh=args.refresh,
    )
    return _answer(request, created)


class ConfirmOwnershipChangeArgs(_Args):
    application_number: ApplicationNumber
    party_status: PartyStatus = PartyStatus.CONFIRMED
    # Entered by hand when the letter went elsewhere; otherwise the register's newest unused code.
    code: ConfirmationCode | None = None


@entry("sep.confirm_ownership_change", args=ConfirmOwnershipChangeArgs)
def confirm_ownership_change(session: Session, args: ConfirmOwnershipChangeArgs) -> dict[str, Any]:
    """Confirm (or reject) an ownership change as the new owner."""
    request, created = actions.confirm_ownership(
        session, args.application_number, party_status=args.party_status, code=args.code, source=args.source
    )
    return _answer(request, created)


class SubmitLeaseApplicationArgs(_Args):
    lease_contract: str = Field(min_length=1, max_length=100)
    use_technical_mailbox: bool = True
    confirm_by: date | None = None
    lessor_status: PartyStatus = PartyStatus.CONFIRMED


@entry("sep.submit_lease_application", args=SubmitLeaseApplicationArgs)
def submit_lease_application(session: Session, args: SubmitLeaseApplicationArgs) -> dict[str, Any]:
    """Submit the lease application of a lease contract appendix whose vehicles are «В собственности»."""
    lease, request, created = actions.submit_lease(
        session,
        args.lease_contract,
        use_technical_mailbox=args.use_technical_mailbox,
        confirm_by=args.confirm_by,
        lessor_status=args.lessor_status,
        source=args.source,
    )
    return _answer(request, created, lease_application_id=lease.id)


class ConfirmLeaseApplicationArgs(_Args):
    application_number: ApplicationNumber
    lessee_status: PartyStatus = PartyStatus.CONFIRMED
    code: ConfirmationCode | None = None


@entry("sep.confirm_lease_application", args=ConfirmLeaseApplicationArgs)
def confirm_lease_application(session: Session, args: ConfirmLeaseApplicationArgs) -> dict[str, Any]:
    """Confirm a lease application for the lessee, with the lessee's code."""
    request, created = actions.confirm_lease(
        session, args.application_number, lessee_status=args.lessee_status, code=args.code, source=args.source
    )
    return _answer(request, created)


class RegisterCounterpartyArgs(_Args):
    inn: Inn
    kpp: Kpp | None = None
    organization_inn: Inn | None = None


@entry("sep.register_counterparty", args=RegisterCounterpartyArgs)
def register_counterparty(session: Session, args: RegisterCounterpartyArgs) -> dict[str, Any]:
    """Look a counterparty up in SEP by ИНН and register it from master data when SEP has none."""
    row, request, created = counterparties.register_counterparty(
        session, args.inn, kpp=args.kpp, organization_inn=args.organization_inn, source=args.source
    )
    return _answer(request, created, counterparty_id=row.id, counterparty_status=row.status)


class SubmitLeaseChangeArgs(_Args):
    change_number: str = Field(min_length=1, max_length=100)
    kind: LeaseChangeKind
    epts: list[Epts] = Field(min_length=1, max_length=100)
    new_lessee_inn: Inn | None = None
    organization_inn: Inn | None = None
    document_name: str | None = Field(None, min_length=1, max_length=500)
    document_date: date | None = None
    confirm_by: date | None = None
    use_technical_mailbox: bool = True
    draft: bool = False


@entry("sep.submit_lease_change", args=SubmitLeaseChangeArgs)
def submit_lease_change(session: Session, args: SubmitLeaseChangeArgs) -> dict[str, Any]:
    """Keep («Черновик», ``draft``) or submit a termination, change of lessee or end of lease."""
    change, request, created = lease_changes.submit_lease_change(
        session,
        args.change_number,
        kind=args.kind,
        epts=list(args.epts),
        new_lessee_inn=args.new_lessee_inn,
        organization_inn=args.organization_inn,
        document_name=args.document_name,
        document_date=args.document_date,
        confirm_by=args.confirm_by,
        use_technical_mailbox=args.use_technical_mailbox,
        draft=args.draft,
        source=args.source,
    )
    return _answer(request, created, lease_change_id=change.id, lease_change_status=change.status)


class ConfirmLeaseChangeArgs(_Args):
    change_number: str = Field(min_length=1, max_length=100)
    # The codes from the parties' letters, by role (Lessee, NewLessee); see lease_changes.confirm_lease_change.
    codes: dict[PartyRole, ConfirmationCode] = Field(default_factory=dict, max_length=2)
    reject: bool = False


@entry("sep.confirm_lease_change", args=ConfirmLeaseChangeArgs)
def confirm_lease_change(session: Session, args: ConfirmLeaseChangeArgs) -> dict[str, Any]:
    """Confirm (or reject) a registered lease change for the parties, with their codes."""
    request, created = lease_changes.confirm_lease_change(
        session, args.change_number, codes=args.codes, reject=args.reject, source=args.source
    )
    return _answer(request, created)


class EditLeaseVehiclesArgs(_Args):
    lease_contract: str = Field(min_length=1, max_length=100)
    add: list[Epts] = Field(default_factory=list, max_length=100)
    remove: list[Epts] = Field(default_factory=list, max_length=100)


@entry("sep.edit_lease_vehicles", args=EditLeaseVehiclesArgs)
def edit_lease_vehicles(session: Session, args: EditLeaseVehiclesArgs) -> dict[str, Any]:
    """«+» / «−»: change the vehicles of an appendix's lease application before it is submitted."""
    lease = actions.edit_lease_vehicles(
        session, args.lease_contract, add=list(args.add), remove=list(args.remove), source=args.source
    )
    return {"lease_application_id": lease.id, "status": lease.status, "epts": list(lease.epts)}


@entry("sep.send_digest", args=_Args)
def send_digest(session: Session, args: _Args) -> list[dict[str, Any]]:
    """Beat: the SEP-responsible's daily digest of what waits for a person (once a day, keyed)."""
    return notices.send_digests(session)

"""The public SEP tasks other services enqueue by name (documented in docs/tasks.md).

Each validates its JSON arguments and starts one request through ``actions.py``; asking again while
the request is on its way returns that request (``"created": false``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from integrations.sep.messages import ApplicationNumber, ConfirmationCode, PartyStatus
from integrations.validation import Inn
from models.sep import SepRequest
from tasks.machinery.steps import entry
from tasks.sep import actions


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

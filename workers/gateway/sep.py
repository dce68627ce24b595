"""The SEP workstation over HTTP: the work lists as JSON (read scope; ``/sep`` gives the count of
each), and the actions of ``obmen sep`` (write scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError

from integrations.errors import PermanentError
from integrations.sep.messages import PartyStatus
from models.db import session_scope
from tasks.machinery.steps import Entry
from tasks.sep import entries, queries
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute
from workers.gateway.params import Chars, Day, Limit, Text
from workers.gateway.problems import invalid

router = APIRouter(
    prefix="/sep", tags=["sep"], dependencies=[Depends(require("read"))], route_class=EdgeRoute
)


@router.get("")
def summary() -> dict[str, int]:
    """How many items each list holds (the numbers in brackets on the seed's tabs)."""
    with session_scope() as session:
        return queries.summary(session)


@router.get("/letters")
def letters(limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    with session_scope() as session:
        return queries.letters(session, limit).as_dict()


@router.get("/ownership-changes")
def ownership_changes(
    responsible: Text | None = None,
    asset: Text | None = None,
    vin: Text | None = None,
    epts: Text | None = None,
    limit: Limit = queries.DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Ownership changes to us not yet «Исполнен»; filter by responsible (employee id), asset, VIN, ЭПТС."""
    with session_scope() as session:
        return queries.ownership_changes(
            session, responsible=responsible, asset=asset, vin=vin, epts=epts, limit=limit
        ).as_dict()


@router.get("/lease-applications")
def lease_applications(status: Text | None = None, limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    with session_scope() as session:
        return queries.lease_applications(session, status=status, limit=limit).as_dict()


@router.get("/lease-candidates")
def lease_candidates(
    organization: Text | None = None, period_from: Day | None = None, period_to: Day | None = None
) -> dict[str, Any]:
    with session_scope() as session:
        return queries.lease_candidates_list(
            session, organization=organization, period_from=period_from, period_to=period_to
        ).as_dict()


@router.get("/queue")
def queue(limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    with session_scope() as session:
        return queries.queue(session, limit).as_dict()


@router.get("/errors")
def errors(limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    with session_scope() as session:
        return queries.errors(session, limit).as_dict()


# --- actions (write scope) ---------------------------------------------------------------------------
# The public SEP entries (tasks/sep/entries.py, what `obmen sep` and other services call), run in the
# request's transaction: 202 once the request is recorded and its first step is in the outbox. Asking
# again while it is on its way answers the same request (`created: false`): idempotent by business key.
actions = APIRouter(
    prefix="/sep", tags=["sep"], dependencies=[Depends(require("write"))], route_class=EdgeRoute
)
Inn = Annotated[str, Chars(12, 10)]
ApplicationNumber = Annotated[str, Chars(64, 1)]
Code = Annotated[str, Chars(12, 4)]
Source = Annotated[str, Chars(120, 1)]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Source = Field("api", description="who asks, for the record: a service's name, console, …")


class ApplicationsRequest(_Action):
    organization_inn: Inn | None = Field(
        None, description="our organisation (default: each with SEP settings)"
    )
    period_from: Day | None = None
    period_to: Day | None = Field(None, description="default: today")


class ApplicationDataRequest(_Action):
    application_number: ApplicationNumber
    organization_inn: Inn | None = None
    refresh: bool = Field(False, description="ask again even if the data is fresh («Обновить данные»)")


class OwnershipConfirmation(_Action):
    application_number: ApplicationNumber
    party_status: PartyStatus = PartyStatus.CONFIRMED
    code: Code | None = Field(None, description="the code from the letter, when it went to another mailbox")


class LeaseSubmission(_Action):
    lease_contract: Annotated[str, Chars(100, 1)] = Field(description="the lease contract appendix")
    use_technical_mailbox: bool = Field(True, description="false: the lessee's code goes to the lessee")
    confirm_by: Day | None = None


class LeaseConfirmation(_Action):
    application_number: ApplicationNumber
    lessee_status: PartyStatus = PartyStatus.CONFIRMED
    code: Code | None = Field(None, description="the lessee's code from the letter")


class Started(BaseModel):
    request_id: int | None
    business_key: str | None
    status: str | None
    created: bool
    lease_application_id: int | None = None


class StartedMany(BaseModel):
    requests: list[Started]


def _run(action: Entry[Any, Any], args: Any) -> Any:
    try:
        with session_scope() as session:
            return action.plain(session, args)
    except PermanentError as exc:  # the registers say no: no appendix, no code, not owned yet …
        raise HTTPException(409, str(exc)) from exc


def _start(action: Entry[Any, Any], body: _Action) -> Any:
    """Run ``action`` on ``body`` (its meaning checked by the entry's own model) in one transaction."""
    try:
        args = action.args.model_validate(body.model_dump())
    except ValidationError as exc:
        raise invalid(exc) from exc
    try:
        return _run(action, args)
    except IntegrityError:
        # A concurrent caller opened the request first (one open request per business key): the
        # second run finds it and answers it.
        return _run(action, args)


@actions.post("/application-requests", status_code=202)
def post_application_requests(body: ApplicationsRequest) -> StartedMany:
    """Запрос заявлений за период: one request per organisation (key `applications:<inn>:<from>:<to>`)."""
    return StartedMany(requests=_start(entries.request_applications, body))


@actions.post("/application-data-requests", status_code=202)
def post_application_data_request(body: ApplicationDataRequest) -> Started:
    """Запрос данных заявления (key `application-data:<number>`); data answered within
    OBMEN_SEP_APPLICATION_DATA_FRESH_S is not asked again unless `refresh`."""
    return Started.model_validate(_start(entries.request_application_data, body))


@actions.post("/ownership-confirmations", status_code=202)
def post_ownership_confirmation(body: OwnershipConfirmation) -> Started:
    """Подтвердить (or reject) смену собственника (key `confirm-ownership:<number>`), with the
    register's code or `code`."""
    return Started.model_validate(_start(entries.confirm_ownership_change, body))


@actions.post("/lease-submissions", status_code=202)
def post_lease_submission(body: LeaseSubmission) -> Started:
    """Отправить заявление на лизинг of an appendix whose vehicles are «В собственности»
    (key `lease:<appendix>`; one per appendix)."""
    return Started.model_validate(_start(entries.submit_lease_application, body))


@actions.post("/lease-confirmations", status_code=202)
def post_lease_confirmation(body: LeaseConfirmation) -> Started:
    """Подтвердить заявление на лизинг for the lessee, with the lessee's code (key `confirm-lease:<number>`)."""
    return Started.model_validate(_start(entries.confirm_lease_application, body))

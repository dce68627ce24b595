"""The SEP workstation over HTTP: the work lists as JSON (read scope; ``/sep`` gives the count of
each), and the actions of ``obmen sep`` (write scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError

from integrations.errors import PermanentError
from integrations.sep.messages import LeaseChangeKind, PartyRole, PartyStatus
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


@router.get("/lease-changes")
def lease_changes(status: Text | None = None, limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    """Terminations, changes of lessee (перенаём) and ends of lease; filter by status («Черновик» …)."""
    with session_scope() as session:
        return queries.lease_changes(session, status=status, limit=limit).as_dict()


@router.get("/counterparties")
def counterparties(status: Text | None = None, limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    """Counterparties looked up or registered in SEP («Есть в СЭП», «Зарегистрирован», «Ошибка» …)."""
    with session_scope() as session:
        return queries.counterparties(session, status=status, limit=limit).as_dict()


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


class CounterpartyRegistration(_Action):
    inn: Inn = Field(
        description="the counterparty's ИНН; its form (КПП, ОГРН, name, address, e-mail) is master data's"
    )
    kpp: Annotated[str, Chars(9, 9)] | None = Field(
        None, description="when master data has several for the ИНН"
    )
    organization_inn: Inn | None = None


Epts = Annotated[str, Chars(15, 15)]


class LeaseChange(_Action):
    change_number: Annotated[str, Chars(100, 1)] = Field(
        description="our document's number: the change's key"
    )
    kind: LeaseChangeKind
    epts: list[Epts] = Field(min_length=1, max_length=100, description="one or several vehicles «В лизинге»")
    new_lessee_inn: Inn | None = Field(None, description="LesseeChange only: a counterparty in SEP already")
    organization_inn: Inn | None = None
    document_name: Annotated[str, Chars(500, 1)] | None = None
    document_date: Day | None = None
    confirm_by: Day | None = None
    use_technical_mailbox: bool = Field(True, description="false: the codes go to the lessee's e-mail")
    draft: bool = Field(False, description="keep it «Черновик», do not submit yet")


class LeaseChangeConfirmation(_Action):
    change_number: Annotated[str, Chars(100, 1)]
    lessee_code: Code | None = Field(None, description="the lessee's code from its letter")
    new_lessee_code: Code | None = Field(None, description="перенаём: the new lessee's code from its letter")
    reject: bool = False

    def entry_args(self) -> dict[str, Any]:
        """The entry takes the codes by role."""
        given = {PartyRole.LESSEE: self.lessee_code, PartyRole.NEW_LESSEE: self.new_lessee_code}
        return {
            "change_number": self.change_number,
            "codes": {role.value: code for role, code in given.items() if code},
            "reject": self.reject,
            "source": self.source,
        }


class LeaseVehicles(_Action):
    lease_contract: Annotated[str, Chars(100, 1)] = Field(description="the lease contract appendix")
    add: list[Epts] = Field(default_factory=list, max_length=100, description="«+»")
    remove: list[Epts] = Field(default_factory=list, max_length=100, description="«−»")


class LeaseVehiclesAnswer(BaseModel):
    lease_application_id: int
    status: str
    epts: list[str]


class Started(BaseModel):
    request_id: int | None
    business_key: str | None
    status: str | None
    created: bool
    lease_application_id: int | None = None


class CounterpartyStarted(Started):
    counterparty_id: int
    counterparty_status: str


class LeaseChangeStarted(Started):
    lease_change_id: int
    lease_change_status: str


class StartedMany(BaseModel):
    requests: list[Started]


def _run(action: Entry[Any, Any], args: Any) -> Any:
    try:
        with session_scope() as session:
            return action.plain(session, args)
    except PermanentError as exc:  # the registers say no: no appendix, no code, not owned yet …
        raise HTTPException(409, str(exc)) from exc


def _start(action: Entry[Any, Any], body: _Action | dict[str, Any]) -> Any:
    """Run ``action`` on ``body`` (its meaning checked by the entry's own model) in one transaction."""
    try:
        args = action.args.model_validate(body if isinstance(body, dict) else body.model_dump())
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


@actions.post("/counterparty-registrations", status_code=202)
def post_counterparty_registration(body: CounterpartyRegistration) -> CounterpartyStarted:
    """Find the counterparty in SEP by ИНН (key `counterparty-find:<inn>`) and register it from master
    data when SEP has none (`counterparty-register:<inn>`); one in SEP already starts nothing."""
    return CounterpartyStarted.model_validate(_start(entries.register_counterparty, body))


@actions.post("/lease-changes", status_code=202)
def post_lease_change(body: LeaseChange) -> LeaseChangeStarted:
    """Keep («Черновик») or submit a termination, change of lessee (перенаём) or end of lease for
    vehicles «В лизинге» (key `lease-change:<change_number>`)."""
    return LeaseChangeStarted.model_validate(_start(entries.submit_lease_change, body))


@actions.post("/lease-change-confirmations", status_code=202)
def post_lease_change_confirmation(body: LeaseChangeConfirmation) -> Started:
    """Confirm (or reject) a registered lease change for its parties, with their codes by role
    (key `confirm-lease-change:<application number>`)."""
    return Started.model_validate(_start(entries.confirm_lease_change, body.entry_args()))


@actions.post("/lease-vehicles")
def post_lease_vehicles(body: LeaseVehicles) -> LeaseVehiclesAnswer:
    """«+» / «−»: change the vehicles of an appendix's lease application before it is submitted; a
    submitted one answers 409 saying when they may change."""
    return LeaseVehiclesAnswer.model_validate(_start(entries.edit_lease_vehicles, body))

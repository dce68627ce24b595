"""What obmen says to SEP and what SEP answers, as typed Python (the wire is in ``client.py``).

Requests are pydantic models: they validate at the edge (ИНН, ЭПТС, e-mail), are stored as JSON in
the queue row, and turn into the WSDL's arguments with :meth:`SepRequestArgs.wire`.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from integrations.validation import Epts, Inn, Kpp, Ogrn


class PartyStatus(enum.StrEnum):
    CONFIRMED = "Confirmed"
    NOT_APPLICABLE = "NotApplicable"  # not specified (yet)
    REJECTED = "Rejected"


class PartyRole(enum.StrEnum):
    CURRENT_OWNER = "CurrentOwner"
    NEW_OWNER = "NewOwner"
    LESSOR = "Lessor"
    LESSEE = "Lessee"
    NEW_LESSEE = "NewLessee"


class ApplicationKind(enum.StrEnum):
    OWNERSHIP_CHANGE = "OwnershipChange"
    LEASE = "Lease"
    LEASE_TERMINATION = "LeaseTermination"
    LESSEE_CHANGE = "LesseeChange"
    LEASE_END = "LeaseEnd"


class LeaseChangeKind(enum.StrEnum):
    """What a lease change does; SEP registers it as the application kind of ``CHANGE_APPLICATION``."""

    TERMINATION = "Termination"  # прекращение лизинга: the vehicle is taken back from the lessee
    LESSEE_CHANGE = "LesseeChange"  # перенаём: a new lessee takes the lease over
    LEASE_END = "LeaseEnd"  # окончание срока: ownership passes to the client, the lease mark goes


CHANGE_APPLICATION = {
    LeaseChangeKind.TERMINATION: ApplicationKind.LEASE_TERMINATION,
    LeaseChangeKind.LESSEE_CHANGE: ApplicationKind.LESSEE_CHANGE,
    LeaseChangeKind.LEASE_END: ApplicationKind.LEASE_END,
}


class QueueState(enum.StrEnum):
    TOO_EARLY = "TooEarly"
    IN_QUEUE = "InQueue"
    PROCESSING = "Processing"
    DONE = "Done"
    ERROR = "Error"


ApplicationNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[\w./-]+$")
]
ConfirmationCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{4,12}$")]


class SepRequestArgs(BaseModel):
    """The arguments of one SEP request operation (``OPERATION`` names it in the WSDL)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    OPERATION: ClassVar[str]

    def wire(self) -> dict[str, Any]:
        """Keyword arguments of the zeep call (camelCase as in the WSDL), without ``messageId``."""
        return {_camel(k): v for k, v in self.model_dump(mode="python").items()}


class RequestApplications(SepRequestArgs):
    OPERATION: ClassVar[str] = "RequestApplications"
    organization_inn: Inn
    period_from: date
    period_to: date


class RequestApplicationData(SepRequestArgs):
    OPERATION: ClassVar[str] = "RequestApplicationData"
    organization_inn: Inn
    application_number: ApplicationNumber


class ConfirmOwnershipChange(SepRequestArgs):
    OPERATION: ClassVar[str] = "ConfirmOwnershipChange"
    organization_inn: Inn
    application_number: ApplicationNumber
    party_status: PartyStatus
    confirmation_code: ConfirmationCode | None = None


class SubmitLeaseApplication(SepRequestArgs):
    OPERATION: ClassVar[str] = "SubmitLeaseApplication"
    lessor_inn: Inn
    lessee_inn: Inn
    document_name: str = Field(min_length=1)
    document_number: str = Field(min_length=1)
    document_date: date
    lease_term_end: date
    epts: list[Epts] = Field(min_length=1)
    lessor_status: PartyStatus
    lessee_status: PartyStatus
    confirm_by: date
    notification_email: EmailStr

    def wire(self) -> dict[str, Any]:
        return {
            "lessorInn": self.lessor_inn,
            "lesseeInn": self.lessee_inn,
            "leaseDocument": {
                "documentName": self.document_name,
                "documentNumber": self.document_number,
                "documentDate": self.document_date,
                "leaseTermEnd": self.lease_term_end,
            },
            "vehicles": {"epts": list(self.epts)},
            "lessorStatus": self.lessor_status.value,
            "lesseeStatus": self.lessee_status.value,
            "confirmBy": self.confirm_by,
            "notificationEmail": str(self.notification_email),
        }


class ConfirmLeaseApplication(SepRequestArgs):
    OPERATION: ClassVar[str] = "ConfirmLeaseApplication"
    organization_inn: Inn
    application_number: ApplicationNumber
    lessee_status: PartyStatus
    confirmation_code: ConfirmationCode | None = None


class FindCounterparty(SepRequestArgs):
    OPERATION: ClassVar[str] = "FindCounterparty"
    organization_inn: Inn
    inn: Inn


class RegisterCounterparty(SepRequestArgs):
    """The seed's "form with the counterparty's data", from master data."""

    OPERATION: ClassVar[str] = "RegisterCounterparty"
    organization_inn: Inn
    inn: Inn
    kpp: Kpp | None = None
    ogrn: Ogrn
    name: str = Field(min_length=1, max_length=500)
    address: str = Field(min_length=1, max_length=1000)
    email: EmailStr | None = None

    def wire(self) -> dict[str, Any]:
        form = {"inn": self.inn, "kpp": self.kpp, "ogrn": self.ogrn, "name": self.name}
        form |= {"address": self.address, "email": str(self.email) if self.email else None}
        return {"organizationInn": self.organization_inn, "counterparty": form}


class SubmitLeaseChange(SepRequestArgs):
    OPERATION: ClassVar[str] = "SubmitLeaseChange"
    lessor_inn: Inn
    kind: LeaseChangeKind
    lessee_inn: Inn
    new_lessee_inn: Inn | None = None
    document_name: str = Field(min_length=1)
    document_number: str = Field(min_length=1)
    document_date: date
    epts: list[Epts] = Field(min_length=1)
    confirm_by: date
    notification_email: EmailStr

    def wire(self) -> dict[str, Any]:
        return {
            "lessorInn": self.lessor_inn,
            "kind": self.kind.value,
            "lesseeInn": self.lessee_inn,
            "newLesseeInn": self.new_lessee_inn,
            "changeDocument": {
                "documentName": self.document_name,
                "documentNumber": self.document_number,
                "documentDate": self.document_date,
            },
            "vehicles": {"epts": list(self.epts)},
            "confirmBy": self.confirm_by,
            "notificationEmail": str(self.notification_email),
        }


class PartyConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: PartyRole
    status: PartyStatus
    confirmation_code: ConfirmationCode | None = None


class ConfirmLeaseChange(SepRequestArgs):
    OPERATION: ClassVar[str] = "ConfirmLeaseChange"
    organization_inn: Inn
    application_number: ApplicationNumber
    confirmations: list[PartyConfirmation] = Field(min_length=1)

    def wire(self) -> dict[str, Any]:
        return {
            "organizationInn": self.organization_inn,
            "applicationNumber": self.application_number,
            "confirmations": {
                "confirmation": [
                    {"role": c.role.value, "status": c.status.value, "confirmationCode": c.confirmation_code}
                    for c in self.confirmations
                ]
            },
        }


REQUESTS: dict[str, type[SepRequestArgs]] = {
    cls.OPERATION: cls
    for cls in (
        RequestApplications,
        RequestApplicationData,
        ConfirmOwnershipChange,
        SubmitLeaseApplication,
        ConfirmLeaseApplication,
        FindCounterparty,
        RegisterCounterparty,
        SubmitLeaseChange,
        ConfirmLeaseChange,
    )
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# --- answers -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Party:
    role: PartyRole
    inn: str
    name: str | None
    status: PartyStatus


@dataclass(frozen=True)
class Vehicle:
    epts: str
    vin: str | None


@dataclass(frozen=True)
class LeaseDocument:
    document_name: str
    document_number: str
    document_date: date
    lease_term_end: date


@dataclass(frozen=True)
class Application:
    """An application (заявление) as SEP describes it."""

    number: str
    kind: ApplicationKind
    status: str  # SEP's own words: «Ожидает подтверждения», «Исполнен», «Отклонено», «Срок истёк»
    registered_at: datetime
    confirm_by: date | None
    vehicles: tuple[Vehicle, ...]
    parties: tuple[Party, ...]
    lease_document: LeaseDocument | None = None

    def party(self, role: PartyRole) -> Party | None:
        return next((p for p in self.parties if p.role is role), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return _jsonable(data)


@dataclass(frozen=True)
class Counterparty:
    """A counterparty as SEP keeps it (``sep_id`` is SEP's own)."""

    sep_id: str | None
    inn: str
    kpp: str | None
    ogrn: str
    name: str
    address: str
    email: str | None


@dataclass(frozen=True)
class SepError:
    code: str
    message: str


@dataclass(frozen=True)
class Ticket:
    queue_number: str
    accepted_at: datetime


@dataclass(frozen=True)
class QueueResult:
    queue_number: str
    state: QueueState
    server_time: datetime
    not_before: datetime | None = None
    completed_at: datetime | None = None
    application: Application | None = None
    applications: tuple[Application, ...] | None = None
    counterparty: Counterparty | None = None
    errors: tuple[SepError, ...] = field(default_factory=tuple)

    def result_json(self) -> dict[str, Any]:
        """What is kept in the queue row: the application(s) SEP returned."""
        result: dict[str, Any] = {}
        if self.application is not None:
            result["application"] = self.application.to_json()
        if self.applications is not None:
            result["applications"] = [a.to_json() for a in self.applications]
        if self.counterparty is not None:
            result["counterparty"] = asdict(self.counterparty)
        return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def application_from_json(data: dict[str, Any]) -> Application:
    """The inverse of :meth:`Application.to_json` (results are stored as JSON between steps)."""
    lease = data.get("lease_document")
    return Application(
        number=data["number"],
        kind=ApplicationKind(data["kind"]),
        status=data["status"],
        registered_at=datetime.fromisoformat(data["registered_at"]),
        confirm_by=date.fromisoformat(data["confirm_by"]) if data.get("confirm_by") else None,
        vehicles=tuple(Vehicle(v["epts"], v.get("vin")) for v in data["vehicles"]),
        parties=tuple(
            Party(PartyRole(p["role"]), p["inn"], p.get("name"), PartyStatus(p["status"]))
            for p in data["parties"]
        ),
        lease_document=LeaseDocument(
            lease["document_name"],
            lease["document_number"],
            date.fromisoformat(lease["document_date"]),
            date.fromisoformat(lease["lease_term_end"]),
        )
        if lease
        else None,
    )

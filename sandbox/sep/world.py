"""The SEP the emulator pretends to be: vehicles, applications, confirmation codes and the queue.

Plain Python, no HTTP: ``emulator.py`` decodes the SOAP request, calls an operation here, and
encodes what it returns. An operation is executed when it is accepted (that is when SEP's state
changes); its result is revealed by ``GetQueueResult`` only once the queue number is ready.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

AWAITING = "Ожидает подтверждения"
EXECUTED = "Исполнен"
REJECTED = "Отклонено"
EXPIRED = "Срок истёк"


class ClientFault(Exception):
    """The request itself is wrong: answered with a soap:Client fault, nothing is queued."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Vehicle:
    epts: str
    vin: str | None
    owner_inn: str
    owner_name: str = ""
    leased_to: str | None = None


@dataclass
class Party:
    role: str
    inn: str
    name: str
    status: str


@dataclass
class Application:
    number: str
    kind: str  # OwnershipChange, Lease
    status: str
    registered_at: datetime
    confirm_by: date
    vehicles: list[Vehicle]
    parties: list[Party]
    # The code the confirming party must give, and who that party is (role).
    code: str
    notify_email: str | None = None
    lease_document: dict[str, Any] | None = None

    def party(self, role: str) -> Party | None:
        return next((p for p in self.parties if p.role == role), None)


@dataclass
class Outcome:
    """What a queue number answers once ready: an application, a list, or errors."""

    application: dict[str, Any] | None = None
    applications: list[dict[str, Any]] | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class QueueItem:
    queue_number: str
    operation: str
    message_id: str
    accepted_at: datetime
    ready_at: datetime
    outcome: Outcome
    polls: list[tuple[datetime, str]] = field(default_factory=list)


@dataclass
class Timing:
    """SEP's own timing, separate from the pipeline's settings (knobs ``extra``)."""

    min_delay_s: float = 60.0
    processing_s: float = 0.0
    # Each queue number gets a further random share of this, fixed when it is accepted.
    processing_spread_s: float = 0.0
    never_ready: bool = False


Letter = tuple[str, str, str]  # (to, subject, body)


class World:
    def __init__(self, now: Callable[[], datetime]) -> None:
        self.now = now
        self.vehicles: dict[str, Vehicle] = {}
        self.applications: dict[str, Application] = {}
        self.queue: dict[str, QueueItem] = {}
        self.by_message_id: dict[str, QueueItem] = {}
        self._queue_seq = 0
        self._application_seq = 0
        # Letters due when a queue number becomes ready: (due, letter).
        self.outgoing: list[tuple[datetime, Letter]] = []

    # --- scenario (the dealer's side, the sandbox's own endpoints) --------------------------------
    def add_vehicle(self, epts: str, vin: str | None, owner_inn: str, owner_name: str = "") -> Vehicle:
        vehicle = Vehicle(epts, vin, owner_inn, owner_name)
        self.vehicles[epts] = vehicle
        return vehicle

    def start_ownership_change(
        self,
        epts: str,
        new_owner_inn: str,
        new_owner_name: str,
        notify_email: str,
        confirm_by_days: int = 7,
    ) -> Application:
        """A dealer starts handing a vehicle over to a new owner; the new owner gets a code by letter."""
        vehicle = self.vehicles.get(epts)
        if vehicle is None:
            raise ClientFault("VehicleNotFound", f"no vehicle with ЭПТС {epts}")
        now = self.now()
        application = Application(
            number=self._next_application_number(now),
            kind="OwnershipChange",
            status=AWAITING,
            registered_at=now,
            confirm_by=(now + timedelta(days=confirm_by_days)).date(),
            vehicles=[vehicle],
            parties=[
                Party("CurrentOwner", vehicle.owner_inn, vehicle.owner_name, "Confirmed"),
                Party("NewOwner", new_owner_inn, new_owner_name, "NotApplicable"),
            ],
            code=_code(),
            notify_email=notify_email,
        )
        self.applications[application.number] = application
        return application

    # --- the SOAP operations ------------------------------------------------------------------------
    def accept(self, operation: str, message_id: str, timing: Timing, args: dict[str, Any]) -> QueueItem:
        """Queue a request: the same message id answers the original queue number, once executed."""
        if not message_id:
            raise ClientFault("MessageIdMissing", "messageId is required")
        known = self.by_message_id.get(message_id)
        if known is not None:
            if known.operation != operation:
                raise ClientFault("MessageIdReused", f"messageId {message_id} was used for {known.operation}")
            return known
        handler = getattr(self, f"_op_{operation}")
        now = self.now()
        ready_at = now + timedelta(
            seconds=timing.min_delay_s + timing.processing_s + random.uniform(0, timing.processing_spread_s)
        )
        outcome, letters = handler(**args)
        self._queue_seq += 1
        item = QueueItem(
            f"Q{now:%Y%m%d}-{self._queue_seq:08d}", operation, message_id, now, ready_at, outcome
        )
        self.queue[item.queue_number] = item
        self.by_message_id[message_id] = item
        self.outgoing += [(ready_at, letter) for letter in letters]
        return item

    def poll(self, queue_number: str, timing: Timing) -> tuple[str, QueueItem]:
        item = self.queue.get(queue_number)
        if item is None:
            raise ClientFault("UnknownQueueNumber", f"no queue number {queue_number}")
        now = self.now()
        if now < item.accepted_at + timedelta(seconds=timing.min_delay_s):
            state = "TooEarly"
        elif timing.never_ready or now < item.ready_at:
            halfway = item.accepted_at + (item.ready_at - item.accepted_at) / 2
            state = "InQueue" if now < halfway and not timing.never_ready else "Processing"
        else:
            state = "Error" if item.outcome.errors else "Done"
        item.polls.append((now, state))
        return state, item

    def due_letters(self) -> list[Letter]:
        now = self.now()
        due = [letter for at, letter in self.outgoing if at <= now]
        self.outgoing = [(at, letter) for at, letter in self.outgoing if at > now]
        return due

    def _op_RequestApplications(
        self, organizationInn: str, periodFrom: date, periodTo: date
    ) -> tuple[Outcome, list[Letter]]:
        found = [
            _application_dict(a)
            for a in self.applications.values()
            if any(p.inn == organizationInn for p in a.parties)
            and periodFrom <= a.registered_at.date() <= periodTo
        ]
        return Outcome(applications=found), []

    def _op_RequestApplicationData(
        self, organizationInn: str, applicationNumber: str
    ) -> tuple[Outcome, list[Letter]]:
        application, error = self._party_application(organizationInn, applicationNumber)
        if error:
            return Outcome(errors=[error]), []
        assert application is not None
        return Outcome(application=_application_dict(application)), []

    def _op_ConfirmOwnershipChange(
        self,
        organizationInn: str,
        applicationNumber: str,
        partyStatus: str,
        confirmationCode: str | None = None,
    ) -> tuple[Outcome, list[Letter]]:
        return self._confirm(
            organizationInn, applicationNumber, "OwnershipChange", "NewOwner", partyStatus, confirmationCode
        )

    def _op_ConfirmLeaseApplication(
        self,
        organizationInn: str,
        applicationNumber: str,
        lesseeStatus: str,
        confirmationCode: str | None = None,
    ) -> tuple[Outcome, list[Letter]]:
        return self._confirm(
            organizationInn, applicationNumber, "Lease", "Lessee", lesseeStatus, confirmationCode
        )

    def _op_SubmitLeaseApplication(
        self,
        lessorInn: str,
        lesseeInn: str,
        leaseDocument: dict[str, Any],
        vehicles: list[str],
        lessorStatus: str,
        lesseeStatus: str,
        confirmBy: date,
        notificationEmail: str,
    ) -> tuple[Outcome, list[Letter]]:
        found: list[Vehicle] = []
        for epts in vehicles:
            vehicle = self.vehicles.get(epts)
            if vehicle is None:
                return Outcome(errors=[("VehicleNotFound", f"no vehicle with ЭПТС {epts}")]), []
            if vehicle.owner_inn != lessorInn:
                return Outcome(
                    errors=[("VehicleNotOwned", f"ЭПТС {epts} is not owned by ИНН {lessorInn}")]
                ), []
            if vehicle.leased_to:
                return Outcome(errors=[("VehicleLeased", f"ЭПТС {epts} is already in lease")]), []
            found.append(vehicle)
        now = self.now()
        if confirmBy < now.date():
            return Outcome(errors=[("ConfirmByInPast", f"confirmBy {confirmBy} has passed")]), []
        application = Application(
            number=self._next_application_number(now),
            kind="Lease",
            status=AWAITING,
            registered_at=now,
            confirm_by=confirmBy,
            vehicles=found,
            parties=[
                Party("Lessor", lessorInn, found[0].owner_name, lessorStatus),
                Party("Lessee", lesseeInn, "", lesseeStatus),
            ],
            code=_code(),
            notify_email=notificationEmail,
            lease_document=leaseDocument,
        )
        self.applications[application.number] = application
        letter = (
            notificationEmail,
            f"СЭП: заявление № {application.number} на внесение сведений о лизинге",
            _letter_body(application, with_code=True),
        )
        return Outcome(application=_application_dict(application)), [letter]

    # --- rules ----------------------------------------------------------------------------------------
    def _party_application(self, inn: str, number: str) -> tuple[Application | None, tuple[str, str] | None]:
        application = self.applications.get(number)
        if application is None:
            return None, ("ApplicationNotFound", f"no application № {number}")
        if not any(p.inn == inn for p in application.parties):
            return None, ("NotAParty", f"ИНН {inn} is not a party to application № {number}")
        return application, None

    def _confirm(
        self, inn: str, number: str, kind: str, role: str, status: str, code: str | None
    ) -> tuple[Outcome, list[Letter]]:
        application, error = self._party_application(inn, number)
        if error:
            return Outcome(errors=[error]), []
        assert application is not None
        if application.kind != kind:
            return Outcome(
                errors=[("WrongApplicationKind", f"application № {number} is a {application.kind}")]
            ), []
        party = application.party(role)
        assert party is not None
        if party.status == status and status != "NotApplicable":
            return Outcome(application=_application_dict(application)), []  # already so: a repeat
        if application.status != AWAITING:
            return Outcome(
                errors=[("ApplicationClosed", f"application № {number} is «{application.status}»")]
            ), []
        if self.now().date() > application.confirm_by:
            application.status = EXPIRED
            return Outcome(
                errors=[
                    (
                        "ConfirmationCodeExpired",
                        f"the code had to be used by {application.confirm_by:%d.%m.%Y}",
                    )
                ]
            ), []
        if status == "Confirmed" and code != application.code:
            return Outcome(errors=[("WrongConfirmationCode", "the confirmation code does not match")]), []
        party.status = status
        letters: list[Letter] = []
        if status == "Rejected":
            application.status = REJECTED
        elif status == "Confirmed" and all(p.status == "Confirmed" for p in application.parties):
            application.status = EXECUTED
            for vehicle in application.vehicles:
                if kind == "OwnershipChange":
                    vehicle.owner_inn, vehicle.owner_name = party.inn, party.name
                else:
                    vehicle.leased_to = party.inn
            if kind == "Lease" and application.notify_email:
                letters.append(
                    (
                        application.notify_email,
                        f"СЭП: сведения о лизинге внесены, заявление № {application.number}",
                        _letter_body(application, with_code=False),
                    )
                )
        return Outcome(application=_application_dict(application)), letters

    def _next_application_number(self, now: datetime) -> str:
        self._application_seq += 1
        return f"{now:%Y}-{self._application_seq:06d}"


def _code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def mask_vin(vin: str) -> str:
    return vin[:3] + "*" * (len(vin) - 9) + vin[-6:]


def _letter_body(application: Application, *, with_code: bool, vin: str | None = "full") -> str:
    vehicle = application.vehicles[0]
    lines = [f"Номер заявления: {application.number}", f"Номер ЭПТС: {vehicle.epts}"]
    if vehicle.vin and vin is not None:
        lines.append(f"VIN: {vehicle.vin if vin == 'full' else mask_vin(vehicle.vin)}")
    if with_code:
        lines += [
            f"Код подтверждения: {application.code}",
            f"Подтвердить до: {application.confirm_by:%d.%m.%Y}",
        ]
    return "\n".join(lines) + "\n"


def ownership_letter(application: Application, vin: str | None = "full") -> Letter:
    """The letter a new owner gets when a dealer starts an ownership change (``vin``: full, masked, None)."""
    assert application.notify_email is not None
    return (
        application.notify_email,
        f"СЭП: заявление № {application.number} на смену собственника",
        _letter_body(application, with_code=True, vin=vin),
    )


def _application_dict(application: Application) -> dict[str, Any]:
    return {
        "applicationNumber": application.number,
        "kind": application.kind,
        "status": application.status,
        "registeredAt": application.registered_at,
        "confirmBy": application.confirm_by,
        "vehicles": [{"epts": v.epts, "vin": v.vin} for v in application.vehicles],
        "parties": [
            {"role": p.role, "inn": p.inn, "name": p.name, "status": p.status} for p in application.parties
        ],
        "leaseDocument": application.lease_document,
    }

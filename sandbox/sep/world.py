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
    # A lease change: each confirming party's own code (role -> code).
    codes: dict[str, str] = field(default_factory=dict)

    def party(self, role: str) -> Party | None:
        return next((p for p in self.parties if p.role == role), None)


@dataclass
class Outcome:
    """What a queue number answers once ready: an application, a list, or errors."""

    application: dict[str, Any] | None = None
    applications: list[dict[str, Any]] | None = None
    counterparty: dict[str, Any] | None = None
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
        # SEP's directory of counterparties, by ИНН.
        self.counterparties: dict[str, dict[str, Any]] = {}
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

    def add_counterparty(self, data: dict[str, Any]) -> dict[str, Any]:
        """A counterparty someone registered in SEP's web service by hand."""
        found = {"sepId": f"CP-{len(self.counterparties) + 1:06d}", "kpp": None, "email": None, **data}
        self.counterparties[found["inn"]] = found
        return found

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

    def _op_FindCounterparty(self, organizationInn: str, inn: str) -> tuple[Outcome, list[Letter]]:
        found = self.counterparties.get(inn)
        if found is None:
            return Outcome(errors=[("CounterpartyNotFound", f"no counterparty with ИНН {inn}")]), []
        return Outcome(counterparty=found), []

    def _op_RegisterCounterparty(
        self, organizationInn: str, counterparty: dict[str, Any]
    ) -> tuple[Outcome, list[Letter]]:
        problem = _counterparty_problem(counterparty)
        if problem:
            return Outcome(errors=[("InvalidCounterparty", problem)]), []
        known = self.counterparties.get(counterparty["inn"])
        if known is not None:  # registered meanwhile (by hand): SEP answers the one it has
            return Outcome(counterparty=known), []
        return Outcome(counterparty=self.add_counterparty(counterparty)), []

    def _op_SubmitLeaseChange(
        self,
        lessorInn: str,
        kind: str,
        lesseeInn: str,
        newLesseeInn: str | None,
        changeDocument: dict[str, Any],
        vehicles: list[str],
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
            if vehicle.leased_to is None:
                return Outcome(errors=[("VehicleNotLeased", f"ЭПТС {epts} is not in lease")]), []
            if vehicle.leased_to != lesseeInn:
                return Outcome(
                    errors=[
                        (
                            "DifferentLessees",
                            f"ЭПТС {epts} is leased to ИНН {vehicle.leased_to}, not to ИНН {lesseeInn}",
                        )
                    ]
                ), []
            found.append(vehicle)
        parties = [
            Party("Lessor", lessorInn, found[0].owner_name, "Confirmed"),
            Party("Lessee", lesseeInn, "", "NotApplicable"),
        ]
        if kind == "LesseeChange":
            if not newLesseeInn:
                return Outcome(errors=[("NewLesseeMissing", "a change of lessee needs newLesseeInn")]), []
            if newLesseeInn not in self.counterparties:
                return Outcome(
                    errors=[("CounterpartyNotFound", f"the new lessee ИНН {newLesseeInn} is not in SEP")]
                ), []
            new = self.counterparties[newLesseeInn]
            parties.append(Party("NewLessee", newLesseeInn, new["name"], "NotApplicable"))
        now = self.now()
        if confirmBy < now.date():
            return Outcome(errors=[("ConfirmByInPast", f"confirmBy {confirmBy} has passed")]), []
        application = Application(
            number=self._next_application_number(now),
            kind=CHANGE_KINDS[kind],
            status=AWAITING,
            registered_at=now,
            confirm_by=confirmBy,
            vehicles=found,
            parties=parties,
            code="",
            notify_email=notificationEmail,
            codes={p.role: _code() for p in parties if p.status == "NotApplicable"},
        )
        self.applications[application.number] = application
        letters = [
            (
                notificationEmail,
                f"СЭП: заявление № {application.number} {CHANGE_SUBJECTS[kind]}",
                _letter_body(application, with_code=False)
                + f"Сторона: {role}\nКод подтверждения: {code}\nПодтвердить до: {confirmBy:%d.%m.%Y}\n",
            )
            for role, code in application.codes.items()
        ]
        return Outcome(application=_application_dict(application)), letters

    def _op_ConfirmLeaseChange(
        self, organizationInn: str, applicationNumber: str, confirmations: list[dict[str, Any]]
    ) -> tuple[Outcome, list[Letter]]:
        application, error = self._party_application(organizationInn, applicationNumber)
        if error:
            return Outcome(errors=[error]), []
        assert application is not None
        if application.kind not in CHANGE_KINDS.values():
            return Outcome(
                errors=[
                    ("WrongApplicationKind", f"application № {applicationNumber} is a {application.kind}")
                ]
            ), []
        if all(
            (party := application.party(c["role"])) is not None and party.status == c["status"]
            for c in confirmations
        ):
            return Outcome(application=_application_dict(application)), []  # already so: a repeat
        if application.status != AWAITING:
            return Outcome(
                errors=[("ApplicationClosed", f"application № {applicationNumber} is «{application.status}»")]
            ), []
        if self.now().date() > application.confirm_by:
            application.status = EXPIRED
            return Outcome(
                errors=[
                    (
                        "ConfirmationCodeExpired",
                        f"the codes had to be used by {application.confirm_by:%d.%m.%Y}",
                    )
                ]
            ), []
        for c in confirmations:  # every one is checked before any is taken
            if c["role"] not in application.codes:
                return Outcome(
                    errors=[("NotAParty", f"{c['role']} does not confirm application № {applicationNumber}")]
                ), []
            if c["status"] == "Confirmed" and c.get("confirmationCode") != application.codes[c["role"]]:
                return Outcome(
                    errors=[("WrongConfirmationCode", f"the code of the {c['role']} does not match")]
                ), []
        for c in confirmations:
            party = application.party(c["role"])
            assert party is not None
            party.status = c["status"]
        if any(p.status == "Rejected" for p in application.parties):
            application.status = REJECTED
        elif all(p.status == "Confirmed" for p in application.parties):
            application.status = EXECUTED
            lessee, new = application.party("Lessee"), application.party("NewLessee")
            for vehicle in application.vehicles:
                if application.kind == "LeaseTermination":
                    vehicle.leased_to = None
                elif application.kind == "LesseeChange" and new is not None:
                    vehicle.leased_to = new.inn
                elif lessee is not None:  # LeaseEnd: the client owns it now
                    vehicle.owner_inn, vehicle.owner_name, vehicle.leased_to = lessee.inn, lessee.name, None
        return Outcome(application=_application_dict(application)), []

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


CHANGE_KINDS = {"Termination": "LeaseTermination", "LesseeChange": "LesseeChange", "LeaseEnd": "LeaseEnd"}
CHANGE_SUBJECTS = {
    "Termination": "о прекращении лизинга",
    "LesseeChange": "о смене лизингополучателя",
    "LeaseEnd": "об окончании срока лизинга",
}


def _counterparty_problem(c: dict[str, Any]) -> str | None:
    """SEP's own checks of a counterparty form (what its web service would not save)."""
    inn, kpp, ogrn = c.get("inn") or "", c.get("kpp") or "", c.get("ogrn") or ""
    if not inn.isdigit() or len(inn) not in (10, 12):
        return f"ИНН {inn!r} must be 10 or 12 digits"
    if len(inn) == 10 and not (kpp.isdigit() and len(kpp) == 9):
        return f"an organisation (ИНН {inn}) needs a КПП of 9 digits, not {kpp!r}"
    if not ogrn.isdigit() or len(ogrn) != (13 if len(inn) == 10 else 15):
        return f"ОГРН {ogrn!r} must be {13 if len(inn) == 10 else 15} digits for ИНН {inn}"
    for name in ("name", "address"):
        if not (c.get(name) or "").strip():
            return f"{name} is required"
    return None


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

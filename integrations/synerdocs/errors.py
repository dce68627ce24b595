"""How a Synerdocs call failed, typed for the step that decides retry, park or "look before resending".

Every error says what is known about the request reaching the operator (``delivery``), which
decides how a ``SendMessage`` may be repeated: ``not_sent`` (it never left), ``refused`` (the
operator answered with a fault and did nothing), ``maybe`` (it left, and the answer was lost,
late, cut or unreadable: look for the message by its ``CustomField`` before sending again).
"""

from __future__ import annotations

from typing import Literal

from integrations import errors
from integrations.errors import IntegrationError, PermanentError, TransientError

Delivery = Literal["not_sent", "refused", "maybe"]


class SynerdocsError(IntegrationError):
    delivery: Delivery = "maybe"

    def __init__(self, operation: str, detail: str, *, delivery: Delivery | None = None) -> None:
        super().__init__(f"Synerdocs {operation}: {detail}")
        self.operation = operation
        self.detail = detail
        if delivery is not None:
            self.delivery = delivery


class InvalidRequest(SynerdocsError, PermanentError):
    """Refused before sending: the arguments break the contract's rules (the detail names the field)."""

    delivery: Delivery = "not_sent"


class Unreachable(SynerdocsError, TransientError):
    """No connection: the request never left."""

    delivery: Delivery = "not_sent"


class NoAnswer(SynerdocsError, TransientError):
    """The request left; no complete answer came within the deadline, or the connection broke."""


class DeadlinePassed(NoAnswer, errors.DeadlinePassed):
    """The request left; the deadline passed before the whole answer came (slow or dripping answer)."""


class HttpStatusError(SynerdocsError):
    """An HTTP error that is no SOAP fault (a proxy's page, a 404)."""

    def __init__(self, operation: str, status: int, snippet: str, *, delivery: Delivery) -> None:
        super().__init__(operation, f"HTTP {status}: {snippet}", delivery=delivery)
        self.status = status


class TransientHttpError(HttpStatusError, TransientError):
    pass


class PermanentHttpError(HttpStatusError, PermanentError):
    pass


class UnsafeAnswer(SynerdocsError, PermanentError):
    """An answer refused before it is read: a DTD or entity, over the size cap, a compression bomb."""


class MalformedAnswer(SynerdocsError, TransientError):
    """An answer that is not a SOAP envelope (empty, cut short, not XML): worth asking again."""


class ContractViolation(SynerdocsError, PermanentError):
    """An answer that parsed but says what the contract does not allow (an unknown enum name, …)."""


class ServiceFault(SynerdocsError):
    """A ``ServiceErrorFaultContract`` fault: the operator refused the request and did nothing."""

    delivery: Delivery = "refused"

    def __init__(self, operation: str, code: str, message: str, field: str | None = None) -> None:
        where = f" (field {field})" if field else ""
        super().__init__(operation, f"{code}{where}: {message}")
        self.code = code
        self.message = message
        self.field = field


class TransientFault(ServiceFault, TransientError):
    """The operator's own trouble (``UnexpectedError``, ``SqlException`` …): ask again later."""


class PermanentFault(ServiceFault, PermanentError):
    """The request is wrong as it stands: park it with the operator's reason."""


class Unauthorized(PermanentFault):
    """The token expired or the login is wrong (the client re-authenticates once on its own)."""


class SignIsNotValid(PermanentFault):
    pass


class ContragentIsNotAuthorized(PermanentFault):
    pass


class DocumentNotFound(PermanentFault):
    pass


class SubscriberRejected(SynerdocsError, PermanentError):
    """``CreateNonActiveSubscriber`` answered ``Error`` with the operator's validation messages."""

    delivery: Delivery = "refused"

    def __init__(self, operation: str, messages: list[str]) -> None:
        super().__init__(operation, "; ".join(messages) or "registration refused without a reason")
        self.messages = messages


NAMED_FAULTS: dict[str, type[PermanentFault]] = {
    cls.__name__: cls for cls in (Unauthorized, SignIsNotValid, ContragentIsNotAuthorized, DocumentNotFound)
}
# Codes of ServiceErrorCode that are the operator's trouble, not the request's.
TRANSIENT_CODES = frozenset({"UnexpectedError", "SqlException", "CertificateRevocationStatusUnavailable"})


def fault_error(operation: str, code: str, message: str, field: str | None) -> ServiceFault:
    if code in TRANSIENT_CODES:
        return TransientFault(operation, code, message, field)
    return NAMED_FAULTS.get(code, PermanentFault)(operation, code, message, field)

"""The SEP client: zeep over the pinned WSDL, with every answer mapped to a typed outcome.

zeep builds and reads the envelopes; the HTTP is :mod:`integrations.bounded_http`, so that one
deadline covers connect, headers and body (``operation_timeout_s``), a size cap holds, and we know
whether a failed request had left (``delivery``). Every answer passes :mod:`integrations.xmlsafe`
(no DTD, no entity, no network) before zeep reads it. Each request is reported to the ``recorder``
as a :class:`SepExchange`, success or not; a failure's ``error`` starts with its type's name.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import zeep
from lxml import etree
from zeep import exceptions as zx

from integrations.bounded_http import (
    AnswerTooLarge,
    AnswerUnreadable,
    BoundedClient,
    NoAnswer,
    NotSent,
    typed,
)
from integrations.errors import DeadlinePassed
from integrations.exchange import Recorder, discard
from integrations.sep.messages import (
    Application,
    ApplicationKind,
    Counterparty,
    LeaseDocument,
    Party,
    PartyRole,
    PartyStatus,
    QueueResult,
    QueueState,
    SepError,
    SepRequestArgs,
    Ticket,
    Vehicle,
)
from integrations.sep.outcomes import (
    Outcome,
    QueueNumberReceived,
    RequestError,
    ResponseReceived,
    SepExchange,
    XmlReadError,
)
from integrations.xmlsafe import XmlMalformed, XmlRefused, parse_untrusted

WSDL = Path(__file__).with_name("sep.wsdl")
BINDING = "{urn:obmen:sep:v1}SepExchangeBinding"
SYSTEM = "sep"


@dataclass(frozen=True)
class SepClientConfig:
    url: str
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    operation_timeout_s: float = 60.0
    max_response_bytes: int = 5_000_000


@dataclass
class _Reply:
    """What zeep needs of an HTTP response."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    encoding: str | None


class _Transport(zeep.Transport):
    """zeep's transport over the bounded HTTP client, with every answer passed through the XML gate."""

    def __init__(self, config: SepClientConfig) -> None:
        super().__init__(timeout=config.connect_timeout_s, operation_timeout=config.read_timeout_s)
        self.config = config
        self.http = BoundedClient(
            deadline_s=config.operation_timeout_s,
            max_bytes=config.max_response_bytes,
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
        )
        self.local = threading.local()

    def load(self, url: str) -> bytes:
        # Only the pinned WSDL is ever loaded; nothing it names is fetched.
        if Path(url).resolve() != WSDL.resolve():
            raise zx.ExternalReferenceForbidden(url)
        return WSDL.read_bytes()

    def post(self, address: str, message: bytes, headers: dict[str, str]) -> _Reply:
        exchange: SepExchange = self.local.exchange
        request = self.http.build_request("POST", address, content=message, headers=headers)
        answer = self.http.exchange(request, exchange)
        try:
            parse_untrusted(answer.content, max_bytes=self.config.max_response_bytes)
        except XmlMalformed:
            # Not XML (an error page, an empty or cut answer): the status decides, as zeep would.
            raise zx.TransportError(status_code=answer.status_code, content=answer.content) from None
        return _Reply(answer.status_code, answer.headers, answer.content, "utf-8")


class SepClient:
    """One client per process; safe to use from several threads."""

    def __init__(self, config: SepClientConfig, recorder: Recorder = discard) -> None:
        self.config = config
        self.recorder = recorder
        self._transport = _Transport(config)
        settings = zeep.Settings(
            strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
        )
        client = zeep.Client(str(WSDL), transport=self._transport, settings=settings)
        # The pinned WSDL says where SEP was when it was pinned; the configured URL wins.
        self._service = client.create_service(BINDING, config.url)

    def close(self) -> None:
        self._transport.http.close()

    # --- operations -------------------------------------------------------------------------------------
    def submit(
        self,
        request: SepRequestArgs,
        message_id: str,
        *,
        request_id: int | None = None,
        business_key: str | None = None,
    ) -> Outcome:
        """Send one request operation; ``message_id`` makes a repeat return the original queue number."""
        operation = request.OPERATION
        exchange = self._exchange(operation, request_id, business_key, message_id=message_id)
        exchange.application_number = getattr(request, "application_number", None)
        outcome = self._call(exchange, operation, {"messageId": message_id, **request.wire()}, _ticket)
        if isinstance(outcome, QueueNumberReceived):
            exchange.queue_number = outcome.ticket.queue_number
            exchange.correlation_id = outcome.ticket.queue_number
        self._record(exchange, outcome)
        return outcome

    def get_queue_result(
        self,
        queue_number: str,
        *,
        request_id: int | None = None,
        business_key: str | None = None,
        application_number: str | None = None,
    ) -> Outcome:
        exchange = self._exchange("GetQueueResult", request_id, business_key, queue_number=queue_number)
        exchange.application_number = application_number
        outcome = self._call(exchange, "GetQueueResult", {"queueNumber": queue_number}, _queue_result)
        if isinstance(outcome, ResponseReceived):
            exchange.sep_state = outcome.result.state.value
            exchange.failures += [("sep", e.code, e.message) for e in outcome.result.errors]
        self._record(exchange, outcome)
        return outcome

    # --- the machinery ---------------------------------------------------------------------------------------
    def _exchange(
        self,
        operation: str,
        request_id: int | None,
        business_key: str | None,
        *,
        message_id: str | None = None,
        queue_number: str | None = None,
    ) -> SepExchange:
        return SepExchange(
            system=SYSTEM,
            operation=operation,
            correlation_id=queue_number or message_id,
            business_key=business_key,
            message_id=message_id,
            queue_number=queue_number,
            request_id=request_id,
        )

    def _call(self, exchange: SepExchange, operation: str, kwargs: dict[str, Any], read: Any) -> Outcome:
        self._transport.local.exchange = exchange
        started = time.perf_counter()
        try:
            answer = getattr(self._service, operation)(**kwargs)
            return read(answer)
        except NotSent as exc:
            return RequestError(typed(exc), retryable=True, delivery="not_sent")
        except (NoAnswer, DeadlinePassed) as exc:
            return RequestError(typed(exc), retryable=True, delivery="maybe")
        except (AnswerTooLarge, AnswerUnreadable, XmlRefused) as exc:
            return XmlReadError(typed(exc), retryable=False)
        except zx.Fault as fault:
            return _fault_outcome(fault, exchange.response_status)
        except (zx.DTDForbidden, zx.EntitiesForbidden, zx.ExternalReferenceForbidden) as exc:
            return XmlReadError(f"refused to read the answer: {type(exc).__name__}: {exc}", retryable=False)
        except zx.TransportError as exc:
            return _transport_outcome(exc)
        except (zx.XMLSyntaxError, zx.XMLParseError, etree.XMLSyntaxError) as exc:
            return XmlReadError(f"{type(exc).__name__}: {exc}", retryable=True)
        except _SchemaMismatch as exc:
            return XmlReadError(str(exc), retryable=False)
        except (ValueError, TypeError, AttributeError, zx.ValidationError, zx.LookupError) as exc:
            # A value zeep or we cannot read as the contract types it (a date that is none, a member
            # where a list was): the answer is SEP's, not our bug, and asking again reads the same.
            return XmlReadError(
                f"the answer does not read as the contract says: {typed(exc)}", retryable=False
            )
        finally:
            exchange.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            self._transport.local.exchange = None

    def _record(self, exchange: SepExchange, outcome: Outcome) -> None:
        exchange.request_status = outcome.request_status.value
        if isinstance(outcome, XmlReadError | RequestError):
            exchange.error = outcome.detail
            kind = "xml" if isinstance(outcome, XmlReadError) else _error_kind(outcome)
            code = outcome.fault_code if isinstance(outcome, RequestError) else None
            exchange.failures.append((kind, code, outcome.detail))
        self.recorder(exchange)


class _SchemaMismatch(Exception):
    """The answer parsed but does not say what the contract says it may (an unknown enum value...)."""


def _error_kind(outcome: RequestError) -> str:
    if outcome.fault_code is not None:
        return "soap_fault"
    return "http" if outcome.http_status is not None else "transport"


def _fault_outcome(fault: zx.Fault, http_status: int | None) -> Outcome:
    code = (fault.code or "").rsplit(":", 1)[-1]
    sep_code, message = None, fault.message or "SOAP Fault"
    detail = fault.detail
    if detail is not None and len(detail):
        found = detail.find("{urn:obmen:sep:v1}FaultDetail")
        if found is not None:
            sep_code = found.findtext("{urn:obmen:sep:v1}code")
            message = found.findtext("{urn:obmen:sep:v1}message") or message
    if code == "Client":
        return RequestError(
            f"SEP refused the request: {sep_code or 'Client'}: {message}",
            retryable=False,
            delivery="refused",
            http_status=http_status,
            fault_code=sep_code or "Client",
        )
    if code == "Server":
        return RequestError(
            f"SEP failed: {sep_code or 'Server'}: {message}",
            retryable=True,
            delivery="refused",
            http_status=http_status,
            fault_code=sep_code or "Server",
        )
    # An XML error page that is no SOAP Fault of SEP's (a proxy's): nothing is known.
    return RequestError(
        f"HTTP {http_status} with an XML body that is no SOAP Fault",
        retryable=True,
        delivery="maybe",
        http_status=http_status,
    )


def _transport_outcome(exc: zx.TransportError) -> Outcome:
    status = exc.status_code
    if status == 200:
        what = "an empty answer" if not exc.content else "an answer that is not XML (cut short?)"
        return XmlReadError(f"HTTP 200 with {what}", retryable=True)
    snippet = (exc.content or b"")[:200].decode("utf-8", errors="replace")
    if status and 400 <= status < 500:
        return RequestError(
            f"HTTP {status}: {snippet}",
            retryable=status in (408, 429),
            delivery="refused",
            http_status=status,
        )
    return RequestError(f"HTTP {status}: {snippet}", retryable=True, delivery="maybe", http_status=status)


# --- reading zeep's objects into ours ----------------------------------------------------------------
def _enum(cls: Any, value: Any, what: str) -> Any:
    try:
        return cls(value)
    except ValueError as exc:
        raise _SchemaMismatch(
            f"unknown {what} {value!r} in the answer (the contract knows {[m.value for m in cls]})"
        ) from exc


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise _SchemaMismatch(f"a timestamp without a time zone in the answer: {value.isoformat()}")
    return value


def _ticket(answer: Any) -> Outcome:
    if answer is None or not answer.queueNumber:
        raise _SchemaMismatch("the answer carries no queue number")
    return QueueNumberReceived(Ticket(str(answer.queueNumber), _aware(answer.acceptedAt)))


def _application(a: Any) -> Application:
    document = a.leaseDocument
    return Application(
        number=str(a.applicationNumber),
        kind=_enum(ApplicationKind, a.kind, "application kind"),
        status=str(a.status),
        registered_at=_aware(a.registeredAt),
        confirm_by=a.confirmBy if isinstance(a.confirmBy, date) else None,
        vehicles=tuple(Vehicle(str(v.epts), v.vin) for v in a.vehicles.vehicle),
        parties=tuple(
            Party(
                _enum(PartyRole, p.role, "party role"),
                str(p.inn),
                p.name,
                _enum(PartyStatus, p.status, "party status"),
            )
            for p in a.parties.party
        ),
        lease_document=LeaseDocument(
            document.documentName, document.documentNumber, document.documentDate, document.leaseTermEnd
        )
        if document is not None
        else None,
    )


def _counterparty(c: Any) -> Counterparty:
    return Counterparty(
        sep_id=c.sepId,
        inn=str(c.inn),
        kpp=c.kpp,
        ogrn=str(c.ogrn),
        name=c.name,
        address=c.address,
        email=c.email,
    )


def _queue_result(answer: Any) -> Outcome:
    applications = None
    if answer.applications is not None:
        applications = tuple(_application(a) for a in answer.applications.application or [])
    errors = tuple(
        SepError(str(e.code), str(e.message)) for e in (answer.errors.error if answer.errors else [])
    )
    return ResponseReceived(
        QueueResult(
            queue_number=str(answer.queueNumber),
            state=_enum(QueueState, answer.state, "queue state"),
            server_time=_aware(answer.serverTime),
            not_before=_aware(answer.notBefore) if answer.notBefore is not None else None,
            completed_at=_aware(answer.completedAt) if answer.completedAt is not None else None,
            application=_application(answer.application) if answer.application is not None else None,
            applications=applications,
            counterparty=_counterparty(answer.counterparty) if answer.counterparty is not None else None,
            errors=errors,
        )
    )

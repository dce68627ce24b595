"""Every answer of SEP, mapped to one of four typed outcomes (the seed's «Статус запроса»).

* :class:`QueueNumberReceived` — a request was accepted (Получен номер очереди);
* :class:`ResponseReceived` — ``GetQueueResult`` answered, whatever its state (Получен ответ);
* :class:`XmlReadError` — an answer came but could not be read safely (Ошибка чтения XML);
* :class:`RequestError` — no usable answer, or SEP refused the request (Ошибка запроса).

``delivery`` says what is known about the request reaching SEP, which decides how a submission may
be repeated: ``not_sent`` (it never left), ``refused`` (SEP answered with a fault and queued
nothing), ``maybe`` (it left, and then the answer was lost, cut or unreadable).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from integrations.exchange import Exchange
from integrations.sep.messages import QueueResult, Ticket

Delivery = Literal["not_sent", "refused", "maybe"]


class RequestStatus(enum.StrEnum):
    XML_READ_ERROR = "Ошибка чтения XML"
    REQUEST_ERROR = "Ошибка запроса"
    QUEUE_NUMBER_RECEIVED = "Получен номер очереди"
    RESPONSE_RECEIVED = "Получен ответ"


@dataclass(frozen=True)
class QueueNumberReceived:
    ticket: Ticket
    request_status: RequestStatus = RequestStatus.QUEUE_NUMBER_RECEIVED


@dataclass(frozen=True)
class ResponseReceived:
    result: QueueResult
    request_status: RequestStatus = RequestStatus.RESPONSE_RECEIVED


@dataclass(frozen=True)
class XmlReadError:
    detail: str
    retryable: bool
    delivery: Delivery = "maybe"
    request_status: RequestStatus = RequestStatus.XML_READ_ERROR


@dataclass(frozen=True)
class RequestError:
    detail: str
    retryable: bool
    delivery: Delivery
    http_status: int | None = None
    fault_code: str | None = None  # SEP's code from the fault detail
    request_status: RequestStatus = RequestStatus.REQUEST_ERROR


Outcome = QueueNumberReceived | ResponseReceived | XmlReadError | RequestError


@dataclass
class SepExchange(Exchange):
    """The exchange record, plus what the SEP registers keep about it."""

    request_status: str | None = None
    message_id: str | None = None
    queue_number: str | None = None
    sep_state: str | None = None
    request_id: int | None = None
    # kind (transport, http, soap_fault, xml, sep), code, message
    failures: list[tuple[str, str | None, str]] = field(default_factory=list)
    application_number: str | None = None

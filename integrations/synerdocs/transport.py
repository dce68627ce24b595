"""The HTTP under zeep, and the first reading of every answer.

* The HTTP is :mod:`integrations.bounded_http`: one total deadline per request, covering connect,
  the status line and headers, and the body (a server that trickles its headers or body byte by
  byte cannot hold a worker), and a size cap on the body as decoded (a gzip bomb stops at the cap).
* Every answer passes :mod:`integrations.xmlsafe` (a DOCTYPE is refused by the parser itself, before
  any entity is declared) and only then does zeep read the envelope.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import zeep
from zeep import exceptions as zx

from integrations import errors
from integrations.bounded_http import (
    AnswerTooLarge,
    AnswerUnreadable,
    BoundedClient,
    NotSent,
)
from integrations.bounded_http import (
    NoAnswer as NoHttpAnswer,
)
from integrations.exchange import Exchange
from integrations.synerdocs.errors import (
    DeadlinePassed,
    MalformedAnswer,
    NoAnswer,
    PermanentHttpError,
    TransientHttpError,
    Unreachable,
    UnsafeAnswer,
)
from integrations.synerdocs.wirelog import summarize_request, summarize_response
from integrations.xmlsafe import XmlMalformed, XmlRefused, parse_untrusted

WSDL = Path(__file__).with_name("ExchangeService.wsdl")
XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")


@dataclass(frozen=True)
class Limits:
    connect_timeout_s: float
    deadline_s: float
    max_answer_bytes: int


@dataclass
class Reply:
    """What zeep needs of an HTTP response."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    encoding: str | None


class Transport(zeep.Transport):
    """zeep's transport over the bounded HTTP client and the XML gate.

    The exchange being made is set per thread by the client (``current``); the transport fills in
    what went over the wire, with secrets and document bodies summarized (``wirelog``).
    """

    def __init__(self, limits: Limits) -> None:
        super().__init__(timeout=limits.connect_timeout_s, operation_timeout=limits.deadline_s)
        self.limits = limits
        self.http = BoundedClient(
            deadline_s=limits.deadline_s,
            max_bytes=limits.max_answer_bytes,
            connect_timeout_s=limits.connect_timeout_s,
        )
        self.local = threading.local()

    def load(self, url: str) -> bytes:
        # Only the pinned WSDL is ever loaded; nothing it names is fetched.
        if Path(url).resolve() != WSDL.resolve():
            raise zx.ExternalReferenceForbidden(url)
        return WSDL.read_bytes()

    def post(self, address: str, message: bytes, headers: dict[str, str]) -> Reply:
        exchange: Exchange = self.local.exchange
        operation = exchange.operation
        exchange.request_body = summarize_request(message)
        content, status, response_headers = self._send(exchange, address, message, headers)
        exchange.response_body = summarize_response(operation, content, None)
        content_type = response_headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in XML_TYPES:
            snippet = content[:200].decode("utf-8", errors="replace")
            if status == 200:
                raise MalformedAnswer(
                    operation, f"HTTP 200 with {content_type or 'no content type'}: {snippet}"
                )
            if 400 <= status < 500 and status not in (408, 429):
                raise PermanentHttpError(operation, status, snippet, delivery="refused")
            raise TransientHttpError(operation, status, snippet, delivery="maybe")
        if not content.strip():
            raise MalformedAnswer(operation, f"HTTP {status} with an empty body")
        try:
            root = parse_untrusted(content, max_bytes=self.limits.max_answer_bytes)
        except XmlRefused as exc:
            raise UnsafeAnswer(operation, str(exc)) from None
        except XmlMalformed as exc:
            raise MalformedAnswer(operation, str(exc)) from None
        exchange.response_body = summarize_response(operation, content, root)
        return Reply(status, response_headers, content, "utf-8")

    def _send(
        self, exchange: Exchange, address: str, message: bytes, headers: dict[str, str]
    ) -> tuple[bytes, int, httpx.Headers]:
        operation = exchange.operation
        request = self.http.build_request("POST", address, content=message, headers=headers)
        try:
            answer = self.http.exchange(request, exchange)
        except NotSent as exc:
            raise Unreachable(operation, str(exc)) from exc
        except errors.DeadlinePassed:
            raise DeadlinePassed(operation, f"no complete answer within {self.limits.deadline_s} s") from None
        except NoHttpAnswer as exc:
            raise NoAnswer(operation, str(exc)) from exc
        except AnswerTooLarge as exc:
            raise UnsafeAnswer(operation, str(exc)) from None
        except AnswerUnreadable as exc:
            raise UnsafeAnswer(operation, f"the answer cannot be decoded: {exc}") from None
        finally:
            # Whatever came is summarized, never kept raw (it may hold a token).
            exchange.response_body = None
        return answer.content, answer.status_code, answer.headers

    def close(self) -> None:
        self.http.close()


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)

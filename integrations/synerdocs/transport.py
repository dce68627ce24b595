"""The HTTP under zeep, and the first reading of every answer.

* One total deadline per request, covering connect, the status line and headers, and the body: a
  watchdog shuts the socket down when it passes, so a server that trickles its headers or body
  byte by byte cannot hold a worker (httpx's timeouts are per read, and each byte resets them).
* A size cap on the body as decoded: the body is read raw and inflated here, in bounded steps, so
  a gzip bomb stops at the cap instead of filling memory.
* A DOCTYPE is refused by the parser itself, before any entity is declared (a parser target whose
  ``doctype`` event raises), and only then does zeep read the envelope.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import zeep
from lxml import etree
from zeep import exceptions as zx

from integrations.exchange import Exchange, redact
from integrations.synerdocs.errors import (
    MalformedAnswer,
    NoAnswer,
    PermanentHttpError,
    TransientHttpError,
    Unreachable,
    UnsafeAnswer,
)
from integrations.synerdocs.wirelog import summarize_request, summarize_response

WSDL = Path(__file__).with_name("ExchangeService.wsdl")
XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")
CHUNK = 65_536


@dataclass(frozen=True)
class Limits:
    connect_timeout_s: float
    deadline_s: float
    max_answer_bytes: int


class _DoctypeFound(Exception):
    pass


class _Scan:
    """A parser target that builds nothing and stops at the first sign of a DTD."""

    def doctype(self, name: str | None, public_id: str | None, system_url: str | None) -> None:
        raise _DoctypeFound(name or "")

    def start(self, tag: str, attrib: Any) -> None:
        pass

    def end(self, tag: str) -> None:
        pass

    def data(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _options() -> dict[str, Any]:
    return {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}


def parse_untrusted(content: bytes) -> etree._Element:
    """The answer's root element; ``_DoctypeFound`` or ``XMLSyntaxError`` when it may not be read."""
    etree.fromstring(content, etree.XMLParser(target=_Scan(), **_options()))
    return etree.fromstring(content, etree.XMLParser(**_options()))


class _Watchdog:
    """Shuts the request's socket down at the deadline, waking whatever read or write blocks on it."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to wake
                self._socket.shutdown(socket.SHUT_RDWR)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: learn the socket as soon as the connection is made."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            with self._lock:
                self._socket = sock
                if self.fired:
                    self._shutdown()


def _inflate(chunks: Iterator[bytes], encoding: str, cap: int) -> Iterator[bytes]:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ValueError(f"an answer in Content-Encoding {encoding!r}, which was not asked for")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, told by the header
    for chunk in chunks:
        data = inflater.decompress(chunk, cap + 1)
        yield data
        while inflater.unconsumed_tail:
            yield inflater.decompress(inflater.unconsumed_tail, cap + 1)
    yield inflater.flush()


@dataclass
class Reply:
    """What zeep needs of an HTTP response."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    encoding: str | None


class Transport(zeep.Transport):
    """zeep's transport over httpx, with the deadline, the cap and the DTD refusal.

    The exchange being made is set per thread by the client (``current``); the transport fills in
    what went over the wire, with secrets and document bodies summarized (``wirelog``).
    """

    def __init__(self, limits: Limits) -> None:
        super().__init__(timeout=limits.connect_timeout_s, operation_timeout=limits.deadline_s)
        self.limits = limits
        self.http = httpx.Client(
            timeout=httpx.Timeout(
                connect=min(limits.connect_timeout_s, limits.deadline_s),
                read=limits.deadline_s,
                write=limits.deadline_s,
                pool=limits.connect_timeout_s,
            ),
            # One connection per request: the watchdog learns each socket as it is made.
            limits=httpx.Limits(max_keepalive_connections=0),
            follow_redirects=False,
            headers={"accept-encoding": "gzip, deflate"},
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
        exchange.url = address
        exchange.request_headers = redact(headers)
        exchange.request_body = summarize_request(message)
        content, response = self._send(exchange, address, message, headers)
        exchange.response_status = response.status_code
        exchange.response_body = summarize_response(operation, content, None)
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in XML_TYPES:
            snippet = content[:200].decode("utf-8", errors="replace")
            status = response.status_code
            if status == 200:
                raise MalformedAnswer(
                    operation, f"HTTP 200 with {content_type or 'no content type'}: {snippet}"
                )
            if 400 <= status < 500 and status not in (408, 429):
                raise PermanentHttpError(operation, status, snippet, delivery="refused")
            raise TransientHttpError(operation, status, snippet, delivery="maybe")
        if not content.strip():
            raise MalformedAnswer(operation, f"HTTP {response.status_code} with an empty body")
        try:
            root = parse_untrusted(content)
        except _DoctypeFound as exc:
            raise UnsafeAnswer(
                operation, f"the answer declares a DTD (<!DOCTYPE {exc}>); the operator's answers never do"
            ) from None
        except etree.XMLSyntaxError as exc:
            raise MalformedAnswer(
                operation, f"the answer is not well-formed XML (cut short?): {exc}"
            ) from None
        exchange.response_body = summarize_response(operation, content, root)
        return Reply(response.status_code, response.headers, content, "utf-8")

    def _send(
        self, exchange: Exchange, address: str, message: bytes, headers: dict[str, str]
    ) -> tuple[bytes, httpx.Response]:
        operation, limits = exchange.operation, self.limits
        cap = limits.max_answer_bytes
        with _Watchdog(limits.deadline_s) as watchdog:
            try:
                request = self.http.build_request(
                    "POST", address, content=message, headers=headers, extensions={"trace": watchdog.trace}
                )
                response = self.http.send(request, stream=True)
                try:
                    parts, size = [], 0
                    encoding = response.headers.get("content-encoding", "")
                    for part in _inflate(response.iter_raw(CHUNK), encoding, cap):
                        size += len(part)
                        if size > cap:
                            raise UnsafeAnswer(
                                operation, f"the answer is larger than {cap} bytes (as decoded)"
                            )
                        parts.append(part)
                finally:
                    response.close()
            except (
                httpx.ConnectError,
                httpx.ConnectTimeout,
                httpx.PoolTimeout,
                httpx.UnsupportedProtocol,
            ) as exc:
                raise Unreachable(operation, f"{type(exc).__name__}: {exc}") from exc
            except httpx.HTTPError as exc:
                if watchdog.fired:
                    raise NoAnswer(operation, f"no complete answer within {limits.deadline_s} s") from None
                raise NoAnswer(operation, f"{type(exc).__name__}: {exc}") from exc
            except (ValueError, zlib.error) as exc:
                raise UnsafeAnswer(operation, f"the answer cannot be decoded: {exc}") from exc
            if watchdog.fired:
                raise NoAnswer(operation, f"no complete answer within {limits.deadline_s} s")
        return b"".join(parts), response

    def close(self) -> None:
        self.http.close()


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)

"""Every outbound HTTP request of obmen: one deadline, one size cap, typed errors, one exchange record.

Every HTTP client (SEP, Synerdocs, Bitrix24, СБИС, 1C) sends through :class:`BoundedClient`; none
builds its own ``httpx.Client``.

httpx's timeouts bound each socket operation, not the request: a server that sends a byte of its
headers or body every few seconds can hold a worker for ever. Here every connect, TLS handshake,
write and read of a request gets at most what is left of the request's single deadline (an httpcore
network backend cuts each operation's timeout to it), so connect, response headers and body
together end by then. (Name resolution is the one step outside it: ``getaddrinfo`` takes no
timeout; the systems obmen talks to are named in its settings.)

The body is read raw and decompressed here in bounded steps: neither a large answer nor a gzip bomb
grows past ``max_bytes`` in memory. We ask for ``identity``; a proxy that compresses anyway may use
gzip or deflate, any other encoding is refused.

What went wrong is a typed error, and the exchange record's ``error`` starts with its name
(``DeadlinePassed: …``, ``AnswerTooLarge: …``), so the exchange log says which kind it was:

* :class:`NotSent` — no connection: the request never left (transient);
* :class:`NoAnswer` — it left and the connection broke, or a single read timed out (transient);
* :class:`DeadlinePassed` — the deadline passed before the whole answer came (transient);
* :class:`AnswerTooLarge`, :class:`AnswerUnreadable` — asking again gets the same (permanent).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from integrations.errors import DeadlinePassed, PermanentError, TransientError
from integrations.exchange import Exchange, Recorder, clip, redact, timed

_deadline: ContextVar[float | None] = ContextVar("obmen_http_deadline", default=None)


class NotSent(TransientError):
    """No connection could be made: the request never left."""


class NoAnswer(TransientError):
    """The request left; the connection broke, or one read or write timed out, before the answer was whole."""


class AnswerTooLarge(PermanentError):
    """The answer (after decompression) is larger than the cap; asking again gets the same."""


class AnswerUnreadable(PermanentError):
    """The answer uses a content encoding we do not decode."""


def typed(exc: BaseException) -> str:
    """How an exchange record names an error: its type, then what it says."""
    return f"{type(exc).__name__}: {exc}"


def _cut(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the current request's deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _cut(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _cut(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> Any:
        inner = self._inner.start_tls(ssl_context, server_hostname, _cut(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _cut(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _cut(timeout, httpcore.ConnectTimeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    def __init__(self, verify: bool | str = True) -> None:
        super().__init__(verify=verify)
        # httpx takes no network backend; the pool it built is replaced by the same pool over ours
        # (with the TLS context it made: loading the CA bundle again costs as much as the rest).
        self._pool = httpcore.ConnectionPool(
            ssl_context=self._pool._ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_DeadlineBackend(),
        )


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: httpx.Headers
    content: bytes


class BoundedClient:
    """One per process and system; safe to share between threads.

    ``deadline_s`` bounds each request from connecting to the last byte of the answer;
    ``connect_timeout_s`` and ``read_timeout_s`` (default: the deadline) bound a single connect or
    read within it.
    """

    def __init__(
        self,
        *,
        deadline_s: float,
        max_bytes: int,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        verify: bool | str = True,
    ) -> None:
        self.deadline_s = deadline_s
        self.max_bytes = max_bytes
        self.http = httpx.Client(
            transport=_DeadlineTransport(verify),
            timeout=httpx.Timeout(
                deadline_s,
                connect=min(connect_timeout_s or deadline_s, deadline_s),
                read=min(read_timeout_s or deadline_s, deadline_s),
            ),
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def build_request(self, method: str, url: str, **kwargs: Any) -> httpx.Request:
        return self.http.build_request(method, url, **kwargs)

    def send(
        self,
        request: httpx.Request,
        *,
        recorder: Recorder,
        system: str,
        operation: str,
        business_key: str | None = None,
        correlation_id: str | None = None,
        shape: Callable[[Exchange], Exchange] | None = None,
    ) -> Answer:
        """Send ``request`` and read the whole answer by the deadline, and record the exchange
        whatever happens (``shape`` may clip or mask it first). Errors as :meth:`exchange` raises them."""
        exchange = Exchange(
            system=system, operation=operation, business_key=business_key, correlation_id=correlation_id
        )
        with timed() as elapsed:
            try:
                return self.exchange(request, exchange)
            finally:
                exchange.duration_ms = elapsed()
                recorder(shape(exchange) if shape else exchange)

    def exchange(self, request: httpx.Request, exchange: Exchange) -> Answer:
        """Send ``request``, filling ``exchange`` in with what went over the wire (the request body
        only if the caller has not put its own summary there) and, on failure, the typed error.

        Raises :class:`NotSent`, :class:`NoAnswer`, :class:`DeadlinePassed`,
        :class:`AnswerTooLarge` or :class:`AnswerUnreadable`; nothing else of the network.
        """
        request.headers["Accept-Encoding"] = "identity"
        exchange.url = str(request.url)
        exchange.request_headers = redact(request.headers)
        if exchange.request_body is None:
            exchange.request_body = clip(request.content)
        deadline = time.monotonic() + self.deadline_s
        token = _deadline.set(deadline)
        try:
            return self._exchange(request, exchange)
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.UnsupportedProtocol,
        ) as exc:
            error: Exception = NotSent(f"{exchange.system} {exchange.operation}: {type(exc).__name__}: {exc}")
            exchange.error = typed(error)
            raise error from exc
        except httpx.HTTPError as exc:
            if time.monotonic() >= deadline:
                phase = "the body was still coming" if exchange.response_status else "no headers yet"
                error = DeadlinePassed(
                    f"{exchange.system} {exchange.operation}: no complete answer within "
                    f"{self.deadline_s} s ({phase})"
                )
            else:
                error = NoAnswer(f"{exchange.system} {exchange.operation}: {type(exc).__name__}: {exc}")
            exchange.error = typed(error)
            raise error from exc
        except (AnswerTooLarge, AnswerUnreadable) as exc:
            exchange.error = typed(exc)
            raise
        finally:
            _deadline.reset(token)

    def _exchange(self, request: httpx.Request, exchange: Exchange) -> Answer:
        response = self.http.send(request, stream=True)
        try:
            exchange.response_status = response.status_code
            content = self._read(response)
        finally:
            response.close()
        exchange.response_body = clip(content)
        return Answer(response.status_code, response.headers, content)

    def _read(self, response: httpx.Response) -> bytes:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        decoder = _decoder(encoding)
        body = bytearray()
        for chunk in response.iter_raw():
            pending = chunk
            while pending:
                room = self.max_bytes - len(body) + 1
                if decoder is None:
                    out, pending = pending[:room], pending[room:]
                else:
                    try:
                        out = decoder.decompress(pending, room)
                    except zlib.error as exc:
                        raise AnswerUnreadable(f"the answer's {encoding} stream is broken: {exc}") from exc
                    pending = decoder.unconsumed_tail
                    if decoder.eof:  # a gzip stream may hold several members (RFC 1952): read them all
                        pending, decoder = decoder.unused_data, _decoder(encoding)
                body += out
                if len(body) > self.max_bytes:
                    raise AnswerTooLarge(f"the answer is larger than {self.max_bytes} bytes (as decoded)")
        return bytes(body)


def _decoder(encoding: str) -> Any:
    if encoding in ("identity", ""):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise AnswerUnreadable(f"the answer is encoded as {encoding!r}; obmen asked for identity")

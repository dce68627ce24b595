"""Outbound HTTP under one deadline and one size cap, with every request reported to the recorder.

httpx's timeouts bound each socket operation, not the request: a server that sends a byte of its
headers or body every few seconds can hold a worker for ever. Here every connect, write and read of
a request gets at most what is left of the request's single deadline (an httpcore network backend
cuts each operation's timeout to it), so connect, response headers and body together end by then.

The body is read raw and decompressed here in bounded steps: neither a large answer nor a gzip bomb
grows past ``max_bytes`` in memory. We ask for ``identity``; a proxy that compresses anyway may use
gzip or deflate, any other encoding is refused.
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

from integrations.errors import PermanentError, TransientError
from integrations.exchange import Exchange, Recorder, clip, redact, timed

_deadline: ContextVar[float | None] = ContextVar("obmen_http_deadline", default=None)


class AnswerTooLarge(PermanentError):
    """The answer (after decompression) is larger than the cap; asking again gets the same."""


class AnswerUnreadable(PermanentError):
    """The answer uses a content encoding we do not decode."""


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
        # httpx takes no network backend; the pool it built is replaced by the same pool over ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
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
    """One per process and system; safe to share between threads."""

    def __init__(self, *, deadline_s: float, max_bytes: int, verify: bool | str = True) -> None:
        self.deadline_s = deadline_s
        self.max_bytes = max_bytes
        self.http = httpx.Client(
            transport=_DeadlineTransport(verify),
            timeout=httpx.Timeout(deadline_s),
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
        shape: Callable[[Exchange], Exchange] | None = None,
    ) -> Answer:
        """Send ``request`` and read the whole answer by the deadline; network failures and the
        deadline are :class:`TransientError`. ``shape`` may clip or mask the exchange before it is
        recorded (the record is made whatever happens)."""
        request.headers["Accept-Encoding"] = "identity"
        exchange = Exchange(
            system=system,
            operation=operation,
            url=str(request.url),
            request_headers=redact(request.headers),
            request_body=clip(request.content),
            business_key=business_key,
        )
        token = _deadline.set(time.monotonic() + self.deadline_s)
        try:
            with timed() as elapsed:
                try:
                    return self._exchange(request, exchange)
                except httpx.HTTPError as exc:
                    exchange.error = f"{type(exc).__name__}: {exc}"
                    raise TransientError(f"{system} {operation}: {exchange.error}") from exc
                except (AnswerTooLarge, AnswerUnreadable) as exc:
                    exchange.error = str(exc)
                    raise
                finally:
                    exchange.duration_ms = elapsed()
                    recorder(shape(exchange) if shape else exchange)
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
                    out = decoder.decompress(pending, room)
                    pending = decoder.unconsumed_tail
                body += out
                if len(body) > self.max_bytes:
                    raise AnswerTooLarge(f"the answer is larger than {self.max_bytes} bytes")
        return bytes(body)


def _decoder(encoding: str) -> Any:
    if encoding in ("identity", ""):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise AnswerUnreadable(f"the answer is encoded as {encoding!r}; obmen asked for identity")

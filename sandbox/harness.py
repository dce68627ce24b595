"""The common base of every emulator: mounting, request log, knobs, compressed time.

Each emulator is served under its own prefix (``/sep``, ``/bitrix24``, ``/sbis`` ...) and gets
control endpoints under ``/_sandbox/<system>/``: ``requests`` (the log tests read), ``knobs``
(latency, error rate), ``reset``, ``drip`` (the side port of the ``drip_headers`` answer), plus its
own scenario endpoints. Every emulator answers the hostile fault kinds of :mod:`sandbox.hostile`.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Message, Receive, Scope, Send

from sandbox import hostile


class SandboxClock:
    """Time as the emulators see it: real time, sped up by ``scale``, pushed forward by ``advance``."""

    def __init__(self, scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._real_start = time.time()
        self._start = datetime.now(UTC)
        self._offset = 0.0
        self.scale = scale

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.time() - self._real_start) * self.scale + self._offset
            return self._start + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def set_scale(self, scale: float) -> None:
        with self._lock:
            # Keep "now" continuous across a change of speed.
            now = time.time()
            self._offset += (now - self._real_start) * self.scale
            self._real_start = now
            self.scale = scale

    def seconds(self, real_seconds: float) -> float:
        """How long ``real_seconds`` of emulated time take in real time."""
        return real_seconds / self.scale if self.scale > 0 else real_seconds


@dataclass
class Knobs:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    # Emulator-specific fault kinds ("soap_fault", "html_500", "truncated" ...), picked per request
    # when ``error_rate`` fires, or forced for the next ``fault_next`` requests.
    fault: str = "html_500"
    fault_next: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key == "extra":
                self.extra.update(value)
            elif key in self.__dataclass_fields__:
                setattr(self, key, type(getattr(self, key))(value))
            else:
                raise KeyError(key)


@dataclass
class LoggedRequest:
    seq: int
    at: str
    sandbox_at: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    status: int | None = None
    fault: str | None = None


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[LoggedRequest] = []
        self._seq = 0

    def add(self, **fields: Any) -> LoggedRequest:
        with self._lock:
            self._seq += 1
            item = LoggedRequest(seq=self._seq, **fields)
            self._items.append(item)
            return item

    def since(self, seq: int = 0) -> list[LoggedRequest]:
        with self._lock:
            return [i for i in self._items if i.seq > seq]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass
class Letter:
    to: str
    raw: bytes


class Mailroom:
    """Letters the emulators send (SEP notifications, say), handed to whoever delivers them.

    The sandbox's mailbox subscribes and puts each letter where obmen reads mail (a Maildir in the
    demo, a real IMAP server in tests); the list keeps every letter for tests to read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.letters: list[Letter] = []
        self._subscribers: list[Callable[[Letter], None]] = []

    def subscribe(self, deliver: Callable[[Letter], None]) -> None:
        with self._lock:
            self._subscribers.append(deliver)

    def send(self, to: str, raw: bytes) -> None:
        letter = Letter(to, raw)
        with self._lock:
            self.letters.append(letter)
            subscribers = list(self._subscribers)
        for deliver in subscribers:
            deliver(letter)


class Emulator:
    """Subclass per external system; override ``routes`` and, where useful, the other hooks."""

    system: ClassVar[str]
    prefix: ClassVar[str]
    # What the hostile answers look like (sandbox/hostile.py): the media type of the protocol, and an
    # answer document of it with ``{value}`` where a text goes (an entity, the padding).
    content_type: ClassVar[str] = "application/json"
    hostile_document: ClassVar[bytes] = b'{"result": "{value}"}'

    def __init__(self, clock: SandboxClock, mailroom: Mailroom | None = None) -> None:
        self.clock = clock
        self.mailroom = mailroom or Mailroom()
        self.log = RequestLog()
        self.knobs = Knobs()
        self._router = Router(routes=list(self.routes()))
        self.drip = hostile.DripServer(self.drip_head, lambda: self.knobs.extra)

    # --- what subclasses provide ---------------------------------------------------------------
    def routes(self) -> Iterable[BaseRoute]:
        return []

    def control_routes(self) -> Iterable[BaseRoute]:
        """Scenario endpoints, mounted under ``/_sandbox/<system>/``."""
        return []

    def fault_response(self, kind: str, request: Request) -> Response:
        return HTMLResponse(
            f"<html><body><h1>503 Service Temporarily Unavailable</h1><p>{self.system} sandbox ({kind})</p></body></html>",
            status_code=500 if kind == "html_500" else 503,
        )

    def reset(self) -> None:
        self.log.clear()
        self.knobs = Knobs()

    def client_settings(self, base_url: str) -> dict[str, str]:
        """The ``OBMEN_*`` settings that point obmen's client at this emulator."""
        return {}

    def drip_head(self) -> bytes:
        """What the ``drip_headers`` side port trickles: an HTTP status line and headers."""
        return (
            f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\nX-Padding: ".encode()
            + b"." * 400
            + b"\r\n\r\n"
        )

    async def route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request as the emulator does when nothing goes wrong."""
        await self._router(scope, receive, send)

    def start(self, host: str) -> None:
        """Start side servers (an SMTP sink, say)."""

    def stop(self) -> None:
        pass

    # --- the machinery ---------------------------------------------------------------------------
    def _pick_fault(self) -> str | None:
        if self.knobs.fault_next > 0:
            self.knobs.fault_next -= 1
            return self.knobs.fault
        if self.knobs.error_rate and random.random() < self.knobs.error_rate:
            return self.knobs.fault
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        request = Request(scope, receive)
        body = await request.body()
        entry = self.log.add(
            at=datetime.now(UTC).isoformat(),
            sandbox_at=self.clock.now().isoformat(),
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers=dict(request.headers),
            body=body.decode("utf-8", errors="replace"),
        )
        if self.knobs.latency_ms:
            await asyncio.sleep(self.knobs.latency_ms / 1000)
        fault = self._pick_fault()

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            # Logged before it leaves: a client that reads the log after its answer sees the status.
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        if fault is not None:
            entry.fault = fault
            if fault in hostile.KINDS:
                response: Response = hostile.HostileAnswer(self, fault)
            else:
                response = self.fault_response(fault, request)
            await response(scope, replay, capture)
        else:
            await self._router(scope, replay, capture)


def _control_router(emulator: Emulator) -> Router:
    async def requests(request: Request) -> JSONResponse:
        since = int(request.query_params.get("since", 0))
        return JSONResponse([asdict(i) for i in emulator.log.since(since)])

    async def clear(request: Request) -> JSONResponse:
        emulator.log.clear()
        return JSONResponse({"cleared": True})

    async def knobs(request: Request) -> JSONResponse:
        if request.method == "PUT":
            try:
                emulator.knobs.update(await request.json())
            except (KeyError, TypeError, ValueError) as exc:
                return JSONResponse({"error": f"unknown or bad knob: {exc}"}, status_code=400)
        return JSONResponse(asdict(emulator.knobs))

    async def reset(request: Request) -> JSONResponse:
        emulator.reset()
        return JSONResponse({"reset": True})

    async def drip(request: Request) -> JSONResponse:
        host, port = emulator.drip.start(request.url.hostname or "127.0.0.1")
        return JSONResponse({"host": host, "port": port, "url": f"http://{host}:{port}{emulator.prefix}"})

    return Router(
        routes=[
            Route("/requests", requests, methods=["GET"]),
            Route("/requests", clear, methods=["DELETE"]),
            Route("/knobs", knobs, methods=["GET", "PUT"]),
            Route("/reset", reset, methods=["POST"]),
            Route("/drip", drip, methods=["GET"]),
            *emulator.control_routes(),
        ]
    )


class SandboxApp:
    """Dispatches ``<prefix>`` and ``<prefix>/...`` to each emulator, everything else to control routes.

    A plain Starlette ``Mount`` would not take the bare prefix (``/sep?wsdl``), which the protocols use.
    """

    def __init__(self, emulators: list[Emulator], control: Starlette) -> None:
        self.emulators = sorted(emulators, key=lambda e: len(e.prefix), reverse=True)
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for emulator in self.emulators:
                if path == emulator.prefix or path.startswith(emulator.prefix + "/"):
                    child = dict(scope)
                    child["root_path"] = scope.get("root_path", "") + emulator.prefix
                    if path == emulator.prefix:
                        # The bare prefix is the emulator's root ("/sep?wsdl"), not a redirect.
                        child["path"] = path + "/"
                        child["raw_path"] = child["path"].encode()
                    await emulator(child, receive, send)
                    return
        await self.control(scope, receive, send)


def build_app(emulators: list[Emulator], clock: SandboxClock) -> SandboxApp:
    async def index(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "clock": {"now": clock.now().isoformat(), "scale": clock.scale},
                "emulators": {e.system: {"prefix": e.prefix, "knobs": asdict(e.knobs)} for e in emulators},
            }
        )

    async def clock_control(request: Request) -> JSONResponse:
        body = await request.json()
        if "scale" in body:
            clock.set_scale(float(body["scale"]))
        if "advance_s" in body:
            clock.advance(float(body["advance_s"]))
        return JSONResponse({"now": clock.now().isoformat(), "scale": clock.scale})

    routes: list[BaseRoute] = [
        Route("/_sandbox", index, methods=["GET"]),
        Route("/_sandbox/clock", clock_control, methods=["POST"]),
    ]
    routes += [Mount(f"/_sandbox/{e.system}", app=_control_router(e)) for e in emulators]
    return SandboxApp(emulators, Starlette(routes=routes))

"""One access log line per request, under a request id that follows the request into its tasks.

The id is the caller's ``X-Request-ID`` when it is a safe token (1–64 of ``A–Z a–z 0–9 . _ : -``),
else a new one; it is sent back in ``X-Request-ID``, bound into structlog's context for every line
the request logs, and stamped on every outbox row the request writes (``tasks/machinery/request_id.py``),
so the workers' lines of the tasks it caused carry it too.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integrations.storable import escaped_text
from tasks.machinery.request_id import bound_request_id

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_SCOPE_KEY = "obmen.request_id"
_SAFE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_of(presented: bytes | None) -> str:
    """The caller's id when it is safe to log and echo, else a new one (the caller's is not logged)."""
    if presented is not None:
        text = presented.decode("latin-1")
        if _SAFE.fullmatch(text):
            return text
    return uuid.uuid4().hex


class AccessLog:
    """ASGI middleware: the request id, and ``gateway.request`` (method, path, status, duration_ms)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode()))
        # The 500 handler runs outside this middleware and reads the id from the scope.
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with bound_request_id(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                log.info(
                    "gateway.request",
                    method=scope["method"],
                    path=escaped_text(scope["path"], 200),
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )

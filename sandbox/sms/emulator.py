"""SMSC (smsc.ru) HTTP API emulator at ``/smsc/sys/``: ``send.php``, ``status.php``, ``balance.php``.

Parameters come as a query string or a form body, as SMSC takes them; ``fmt=3`` answers JSON, any
other format the ``ERROR = N (words)`` / ``OK`` text lines (obmen asks JSON). Its wire code is its
own: it does not import obmen's client.

What it does as SMSC does: refuses a wrong login or password (error 2), a number that is no mobile
number (7), a send when the account's money does not cover it (3: the balance runs out — each part
costs ``price``), the same send repeated within a minute and more than ``max_per_s`` sends in a
second (9); files each message under the client's ``id`` and answers ``status.php`` for it: -3 not
found, -1 waiting, 0 with the operator, then 1 delivered after ``deliver_after_s`` sandbox seconds
(20, cannot be delivered, for the numbers in ``undeliverable``).

Knobs (``extra``): ``price`` ("2.50"), ``max_per_s`` (0: no limit), ``deliver_after_s`` (0),
``undeliverable`` ([phones]), ``call_ms`` (a send holds its answer this long *after* taking the
message: the window in which a worker may die with the message sent and unanswered).

Scenario endpoints under ``/_sandbox/sms/``: ``GET messages`` (every message taken, in order, with
its id, phone, text and status), ``PUT balance`` ``{"balance": "100.00"}``, ``GET stats`` (sends,
sends in flight, refusals by error code).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.harness import Emulator, SandboxClock

LOGIN = "obmen"
PASSWORD = "sandbox-smsc-password"
START_BALANCE = Decimal("1000.00")
WORDS = {
    1: "parameters error",
    2: "authorise error",
    3: "no money",
    7: "invalid number",
    9: "duplicate request, wait a minute",
}


class SmscEmulator(Emulator):
    system = "sms"
    prefix = "/smsc"

    def __init__(self, clock: SandboxClock, mailroom: Any = None) -> None:
        super().__init__(clock, mailroom)
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.balance = START_BALANCE
        self.messages: list[dict[str, Any]] = []
        self._recent: dict[tuple[str, str, str], float] = {}
        self._second: deque[float] = deque()
        self.in_flight = 0
        self.sends = 0
        self.refusals: Counter[int] = Counter()

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._clear()

    def client_settings(self, base_url: str) -> dict[str, str]:
        return {
            "OBMEN_SMS_URL": f"{base_url}{self.prefix}/sys",
            "OBMEN_SMS_LOGIN": LOGIN,
            "OBMEN_SMS_PASSWORD": PASSWORD,
        }

    def routes(self) -> Iterable[BaseRoute]:
        return [
            Route("/sys/send.php", self._send, methods=["GET", "POST"]),
            Route("/sys/status.php", self._status, methods=["GET", "POST"]),
            Route("/sys/balance.php", self._balance, methods=["GET", "POST"]),
        ]

    def control_routes(self) -> Iterable[BaseRoute]:
        async def messages(request: Request) -> JSONResponse:
            with self._lock:
                return JSONResponse([self._view(m) for m in self.messages])

        async def balance(request: Request) -> JSONResponse:
            body = await request.json()
            try:
                value = Decimal(str(body["balance"]))
            except (KeyError, TypeError, InvalidOperation):
                return JSONResponse({"error": 'give {"balance": "100.00"}'}, status_code=400)
            with self._lock:
                self.balance = value
            return JSONResponse({"balance": str(value)})

        async def stats(request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "sends": self.sends,
                    "in_flight": self.in_flight,
                    "refusals": {str(k): v for k, v in self.refusals.items()},
                    "balance": str(self.balance),
                }
            )

        return [
            Route("/messages", messages, methods=["GET"]),
            Route("/balance", balance, methods=["PUT"]),
            Route("/stats", stats, methods=["GET"]),
        ]

    # --- the protocol -----------------------------------------------------------------------------
    async def _params(self, request: Request) -> dict[str, str]:
        params = dict(request.query_params)
        if request.method == "POST":
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    def _answer(self, params: dict[str, str], body: dict[str, Any]) -> Response:
        if params.get("fmt") == "3":
            return JSONResponse(body)
        if "error_code" in body:
            return PlainTextResponse(f"ERROR = {body['error_code']} ({body['error']})")
        return PlainTextResponse(", ".join(f"{k.upper()} - {v}" for k, v in body.items()))

    def _refuse(self, params: dict[str, str], code: int) -> Response:
        self.refusals[code] += 1
        return self._answer(params, {"error": WORDS.get(code, "error"), "error_code": code})

    def _authorised(self, params: dict[str, str]) -> bool:
        return params.get("login") == LOGIN and params.get("psw") == PASSWORD

    def _extra(self, name: str, default: Any) -> Any:
        return self.knobs.extra.get(name, default)

    async def _send(self, request: Request) -> Response:
        params = await self._params(request)
        if not self._authorised(params):
            return self._refuse(params, 2)
        phone, text, sms_id = params.get("phones", ""), params.get("mes", ""), params.get("id", "")
        if not text or not phone:
            return self._refuse(params, 1)
        if not re.fullmatch(r"\+?7\d{10}", phone):
            return self._refuse(params, 7)
        parts = _parts(text)
        with self._lock:
            now = time.monotonic()
            if self._throttled(now, (phone, text, sms_id)):
                return self._refuse(params, 9)
            cost = Decimal(str(self._extra("price", "2.50"))) * parts
            if self.balance < cost:
                return self._refuse(params, 3)
            self.balance -= cost
            self._second.append(now)
            self._recent[(phone, text, sms_id)] = now
            message_id = sms_id or str(len(self.messages) + 1)
            self.messages.append(
                {
                    "id": message_id,
                    "phone": phone.lstrip("+"),
                    "text": text,
                    "parts": parts,
                    "sent_at": self.clock.now().timestamp(),
                }
            )
            self.sends += 1
            self.in_flight += 1
        try:
            if self._extra("call_ms", 0):
                await asyncio.sleep(float(self._extra("call_ms", 0)) / 1000)
        finally:
            self.in_flight -= 1
        return self._answer(params, {"id": _number(message_id), "cnt": parts})

    def _throttled(self, now: float, request: tuple[str, str, str]) -> bool:
        """Error 9: the same send taken within a minute, or ``max_per_s`` sends taken this second."""
        self._recent = {k: t for k, t in self._recent.items() if now - t < 60}
        if request in self._recent:
            return True
        limit = int(self._extra("max_per_s", 0))
        while self._second and now - self._second[0] >= 1.0:
            self._second.popleft()
        return bool(limit) and len(self._second) >= limit

    async def _status(self, request: Request) -> Response:
        params = await self._params(request)
        if not self._authorised(params):
            return self._refuse(params, 2)
        phone, sms_id = params.get("phone", "").lstrip("+"), params.get("id", "")
        if not phone or not sms_id:
            return self._refuse(params, 1)
        with self._lock:
            found = [m for m in self.messages if m["id"] == sms_id and m["phone"] == phone]
            message = self._view(found[-1]) if found else None
        if message is None:
            return self._answer(params, {"status": -3, "last_date": "", "last_timestamp": 0, "err": 0})
        return self._answer(
            params,
            {
                "status": message["status"],
                "last_date": "",
                "last_timestamp": int(message["sent_at"]),
                "err": 0,
            },
        )

    async def _balance(self, request: Request) -> Response:
        params = await self._params(request)
        if not self._authorised(params):
            return self._refuse(params, 2)
        return self._answer(params, {"balance": f"{self.balance:.2f}", "currency": "RUR"})

    def _view(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message with its status now: with the operator until ``deliver_after_s`` has passed."""
        age = self.clock.now().timestamp() - message["sent_at"]
        if age < float(self._extra("deliver_after_s", 0)):
            status = 0
        elif message["phone"] in self._extra("undeliverable", []):
            status = 20
        else:
            status = 1
        return {**message, "status": status}


def _parts(text: str) -> int:
    """SMS parts: 70 characters of Cyrillic in one, 67 a part when longer (160/153 for Latin)."""
    single, multi = (160, 153) if text.isascii() else (70, 67)
    return 1 if len(text) <= single else -(-len(text) // multi)


def _number(value: str) -> int | str:
    return int(value) if value.isdigit() else value

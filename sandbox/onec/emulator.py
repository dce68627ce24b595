"""1C:Enterprise HTTP-service emulator: the invoice service of a car holding's infobase at
``/onec/hs/obmen/`` (publication ``/onec``, HTTP service root ``obmen``).

* ``POST /invoices`` ``{"ИдЗапроса", "Заказ", "Сумма", "ИНН"}``: the invoice for that order, amount
  and customer (made once, then found);
* ``GET /invoices/<Ид>``: the invoice as it is now;
* ``GET /changes?after=<cursor>&limit=<n>``: registered changes after the cursor, in order.

As a real 1C publication does, it asks for HTTP Basic (UTF-8) with ``WWW-Authenticate: Basic
realm="1C:Enterprise 8.3"``, holds a licence for each call and refuses calls beyond its licences
with HTTP 500 «Не обнаружено свободной лицензии!» (or, knob ``licence_answer: "sessions"``, 503 with
an HTML page «Превышено максимальное количество сеансов»), writes JSON with a UTF-8 byte-order mark,
Cyrillic keys, zone-less Moscow dates and base64 broken into 76-character lines. It does not import
obmen's client: its wire code is its own.

Knobs (``extra``): ``licences`` (4); ``call_ms`` (time a call holds its licence; the harness's
``latency_ms`` comes before the licence is taken); ``licence_answer`` (``"licence"`` |
``"sessions"``); ``bom`` (true); ``numbers`` (``"string"`` ``"1234.50"`` | ``"number"`` ``1234.5`` |
``"russian"`` ``"1 234,50"``); ``base64_lines`` (true); ``auto_pay_after_s`` / ``auto_correct_after_s``
(what happens to every new invoice, in sandbox seconds); ``corrupt`` (``"base64"``, ``"not_pdf"``,
``"broken_pdf"``, ``"big_file"``, ``"amount"``, ``"order"``, ``"renumber"`` — the same id with
another number, ``"number_taken"`` — another invoice's number) with ``corrupt_count`` answers to spoil;
``big_file_bytes``. Faults (``fault``): ``html_500`` (an Apache error page), ``licence``.

Scenario endpoints under ``/_sandbox/onec/``:

* ``GET stats``: calls, calls in flight now and at most (``max_in_flight``: every request that
  reached 1C, refused or not), licences held at most, licence refusals, 401s; ``POST stats/reset``;
* ``POST scenario`` ``{"invoice": id | "number": n, "action": "pay" | "correct" | "cancel",
  "amount": "100.00" (pay; default: the rest), "after_s": 0}``;
* ``GET invoices``: every invoice with its status, paid amount and revision.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from sandbox.harness import Emulator, SandboxClock
from sandbox.onec.books import MSK, Books, Invoice, Scheduled

LOGIN = "Сайт"
PASSWORD = "sandbox-1c-password"
REALM = "1C:Enterprise 8.3"
SERVICE = "/hs/obmen"
LICENCE_TEXT = "Не обнаружено свободной лицензии!"
SESSIONS_TEXT = "Превышено максимальное количество сеансов"
_AMOUNT = re.compile(r"\d+(?:[.,]\d{1,2})?")
_INN = re.compile(r"\d{10}|\d{12}")
_NBSP = "\u00a0"


class Refusal(Exception):
    """A 1C error answer: JSON ``{"Ошибка": ...}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OnecEmulator(Emulator):
    system = "onec"
    prefix = "/onec"

    def __init__(self, clock: SandboxClock, mailroom: Any = None) -> None:
        super().__init__(clock, mailroom)
        self._lock = threading.RLock()
        self.users = {LOGIN: PASSWORD}
        self.books = Books()
        self._reset_stats()

    def _reset_stats(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0
        self.licences_held = 0
        self.max_licences_held = 0
        self.licence_refusals = 0
        self.unauthorized = 0

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.books = Books()
            self._reset_stats()

    def client_settings(self, base_url: str) -> dict[str, str]:
        return {
            "OBMEN_ONEC_URL": base_url + self.prefix + SERVICE,
            "OBMEN_ONEC_USER": LOGIN,
            "OBMEN_ONEC_PASSWORD": PASSWORD,
        }

    def stats(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "licences_held": self.licences_held,
            "max_licences_held": self.max_licences_held,
            "licence_refusals": self.licence_refusals,
            "unauthorized": self.unauthorized,
        }

    def _extra(self, name: str, default: Any) -> Any:
        return self.knobs.extra.get(name, default)

    # --- counting what reaches 1C -----------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.in_flight -= 1

    def fault_response(self, kind: str, request: Request) -> Response:
        if kind == "licence":
            self.licence_refusals += 1
            return self._licence_refusal()
        return HTMLResponse(
            '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
            "<title>500 Internal Server Error</title>\n</head><body>\n<h1>Internal Server Error</h1>\n"
            "<p>The server encountered an internal error or misconfiguration and was unable to complete "
            "your request.</p>\n<hr>\n<address>Apache/2.4.62 (Debian) Server at onec Port 80</address>\n"
            "</body></html>\n",
            status_code=500,
        )

    def _licence_refusal(self) -> Response:
        if self._extra("licence_answer", "licence") == "sessions":
            return HTMLResponse(
                f"<html><head><title>503 Service Unavailable</title></head><body><h1>Ошибка</h1>"
                f"<p>{SESSIONS_TEXT}</p></body></html>",
                status_code=503,
            )
        return PlainTextResponse(f"{{ОбщийМодуль.ОбменССайтом}}: {LICENCE_TEXT}", status_code=500)

    # --- the wire ---------------------------------------------------------------------------------
    def routes(self) -> Iterable[BaseRoute]:
        return [
            Route(f"{SERVICE}/invoices", self._invoice_for_order, methods=["POST"]),
            Route(f"{SERVICE}/invoices/{{invoice_id}}", self._invoice, methods=["GET"]),
            Route(f"{SERVICE}/changes", self._changes, methods=["GET"]),
        ]

    async def _invoice_for_order(self, request: Request) -> Response:
        body = await request.body()
        return await self._session(request, lambda: self._answer_invoice(self._make(body)))

    async def _invoice(self, request: Request) -> Response:
        invoice_id = request.path_params["invoice_id"]

        def work() -> Response:
            invoice = self.books.find(invoice_id)
            if invoice is None:
                raise Refusal(404, f"Счет с идентификатором {invoice_id} не найден")
            return self._answer_invoice(invoice)

        return await self._session(request, work)

    async def _changes(self, request: Request) -> Response:
        query = request.query_params

        def work() -> Response:
            try:
                after = int(query.get("after") or 0)
                limit = int(query.get("limit") or 100)
            except ValueError as exc:
                raise Refusal(400, "Параметры after и limit — целые числа") from exc
            if limit < 1 or limit > 1000:
                raise Refusal(400, "Параметр limit от 1 до 1000")
            page, more = self.books.changes_after(after, limit)
            entries = [
                {
                    "Ид": inv.id,
                    "Номер": inv.number,
                    "СтатусОплаты": inv.status,
                    "СуммаОплаты": self._money(inv.paid),
                    "ВерсияДанных": inv.data_version,
                    "Изменено": self._date(inv),
                }
                for _, inv in page
            ]
            cursor = str(page[-1][0]) if page else str(after)
            return self._json({"Изменения": entries, "Курсор": cursor, "ЕстьЕще": more})

        return await self._session(request, work)

    async def _session(self, request: Request, work: Any) -> Response:
        """Authenticate, take a licence for the call (or refuse), hold it ``call_ms``, do ``work``."""
        if not self._authenticated(request.headers.get("authorization", "")):
            self.unauthorized += 1
            return PlainTextResponse(
                "Требуется аутентификация",
                status_code=401,
                headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
            )
        if self.licences_held >= int(self._extra("licences", 4)):
            self.licence_refusals += 1
            return self._licence_refusal()
        self.licences_held += 1
        self.max_licences_held = max(self.max_licences_held, self.licences_held)
        try:
            call_ms = float(self._extra("call_ms", 0))
            if call_ms:
                await asyncio.sleep(call_ms / 1000)
            with self._lock:
                self.books.materialize(self.clock.now())
                try:
                    response: Response = work()
                except Refusal as exc:
                    return self._json({"Ошибка": exc.message}, status=exc.status)
            return response
        finally:
            self.licences_held -= 1

    def _authenticated(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.users.get(user) == password

    # --- invoices -------------------------------------------------------------------------------
    def _make(self, body: bytes) -> Invoice:
        try:
            request = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refusal(400, f"Тело запроса не JSON: {exc}") from exc
        if not isinstance(request, dict):
            raise Refusal(400, "Ожидается объект JSON")
        order = str(request.get("Заказ") or "").strip()
        inn = str(request.get("ИНН") or "").strip()
        amount_text = str(request.get("Сумма") or "").strip().replace(",", ".")
        if not order:
            raise Refusal(400, "Не указан заказ (Заказ)")
        if not _INN.fullmatch(inn):
            raise Refusal(400, f"Неверный ИНН покупателя: {inn!r}")
        if not _AMOUNT.fullmatch(amount_text):
            raise Refusal(400, f"Неверная сумма: {request.get('Сумма')!r}")
        try:
            amount = Decimal(amount_text).quantize(Decimal("0.01"))
        except InvalidOperation as exc:
            raise Refusal(400, f"Неверная сумма: {amount_text!r}") from exc
        if amount <= 0:
            raise Refusal(400, "Сумма счета должна быть больше нуля")
        now = self.clock.now()
        known = len(self.books.invoices)
        invoice = self.books.invoice_for(order, amount, inn, now)
        if len(self.books.invoices) > known:
            pay = self._extra("auto_pay_after_s", None)
            correct = self._extra("auto_correct_after_s", None)
            self.books.auto(
                invoice,
                float(pay) if pay is not None else None,
                float(correct) if correct is not None else None,
            )
        return invoice

    def _answer_invoice(self, invoice: Invoice) -> Response:
        document: dict[str, Any] = {
            "Ид": invoice.id,
            "Номер": invoice.number,
            "Дата": invoice.issued_at.astimezone(MSK).strftime("%Y-%m-%dT%H:%M:%S"),
            "ИНН": invoice.inn,
            "Заказ": invoice.order,
            "Сумма": self._money(invoice.amount),
            "Назначение": invoice.purpose,
            "СтатусОплаты": invoice.status,
            "СуммаОплаты": self._money(invoice.paid),
            "ВерсияДанных": invoice.data_version,
            "ИмяФайла": f"Счет на оплату № {invoice.number}.pdf",
            "Файл": self._base64(invoice.pdf),
        }
        self._spoil(document, invoice)
        return self._json(document)

    def _spoil(self, document: dict[str, Any], invoice: Invoice) -> None:
        """The ``corrupt`` knob: break the next ``corrupt_count`` invoice answers one way."""
        kind = self._extra("corrupt", None)
        count = int(self._extra("corrupt_count", 0))
        if not kind or count <= 0:
            return
        self.knobs.extra["corrupt_count"] = count - 1
        if kind == "base64":
            document["Файл"] = "JVBERi0xLjQK%%%не base64%%%"
        elif kind == "not_pdf":
            document["Файл"] = self._base64(b"\x89PNG\r\n\x1a\n" + bytes(200))
        elif kind == "broken_pdf":
            document["Файл"] = self._base64(b"%PDF-1.4\n1 0 obj <</Type /Catalog>>\n%%EOF garbage")
        elif kind == "big_file":
            size = int(self._extra("big_file_bytes", 6 * 1024 * 1024))
            padding = b"%" + b"0" * max(0, size - len(invoice.pdf)) + b"\n"
            document["Файл"] = self._base64(invoice.pdf + padding)
        elif kind == "amount":
            document["Сумма"] = self._money(invoice.amount + 1)
        elif kind == "order":
            document["Заказ"] = invoice.order + "-другой"
        elif kind == "renumber":
            document["Номер"] = invoice.number + "/1"
        elif kind == "number_taken":
            taken = next((n for n in self.books.by_number if n != invoice.number), None)
            if taken is not None:
                document["Номер"] = taken

    # --- writing JSON as 1C does ------------------------------------------------------------------
    def _money(self, amount: Decimal) -> Any:
        style = self._extra("numbers", "string")
        if style == "number":
            return float(amount)
        if style == "russian":
            whole, _, kopecks = f"{amount:.2f}".partition(".")
            groups = f"{int(whole):,}".replace(",", _NBSP)
            return f"{groups},{kopecks}"
        return f"{amount:.2f}"

    def _date(self, invoice: Invoice) -> str:
        moment = invoice.changed_at or invoice.issued_at
        return moment.astimezone(MSK).strftime("%Y-%m-%dT%H:%M:%S")

    def _base64(self, content: bytes) -> str:
        text = base64.b64encode(content).decode("ascii")
        if not self._extra("base64_lines", True):
            return text
        return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))

    def _json(self, payload: Any, status: int = 200) -> Response:
        text = json.dumps(payload, ensure_ascii=False, indent=1)
        body = ("\ufeff" if self._extra("bom", True) else "") + text
        return Response(
            body.encode("utf-8"), status_code=status, media_type="application/json; charset=utf-8"
        )

    # --- scenario endpoints -------------------------------------------------------------------------
    def control_routes(self) -> Iterable[BaseRoute]:
        async def stats(request: Request) -> JSONResponse:
            return JSONResponse(self.stats())

        async def stats_reset(request: Request) -> JSONResponse:
            self._reset_stats()
            return JSONResponse(self.stats())

        async def scenario(request: Request) -> JSONResponse:
            body = await request.json()
            action = body.get("action")
            if action not in ("pay", "correct", "cancel"):
                return JSONResponse({"error": "action is 'pay', 'correct' or 'cancel'"}, status_code=400)
            with self._lock:
                invoice = self.books.find(body.get("invoice"), body.get("number"))
                if invoice is None:
                    return JSONResponse({"error": "no such invoice"}, status_code=404)
                due = self.clock.now() + timedelta(seconds=float(body.get("after_s", 0)))
                amount = Decimal(str(body["amount"])) if body.get("amount") is not None else None
                self.books.schedule(Scheduled(due, invoice.id, action, amount))
            return JSONResponse({"invoice": invoice.id, "action": action, "due": due.isoformat()})

        async def invoices(request: Request) -> JSONResponse:
            with self._lock:
                self.books.materialize(self.clock.now())
                return JSONResponse(
                    [
                        {
                            "id": i.id,
                            "number": i.number,
                            "order": i.order,
                            "inn": i.inn,
                            "amount": f"{i.amount:.2f}",
                            "status": i.status,
                            "paid": f"{i.paid:.2f}",
                            "revision": i.revision,
                        }
                        for i in self.books.invoices.values()
                    ]
                )

        return [
            Route("/stats", stats, methods=["GET"]),
            Route("/stats/reset", stats_reset, methods=["POST"]),
            Route("/scenario", scenario, methods=["POST"]),
            Route("/invoices", invoices, methods=["GET"]),
        ]

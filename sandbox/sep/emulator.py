"""The АС «СЭП» emulator: the assumed SOAP 1.1 contract (``sep.wsdl``), served at ``/sep``.

* ``GET /sep?wsdl`` — the WSDL, its address pointing at this server.
* ``POST /sep`` — the operations. Requests answer a queue number at once; ``GetQueueResult``
  answers ``TooEarly`` before SEP's own minimum delay (knob ``extra.min_delay_s``, default 60 s,
  independent of obmen's ``OBMEN_SEP_MIN_POLL_DELAY_S``), then ``InQueue``/``Processing`` for the
  processing time (``extra.processing_s`` plus a random share of ``extra.processing_spread_s``;
  ``extra.never_ready`` keeps it there), then ``Done`` or ``Error``, the same on every later poll.
* Faults on demand (knobs ``fault`` + ``fault_next`` or ``error_rate``): ``soap_fault``,
  ``soap_fault_client``, ``html_500``, ``empty_200``, ``truncated`` (the request is executed, the
  answer is cut), ``unknown_enum``, and the hostile answers of :mod:`sandbox.hostile` (``dtd``,
  ``entity``, ``pi_flood``, ``slow_headers``, ``drip_body``, ``huge``, ``gzip_bomb``, ``drip_headers``).
* Scenario endpoints under ``/_sandbox/sep/``: ``vehicles``, ``counterparties`` (one registered
  by hand), ``ownership-changes`` (a dealer starts
  one; the new owner gets the letter with the code), ``ownership-changes/many`` (``count`` of them,
  no letters: load), ``applications/{number}``, ``polls`` (SEP's own log of poll times per queue
  number).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from sandbox.harness import Emulator, Mailroom, SandboxClock
from sandbox.sep import soap
from sandbox.sep.world import ClientFault, Letter, Timing, World, mask_vin, ownership_letter

WSDL = Path(__file__).with_name("sep.wsdl")
SENDER = "СЭП <notify@sep.elpts.ru>"
XML = "text/xml; charset=utf-8"
# Python folds a long encoded Subject between two encoded words and the space there is lost on
# reading (RFC 2047 ignores whitespace between encoded words): keep each header on one line.
LETTER_POLICY = policy.SMTP.clone(max_line_length=998)


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=XML)


class SepEmulator(Emulator):
    system = "sep"
    prefix = "/sep"
    content_type = XML
    hostile_document = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<sep:GetQueueResultResponse xmlns:sep="urn:obmen:sep:v1"><sep:queueNumber>{value}</sep:queueNumber>'
        b"<sep:state>Done</sep:state><sep:serverTime>2026-01-01T00:00:00+00:00</sep:serverTime>"
        b"</sep:GetQueueResultResponse></soap:Body></soap:Envelope>"
    )

    def __init__(self, clock: SandboxClock, mailroom: Mailroom | None = None) -> None:
        super().__init__(clock, mailroom)
        self.world = World(lambda: self.clock.now())

    # --- configuration --------------------------------------------------------------------------------
    def timing(self) -> Timing:
        extra = self.knobs.extra
        return Timing(
            min_delay_s=float(extra.get("min_delay_s", 60.0)),
            processing_s=float(extra.get("processing_s", 0.0)),
            processing_spread_s=float(extra.get("processing_spread_s", 0.0)),
            never_ready=bool(extra.get("never_ready", False)),
        )

    def reset(self) -> None:
        super().reset()
        self.world = World(lambda: self.clock.now())

    def client_settings(self, base_url: str) -> dict[str, str]:
        return {"OBMEN_SEP_URL": base_url + self.prefix}

    # --- the SOAP endpoint --------------------------------------------------------------------------
    def routes(self) -> Iterable[BaseRoute]:
        async def wsdl(request: Request) -> Response:
            if "wsdl" not in request.query_params and request.url.query.lower() != "wsdl":
                return PlainTextResponse("АС «СЭП» sandbox: POST SOAP 1.1 here; the WSDL is at ?wsdl")
            # base_url carries the mount prefix (root_path) already.
            address = str(request.base_url).rstrip("/")
            text = WSDL.read_text(encoding="utf-8")
            text = re.sub(r'<soap:address location="[^"]*"/>', f'<soap:address location="{address}"/>', text)
            return Response(text, media_type=XML)

        async def endpoint(request: Request) -> Response:
            return self.answer(await request.body())

        return [Route("/", wsdl, methods=["GET"]), Route("/", endpoint, methods=["POST"])]

    def answer(self, body: bytes) -> Response:
        self.send_due_letters()
        try:
            operation, args = soap.parse_request(body)
        except soap.BadRequest as exc:
            return _xml(soap.fault("BadRequest", str(exc), client=True), 500)
        timing = self.timing()
        try:
            if operation == "GetQueueResult":
                return _xml(self._poll(args["queueNumber"], timing))
            message_id = args.pop("messageId")
            item = self.world.accept(operation, message_id, timing, args)
        except ClientFault as fault:
            return _xml(soap.fault(fault.code, fault.message, client=True), 500)
        self._send_letters_when_ready(item.ready_at)
        return _xml(soap.ticket(operation, item.queue_number, item.accepted_at))

    def _poll(self, queue_number: str, timing: Timing) -> bytes:
        state, item = self.world.poll(queue_number, timing)
        now = self.clock.now()
        announced = self.knobs.extra.get("not_before")
        if announced is not None and now < datetime.fromisoformat(str(announced)):
            # A SEP that announces a "not before" of its own (9999-12-31, say) and keeps to it.
            return soap.queue_result(
                queue_number, "TooEarly", now, not_before=datetime.fromisoformat(str(announced))
            )
        if state == "TooEarly":
            return soap.queue_result(
                queue_number, state, now, not_before=item.accepted_at + timedelta(seconds=timing.min_delay_s)
            )
        if state in ("InQueue", "Processing"):
            return soap.queue_result(queue_number, state, now)
        return soap.queue_result(
            queue_number,
            state,
            now,
            completed_at=item.ready_at,
            application=item.outcome.application,
            applications=item.outcome.applications,
            counterparty=item.outcome.counterparty,
            errors=item.outcome.errors,
        )

    # --- letters ----------------------------------------------------------------------------------------
    def _send_letters_when_ready(self, ready_at: datetime) -> None:
        if not self.world.outgoing:
            return
        delay = max(0.0, self.clock.seconds((ready_at - self.clock.now()).total_seconds()))
        # Off an event loop (called directly) the next request sends them.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(delay + 0.01, self.send_due_letters)

    def send_due_letters(self) -> None:
        for letter in self.world.due_letters():
            self.send_letter(letter)

    def send_letter(self, letter: Letter) -> None:
        to, subject, body = letter
        message = EmailMessage(policy=LETTER_POLICY)
        message["From"] = SENDER
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(self.clock.now())
        message["Message-ID"] = make_msgid(domain="sep.elpts.ru")
        message.set_content(body, charset="utf-8")
        self.mailroom.send(to, message.as_bytes())

    # --- faults -----------------------------------------------------------------------------------------
    def fault_response(self, kind: str, request: Request) -> Response:
        return _Fault(self, kind, request)

    # --- scenario endpoints -----------------------------------------------------------------------------
    def control_routes(self) -> Iterable[BaseRoute]:
        async def vehicles(request: Request) -> JSONResponse:
            body = await request.json()
            vehicle = self.world.add_vehicle(
                body["epts"], body.get("vin"), body["owner_inn"], body.get("owner_name", "")
            )
            return JSONResponse(vehicle.__dict__)

        async def ownership_change(request: Request) -> JSONResponse:
            body = await request.json()
            try:
                application = self.world.start_ownership_change(
                    body["epts"],
                    body["new_owner_inn"],
                    body.get("new_owner_name", ""),
                    body["notify_email"],
                    int(body.get("confirm_by_days", 7)),
                )
            except ClientFault as fault:
                return JSONResponse({"error": fault.code, "message": fault.message}, status_code=400)
            vin = "masked" if body.get("mask_vin") else None if body.get("omit_vin") else "full"
            self.send_letter(ownership_letter(application, vin))
            return JSONResponse(_public(application))

        async def many(request: Request) -> JSONResponse:
            """Many ownership changes at once, without letters (the benchmark's load)."""
            body = await request.json()
            numbers = []
            for i in range(int(body["count"])):
                epts = f"9{i:014d}"
                self.world.add_vehicle(epts, None, body.get("owner_inn", "7728168971"), "ООО «Дилер»")
                application = self.world.start_ownership_change(
                    epts, body["new_owner_inn"], "", body.get("notify_email", "sep@example.ru")
                )
                numbers.append(application.number)
            return JSONResponse({"application_numbers": numbers})

        async def counterparties(request: Request) -> JSONResponse:
            """A counterparty registered in SEP by hand (through its web service)."""
            return JSONResponse(self.world.add_counterparty(await request.json()))

        async def application(request: Request) -> JSONResponse:
            found = self.world.applications.get(request.path_params["number"])
            if found is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            return JSONResponse(_public(found))

        async def polls(request: Request) -> JSONResponse:
            return JSONResponse(self.poll_report(detail=request.query_params.get("detail") == "1"))

        return [
            Route("/vehicles", vehicles, methods=["POST"]),
            Route("/ownership-changes", ownership_change, methods=["POST"]),
            Route("/ownership-changes/many", many, methods=["POST"]),
            Route("/counterparties", counterparties, methods=["POST"]),
            Route("/applications/{number}", application, methods=["GET"]),
            Route("/polls", polls, methods=["GET"]),
        ]

    def poll_report(self, detail: bool = False) -> dict[str, Any]:
        """SEP's own account of how it was polled: early polls, first-poll delays, polls per number."""
        timing = self.timing()
        items = list(self.world.queue.values())
        first_delays = [(i.polls[0][0] - i.accepted_at).total_seconds() for i in items if i.polls]
        per_number: dict[int, int] = {}
        early = 0
        for item in items:
            per_number[len(item.polls)] = per_number.get(len(item.polls), 0) + 1
            floor = item.accepted_at + timedelta(seconds=timing.min_delay_s)
            early += sum(1 for at, _ in item.polls if at < floor)
        report: dict[str, Any] = {
            "queue_numbers": len(items),
            "polls": sum(len(i.polls) for i in items),
            "min_delay_s": timing.min_delay_s,
            "polls_before_min_delay": early,
            "first_poll_delay_s": {
                "min": min(first_delays, default=None),
                "max": max(first_delays, default=None),
            },
            "polls_per_queue_number": {str(k): v for k, v in sorted(per_number.items())},
        }
        if detail:
            report["items"] = [
                {
                    "queue_number": i.queue_number,
                    "operation": i.operation,
                    "accepted_at": i.accepted_at.isoformat(),
                    "ready_at": i.ready_at.isoformat(),
                    "polls": [{"at": at.isoformat(), "state": state} for at, state in i.polls],
                }
                for i in items
            ]
        return report


def _public(application: Any) -> dict[str, Any]:
    vehicle = application.vehicles[0]
    return {
        "application_number": application.number,
        "kind": application.kind,
        "status": application.status,
        "code": application.code,
        "confirm_by": application.confirm_by.isoformat(),
        "epts": vehicle.epts,
        "vin": vehicle.vin,
        "masked_vin": mask_vin(vehicle.vin) if vehicle.vin else None,
        "parties": [p.__dict__ for p in application.parties],
        "notify_email": application.notify_email,
        "codes": application.codes,
    }


class _Fault(Response):
    """A fault answer; the kinds that need the real answer (truncated, unknown_enum) execute the
    request first, as a SEP that accepted it but whose answer went wrong would have."""

    def __init__(self, emulator: SepEmulator, kind: str, request: Request) -> None:
        super().__init__()
        self.emulator = emulator
        self.kind = kind
        self.request = request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, emulator = self.kind, self.emulator
        body = await self.request.body()
        response: Response
        if kind == "soap_fault":
            response = _xml(
                soap.fault("InternalError", "SEP is temporarily unable to process requests", client=False),
                500,
            )
        elif kind == "soap_fault_client":
            response = _xml(
                soap.fault("ValidationError", "the request does not pass SEP's checks", client=True), 500
            )
        elif kind == "empty_200":
            response = Response(b"", status_code=200, media_type=XML)
        elif kind in ("truncated", "unknown_enum"):
            real = emulator.answer(body)
            content = bytes(real.body)
            if kind == "truncated":
                response = Response(
                    content[: len(content) // 2], status_code=real.status_code, media_type=XML
                )
            else:
                content = re.sub(rb"<sep:state>\w+</sep:state>", b"<sep:state>Postponed</sep:state>", content)
                content = re.sub(
                    rb"<sep:status>Confirmed</sep:status>", b"<sep:status>Suspended</sep:status>", content
                )
                response = Response(content, status_code=real.status_code, media_type=XML)
        else:
            response = HTMLResponse(
                "<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1>"
                "<p>The server encountered an internal error.</p><hr><address>nginx</address></body></html>",
                status_code=500,
            )
        await response(scope, receive, send)

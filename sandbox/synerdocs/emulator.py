"""The Synerdocs emulator: the operator's ExchangeService (WCF basicHttpBinding, SOAP 1.1).

* ``GET /synerdocs/ExchangeService.svc?wsdl`` — the WSDL (``ExchangeService.wsdl``), its address
  pointing at this server.
* ``POST /synerdocs/ExchangeService.svc`` — the operations, dispatched by ``SOAPAction``; answers
  ``text/xml``, faults (``ServiceErrorFaultContract``) with HTTP 500.
* Two accounts are seeded: the company (АО «ВОЭК», :data:`COMPANY`) and one customer (an ИП,
  :data:`CUSTOMER`), each with its box; the customer is also listed by another operator (roaming),
  so a lookup by ИНН returns it twice. The company may act for the boxes it created with
  ``CreateNonActiveSubscriber`` (its cabinet's customers, who then sign by themselves).
* Knobs (``extra``): ``delivery_s``, ``answer_after_s``, ``recipient_answer`` (``sign`` / ``reject`` /
  ``none``), ``token_ttl_s``, ``page_size``, ``max_file_bytes``; the hostile answers' ``slow_s``,
  ``drip_interval_s``, ``huge_bytes``, ``bomb_bytes``, ``entity_target``.
* Faults on demand (``fault`` + ``fault_next`` or ``error_rate``): a contract fault by its code
  (``Unauthorized``, ``SignIsNotValid``, ``ContragentIsNotAuthorized``, ``DocumentNotFound``,
  ``UnexpectedError`` …), ``html_500``, ``empty_200``, ``truncated``, ``unknown_enum``, ``extra_members``
  (an organisation carries a member the contract does not know yet, as a newer service would) and the hostile
  answers of :mod:`sandbox.hostile` (``dtd``, ``entity``, ``pi_flood``, ``huge``, ``gzip_bomb``,
  ``slow_headers``, ``drip_body``, ``drip_headers`` from ``GET /_sandbox/synerdocs/drip``).
* Scenario endpoints under ``/_sandbox/synerdocs/``: ``accounts``, ``sent`` (SendMessage counted:
  calls, messages per document ``CustomField``, the keys sent more than once), ``tokens/expire``,
  ``documents/{id}/sign`` and ``…/reject`` (the recipient answers now).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from sandbox.harness import Emulator, LoggedRequest, Mailroom, RequestLog, SandboxClock
from sandbox.synerdocs import printform, signatures, soap
from sandbox.synerdocs.contract import WSDL
from sandbox.synerdocs.world import (
    OPERATOR_CODE,
    Fault,
    Organization,
    StoredDocument,
    Timing,
    World,
    organization_contract,
    subscriber_contract,
)

XML = "text/xml; charset=utf-8"
ENDPOINT = "/ExchangeService.svc"
APPLICATION_ID = "obmen-sandbox"
OPERATOR = f"Synerdocs (песочница obmen, {OPERATOR_CODE})"
LOG_BODY_LIMIT = 65_536  # documents travel base64 in the body: the request log keeps the head


def _stable_box(inn: str) -> str:
    return f"{uuid.uuid5(uuid.NAMESPACE_URL, f'synerdocs-sandbox:{inn}')}@synerdocs.ru"


COMPANY = {
    "login": "voek",
    "password": "voek-sandbox-password",
    "inn": "3525001232",
    "kpp": "352501001",
    "name": "АО «ВОЭК»",
    "ogrn": "1023500000000",
    "box": _stable_box("3525001232"),
}
CUSTOMER = {
    "login": "petrov",
    "password": "petrov-sandbox-password",
    "inn": "352501234518",
    "name": "ИП Петров Пётр Петрович",
    "box": _stable_box("352501234518"),
}
CONTRACT_FAULTS = frozenset(
    {
        "Unauthorized",
        "SignIsNotValid",
        "ContragentIsNotAuthorized",
        "DocumentNotFound",
        "UnexpectedError",
        "InvalidDestinationAddress",
        "BoxAccessError",
    }
)


class _ClippedLog(RequestLog):
    def add(self, **fields: Any) -> LoggedRequest:
        body = fields.get("body", "")
        if len(body) > LOG_BODY_LIMIT:
            fields["body"] = body[:LOG_BODY_LIMIT] + f"…[{len(body) - LOG_BODY_LIMIT} chars cut]"
        return super().add(**fields)


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=XML)


class SynerdocsEmulator(Emulator):
    system = "synerdocs"
    prefix = "/synerdocs"
    content_type = XML
    hostile_document = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<AuthenticateResponse xmlns="http://synerdocs.ru"><AuthenticateResult>{value}</AuthenticateResult>'
        b"</AuthenticateResponse></s:Body></s:Envelope>"
    )

    def __init__(self, clock: SandboxClock, mailroom: Mailroom | None = None) -> None:
        super().__init__(clock, mailroom)
        self.log = _ClippedLog()
        self.world = self._seeded()

    def _seeded(self) -> World:
        world = World(lambda: self.clock.now())
        company = world.add_organization(
            Organization(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, COMPANY["box"])),
                inn=COMPANY["inn"],
                kpp=COMPANY["kpp"],
                name=COMPANY["name"],
                org_type="LegalEntity",
                box=COMPANY["box"],
                ogrn=COMPANY["ogrn"],
            )
        )
        customer = world.add_organization(
            Organization(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, CUSTOMER["box"])),
                inn=CUSTOMER["inn"],
                kpp=None,
                name=CUSTOMER["name"],
                org_type="IndividualEntrepreneur",
                box=CUSTOMER["box"],
                last_name="Петров",
                first_name="Пётр",
                middle_name="Петрович",
                answers_by_itself=True,
            )
        )
        world.add_account(COMPANY["login"], COMPANY["password"], company)
        world.add_account(CUSTOMER["login"], CUSTOMER["password"], customer)
        world.roaming.append(
            Organization(
                id=str(uuid.uuid4()),
                inn=customer.inn,
                kpp=None,
                name=customer.name,
                org_type=customer.org_type,
                box=f"{uuid.uuid4()}@roaming.2BE",
                operator_code="2BE",
            )
        )
        return world

    # --- configuration --------------------------------------------------------------------------------
    def timing(self) -> Timing:
        extra, defaults = self.knobs.extra, Timing()
        return Timing(
            delivery_s=float(extra.get("delivery_s", defaults.delivery_s)),
            answer_after_s=float(extra.get("answer_after_s", defaults.answer_after_s)),
            recipient_answer=str(extra.get("recipient_answer", defaults.recipient_answer)),
            token_ttl_s=float(extra.get("token_ttl_s", defaults.token_ttl_s)),
            page_size=int(extra.get("page_size", defaults.page_size)),
            max_file_bytes=int(extra.get("max_file_bytes", defaults.max_file_bytes)),
        )

    def reset(self) -> None:
        super().reset()
        self.world = self._seeded()

    def client_settings(self, base_url: str) -> dict[str, str]:
        return {
            "OBMEN_SYNERDOCS_URL": base_url + self.prefix + ENDPOINT,
            "OBMEN_SYNERDOCS_LOGIN": COMPANY["login"],
            "OBMEN_SYNERDOCS_PASSWORD": COMPANY["password"],
            "OBMEN_SYNERDOCS_APPLICATION_ID": APPLICATION_ID,
            "OBMEN_SYNERDOCS_BOX": COMPANY["box"],
        }

    # --- the SOAP endpoint ---------------------------------------------------------------------------
    def routes(self) -> Iterable[BaseRoute]:
        async def wsdl(request: Request) -> Response:
            if request.url.query.lower() != "wsdl":
                return PlainTextResponse(
                    "Synerdocs sandbox ExchangeService: POST SOAP 1.1 here; the WSDL is at ?wsdl"
                )
            return Response(self.wsdl(str(request.url.replace(query=""))), media_type=XML)

        async def endpoint(request: Request) -> Response:
            return self.answer(await request.body(), request.headers.get("soapaction"))

        return [Route(ENDPOINT, wsdl, methods=["GET"]), Route(ENDPOINT, endpoint, methods=["POST"])]

    @staticmethod
    def wsdl(address: str) -> str:
        text = Path(WSDL).read_text(encoding="utf-8")
        return re.sub(r'<soap:address location="[^"]*"/>', f'<soap:address location="{address}"/>', text)

    def answer(self, body: bytes, soap_action: str | None) -> Response:
        try:
            operation, args = soap.parse_request(body, soap_action)
        except soap.BadRequest as exc:
            return _xml(soap.bad_request(exc), 500)
        try:
            result = self._dispatch(operation, args)
        except Fault as fault:
            return _xml(soap.fault(fault.code, fault.message, fault.field), 500)
        return _xml(soap.answer(operation, result))

    def _dispatch(self, operation: str, args: dict[str, Any]) -> Any:
        world, timing = self.world, self.timing()
        if operation == "Authenticate":
            return world.authenticate(
                args.get("login"), args.get("password"), args.get("applicationId"), timing.token_ttl_s
            )
        if operation == "PrintDocument":
            credentials, request = args.get("credentials") or {}, args.get("request") or {}
            account = world.account(credentials.get("AuthToken"))
            document = world.document(account, credentials.get("BoxAddress"), request.get("DocumentId"))
            return {
                "Status": {"Code": 0, "Description": "Операция выполнена успешно", "Name": "Success"},
                "ValidationResult": None,
                "NamedContent": self.print_form(document),
            }
        account = world.account(args.get("authToken"))
        if operation == "GetOrganizationListByInnKpp":
            return [organization_contract(o) for o in world.find(args.get("inn"), args.get("kpp"))]
        if operation == "CreateNonActiveSubscriber":
            created, errors = world.create_subscriber(account, args.get("request") or {})
            if created is None:
                return {
                    "Code": {"Code": 1, "Description": "Ошибка", "Name": "Error"},
                    "Result": None,
                    "ValidationResult": {
                        "Messages": [{"Category": None, "Status": None, "Text": e} for e in errors],
                        "Name": "NonActiveSubscriberCreationRequest",
                    },
                }
            return {
                "Code": {"Code": 0, "Description": "Регистрация прошла успешно", "Name": "Success"},
                "Result": subscriber_contract(created),
                "ValidationResult": None,
            }
        if operation == "SendMessage":
            return world.send(account, args.get("message"), timing)
        if operation == "GetMessages":
            return world.messages_after(
                account, args.get("afterMessageId"), args.get("fromBox"), args.get("toBox"), timing.page_size
            )
        if operation == "GetMessage":
            return world.message(account, args.get("boxId"), args.get("messageId"))
        document = world.document(account, args.get("boxId"), args.get("documentId"))
        if operation == "GetFlowDocumentInfo":
            return world.flow_info(document, args.get("requestParams"))
        assert operation == "DownloadPdfDocument", operation
        return self.print_form(document)

    def print_form(self, document: StoredDocument) -> dict[str, Any]:
        world = self.world
        info = world.flow_info(document, None)
        sender = world.organization_by_box(document.from_box)
        recipient = world.organization_by_box(document.to_box)
        stamps = []
        if document.sender_sign is not None:
            stamps.append(
                printform.Stamp(
                    "Отправитель",
                    sender.name if sender else document.from_box,
                    signatures.signer(document.sender_sign.raw),
                    document.sent_at,
                )
            )
        recipient_sign = world.counter_sign(document)
        if recipient_sign is not None:
            stamps.append(
                printform.Stamp(
                    "Получатель",
                    recipient.name if recipient else document.to_box,
                    signatures.signer(recipient_sign.raw),
                    recipient_sign.sent_at,
                )
            )
        status = info["Status"]
        card = printform.Card(
            title=document.name or document.file_name,
            file_name=document.file_name,
            content=document.content,
            sender=f"{sender.name if sender else ''} ({document.from_box})",
            recipient=f"{recipient.name if recipient else ''} ({document.to_box})",
            document_id=document.id,
            sent_at=document.sent_at,
            status=f"{status['DeliveryStatus']}, {status['SignStatus']}",
        )
        name = (document.name or document.file_name).rsplit(".", 1)[0] + ".pdf"
        return {"Content": printform.render(card, stamps, OPERATOR), "Name": name}

    # --- faults --------------------------------------------------------------------------------------
    def fault_response(self, kind: str, request: Request) -> Response:
        if kind in CONTRACT_FAULTS:
            return _xml(soap.fault(kind, f"песочница: {kind}"), 500)
        return _BrokenAnswer(self, kind, request)

    # --- scenario endpoints --------------------------------------------------------------------------
    def control_routes(self) -> Iterable[BaseRoute]:
        async def accounts(request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "company": COMPANY,
                    "customer": CUSTOMER,
                    "application_id": APPLICATION_ID,
                    "organizations": [asdict(o) for o in self.world.organizations.values()],
                }
            )

        async def sent(request: Request) -> JSONResponse:
            counts = self.world.custom_fields
            return JSONResponse(
                {
                    "send_message_calls": self.world.send_calls,
                    "messages": len(self.world.messages),
                    "documents": len(self.world.documents),
                    "custom_fields": len(counts),
                    "sent_more_than_once": sorted(k for k, n in counts.items() if n > 1),
                }
            )

        async def expire(request: Request) -> JSONResponse:
            return JSONResponse({"expired": self.world.expire_tokens()})

        async def answer(request: Request) -> JSONResponse:
            document = self.world.documents.get(request.path_params["id"])
            if document is None or request.path_params["action"] not in ("sign", "reject"):
                return JSONResponse({"error": "no such document"}, status_code=404)
            body = await request.json() if await request.body() else {}
            self.world.answer(document, request.path_params["action"], body.get("comment"))
            return JSONResponse({"document": document.id, "answer": document.answered(self.clock.now())})

        return [
            Route("/accounts", accounts, methods=["GET"]),
            Route("/sent", sent, methods=["GET"]),
            Route("/tokens/expire", expire, methods=["POST"]),
            Route("/documents/{id}/{action}", answer, methods=["POST"]),
        ]


class _BrokenAnswer(Response):
    """An answer that went wrong on the operator's side. ``empty_200``; the kinds that need the real
    answer (``truncated``, ``unknown_enum``, ``extra_members``) execute the request first, as an
    operator that did the work would have; anything else is an IIS error page."""

    def __init__(self, emulator: SynerdocsEmulator, kind: str, request: Request) -> None:
        super().__init__()
        self.emulator = emulator
        self.kind = kind
        self.request = request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = self.kind
        response: Response
        if kind == "empty_200":
            response = Response(b"", media_type=XML)
        elif kind in ("truncated", "unknown_enum", "extra_members"):
            real = self.emulator.answer(await self.request.body(), self.request.headers.get("soapaction"))
            content = bytes(real.body)
            if kind == "truncated":
                content = content[: len(content) // 2]
            elif kind == "extra_members":
                # A newer service: a member the published contract does not have yet, after the known ones.
                content = content.replace(
                    b"</a:Organization>", b"<a:ZNewMember>1</a:ZNewMember></a:Organization>"
                )
            else:
                content = content.replace(b">DeliveredToRecipient<", b">Teleported<").replace(
                    b">SentToRecipient<", b">Teleported<"
                )
            response = Response(content, status_code=real.status_code, media_type=XML)
        else:
            response = Response(
                b"<html><head><title>500 Internal Server Error</title></head><body>"
                b"<h1>Internal Server Error</h1><hr><address>IIS</address></body></html>",
                status_code=500,
                media_type="text/html",
            )
        await response(scope, receive, send)

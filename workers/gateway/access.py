"""Who may call each route of the gateway, decided before anything reads the request.

Every route declares exactly one access rule: a dependency on an :class:`Access` on its router or on
itself (``dependencies=[Depends(require("read"))]``). :class:`~workers.gateway.edge.EdgeRoute` finds it and
admits the request by it before FastAPI reads the body or parses a parameter. A refused request
costs one log line (``gateway.refused``, with the rule and the reason) and one count of
``obmen_auth_failures_total{access, status}``; nothing of it is stored, and nothing is read beyond
what the check itself needs (the bank's signature covers the raw bytes; Bitrix24 puts its token in
the form). The same objects write the OpenAPI text, so what it says is what the gateway does.

A new kind of caller is a new subclass of :class:`Access`, as the console's session cookie is
(``ConsoleSession`` in ``workers/gateway/console/web.py``).
"""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi import HTTPException, Request
from prometheus_client import Counter

from config.settings import get_settings
from integrations.bank.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

log = structlog.get_logger(__name__)

AUTH_FAILURES = Counter(
    "obmen_auth_failures_total",
    "Requests the gateway refused by a route's access rule, before reading them",
    ["access", "status"],
    registry=None,
)
_ADMITTED = "obmen.admitted_by"


class Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = headers


class Access:
    """One rule of who may call a route. ``kind`` names it in logs, metrics and the OpenAPI text."""

    kind = "access"
    #: The OpenAPI security scheme of this kind, or None where OpenAPI has no words for it.
    scheme: dict[str, Any] | None = None
    #: The statuses of its refusals, documented on each route it guards (as problem documents).
    refusals: tuple[int, ...] = ()

    def __init__(self, who: str) -> None:
        self.who = who

    def security(self) -> list[dict[str, list[str]]] | None:
        """The operation's OpenAPI ``security``: None when the scheme cannot be said in OpenAPI."""
        return [{self.kind: []}] if self.scheme else None

    def openapi(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"x-obmen-access": {"kind": self.kind, "who": self.who}}
        security = self.security()
        if security is not None:
            extra["security"] = security
        return extra

    async def check(self, request: Request) -> None:
        """Return when the request may go on; raise :class:`Refused` otherwise."""
        raise NotImplementedError

    async def admit(self, request: Request) -> None:
        if request.scope.get(_ADMITTED) is self:
            return
        try:
            await self.check(request)
        except Refused as refused:
            AUTH_FAILURES.labels(self.kind, str(refused.status)).inc()
            log.warning(
                "gateway.refused",
                access=self.kind,
                status=refused.status,
                reason=refused.reason,
                method=request.method,
                path=request.url.path[:200],
                client=request.client.host if request.client else None,
            )
            raise HTTPException(refused.status, refused.detail, headers=refused.headers) from None
        request.scope[_ADMITTED] = self

    async def __call__(self, request: Request) -> None:
        """As a FastAPI dependency: the route's rule (already applied by ``EdgeRoute`` before the body)."""
        await self.admit(request)


class Public(Access):
    """Anyone may call: ``who`` says why that is safe."""

    kind = "public"

    def security(self) -> list[dict[str, list[str]]]:
        return []

    async def check(self, request: Request) -> None:
        return None


class ApiToken(Access):
    """A bearer token from ``OBMEN_API_TOKENS`` with ``scope`` (401 without a valid one, 403 with too little)."""

    kind = "api_token"
    refusals = (401, 403)
    scheme = {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from OBMEN_API_TOKENS. Scopes: `read`, `write` (implies read), "
        "`metrics` (read implies it), `invoices` and `cabinet` (the site's own APIs); each operation "
        "lists the scope it needs.",
    }

    def __init__(self, scope: str, who: str) -> None:
        super().__init__(who)
        self.scope = scope

    def security(self) -> list[dict[str, list[str]]]:
        return [{self.kind: [self.scope]}]

    def openapi(self) -> dict[str, Any]:
        extra = super().openapi()
        extra["x-obmen-access"]["scope"] = self.scope
        return extra

    async def check(self, request: Request) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        token = get_settings().token_for(presented.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            raise Refused(
                401,
                "no valid bearer token",
                "a valid bearer token is required",
                {"WWW-Authenticate": "Bearer"},
            )
        if not token.grants(self.scope):
            raise Refused(403, f"token lacks {self.scope}", f"this token lacks the {self.scope!r} scope")


class BankSignature(Access):
    """The bank's HMAC over timestamp, method, path with query and the raw body (``docs/bank-api.md``)."""

    kind = "bank_signature"
    refusals = (401, 413)
    scheme = {
        "type": "apiKey",
        "in": "header",
        "name": SIGNATURE_HEADER,
        "description": f'"sha256=" + hex HMAC-SHA256(secret, {TIMESTAMP_HEADER} + "\\n" + METHOD + "\\n" '
        f'+ path with query + "\\n" + raw body), with {TIMESTAMP_HEADER} (unix seconds, within '
        "OBMEN_BANK_TIMESTAMP_TOLERANCE_S of our clock). See docs/bank-api.md.",
    }

    async def check(self, request: Request) -> None:
        settings = get_settings()
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > settings.bank_max_body_bytes:
            raise HTTPException(413, f"request body over {settings.bank_max_body_bytes} bytes")
        raw = await request.body()
        if len(raw) > settings.bank_max_body_bytes:
            raise HTTPException(413, f"request body over {settings.bank_max_body_bytes} bytes")
        path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        rejection = verify(
            settings.bank_secrets(),
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            request.method,
            (path + (b"?" + query if query else b"")).decode("latin-1"),
            raw,
            time.time(),
            settings.bank_timestamp_tolerance_s,
        )
        if rejection is not None:
            raise Refused(
                401,
                rejection.reason,
                "missing, expired or wrong signature",
                {"WWW-Authenticate": "HMAC-SHA256"},
            )


FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
BITRIX24_TOKEN_FIELD = "auth[application_token]"


class Bitrix24Token(Access):
    """The ``auth[application_token]`` field of a Bitrix24 outbound event (form-encoded)."""

    kind = "bitrix24_application_token"
    refusals = (401,)

    async def check(self, request: Request) -> None:
        expected = get_settings().bitrix24_application_token
        presented = ""
        if media_type(request) == FORM_MEDIA_TYPE:
            try:
                fields = parse_qsl((await request.body()).decode("utf-8", "replace"), max_num_fields=1000)
            except ValueError:
                fields = []
            presented = next((v for k, v in fields if k == BITRIX24_TOKEN_FIELD), "")
        if not (
            expected is not None
            and presented
            and hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())
        ):
            raise Refused(401, "application_token missing or unknown", "unknown application_token")


def media_type(request: Request) -> str:
    """The request's media type, exactly: ``type/subtype`` before any parameter, lower case."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()

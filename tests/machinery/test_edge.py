"""The gateway's edge as a class: every route admits by one access rule before it reads the request,
takes only edge-typed parameters, and says in its OpenAPI text what it does.

The tests enumerate the routes of the built app, so a route added later is covered without a word here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select

import models
from models.db import session_scope
from tasks.machinery.outbox import set_dispatch_mode
from tests.harness.bank import bank_settings
from tests.harness.gateway import GatewayThread
from workers.gateway.access import Public
from workers.gateway.app import create_app
from workers.gateway.auth import require
from workers.gateway.edge import EdgeMount, EdgeRoute, EdgeRuleBroken, audit
from workers.gateway.params import Chars, Id, Limit

READ = {"Authorization": "Bearer test-read-token"}
WRITE = {"Authorization": "Bearer test-write-token"}


@pytest.fixture
def gateway(obmen_app, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayThread]:
    with bank_settings(monkeypatch, OBMEN_BITRIX24_APPLICATION_TOKEN="portal-token"), GatewayThread() as gw:
        set_dispatch_mode("off")
        yield gw
    set_dispatch_mode("inline")


def routes(app: FastAPI) -> list[tuple[str, str, EdgeRoute]]:
    found: list[tuple[str, str, EdgeRoute]] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, EdgeMount):
            continue  # an application that checks its own callers (the console)
        assert isinstance(route, EdgeRoute), f"{context.path} is a {type(route).__name__}"
        found.extend((method, str(context.path), route) for method in sorted(context.methods or []))
    return found


def rows_stored() -> int:
    with session_scope() as s:
        return sum(s.scalar(select(func.count()).select_from(t)) or 0 for t in models.metadata.sorted_tables)


def refusals(url: str) -> dict[tuple[str, str], float]:
    text = httpx.get(url + "/metrics", headers=READ).text
    pattern = r'obmen_auth_failures_total\{access="([^"]+)",status="([^"]+)"\} ([0-9.e+]+)'
    return {(access, status): float(n) for access, status, n in re.findall(pattern, text)}


def test_the_built_app_keeps_the_edge_rule() -> None:
    app = create_app()
    assert audit(app) == []
    served = routes(app)
    assert len(served) >= 30
    kinds = {route.access.kind for _, _, route in served}
    assert kinds == {
        "public",
        "api_token",
        "bank_signature",
        "bitrix24_application_token",
        "form_link",
        "console_session",
    }
    public = {(method, path) for method, path, route in served if route.access.kind == "public"}
    assets = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
    assert public == {
        *(("GET", p) for p in ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc")),
        *(("GET", f"/docs/assets/{name}") for name in assets),
        *(("GET", f"/console/static/{name}") for name in ("console.css", "console.js")),
        ("GET", "/console/login"),
        ("POST", "/console/login"),
    }, "a new public route: say why in docs/operations.md and here"


def test_a_route_that_breaks_the_rule_cannot_be_defined() -> None:
    router = APIRouter(route_class=EdgeRoute)
    with pytest.raises(EdgeRuleBroken, match="declares 0 access rules"):

        @router.get("/open")
        def no_rule() -> None: ...

    with pytest.raises(EdgeRuleBroken, match="declares 2 access rules"):

        @router.get("/both", dependencies=[Depends(require("read")), Depends(Public("anyone"))])
        def two_rules() -> None: ...

    with pytest.raises(EdgeRuleBroken, match="query parameter 'limit': int is not an edge type"):

        @router.get("/page", dependencies=[Depends(require("read"))])
        def raw_limit(limit: int = 10) -> None: ...

    with pytest.raises(EdgeRuleBroken, match="path parameter 'name': str is not an edge type"):

        @router.get("/named/{name}", dependencies=[Depends(require("read"))])
        def raw_text(name: str) -> None: ...

    with pytest.raises(EdgeRuleBroken, match="query parameter 'ids': a list without a max_length"):

        @router.get("/many", dependencies=[Depends(require("read"))])
        def many(ids: Annotated[list[Id], Query()]) -> None: ...

    # Edge types, of the shared sizes or of their own, are what a route may take.
    @router.get("/fine/{row}", dependencies=[Depends(require("read"))])
    def fine(row: Id, q: Annotated[str, Chars(30)] | None = None, limit: Limit = 5) -> None: ...

    # A route of FastAPI's own class in the app is refused when the app is checked, and so are
    # FastAPI's own /docs, /redoc and /openapi.json (the gateway serves them as routes with a rule).
    plain = APIRouter()

    @plain.get("/plain")
    def plain_route() -> None: ...

    app = FastAPI()
    app.include_router(router)
    app.include_router(plain)
    # An application mounted whole must say who its callers are (it checks them itself).
    app.mount("/files", FastAPI())
    app.router.routes.append(EdgeMount("/console", FastAPI(), Public("people with a console login")))
    problems = audit(app)
    assert [p.split(" is a ")[0] for p in problems] == [
        "['GET', 'HEAD'] /openapi.json",
        "['GET', 'HEAD'] /docs",
        "['GET', 'HEAD'] /docs/oauth2-redirect",
        "['GET', 'HEAD'] /redoc",
        "['GET'] /plain",
        "[] /files",
    ]


def test_openapi_says_who_may_call_what_and_the_gateway_does_that(gateway: GatewayThread) -> None:
    app = create_app()
    schema = httpx.get(gateway.url + "/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    before_rows = rows_stored()
    before = refusals(gateway.url)
    expected: dict[tuple[str, str], int] = {}
    with httpx.Client(timeout=30) as http:
        for method, path, route in routes(app):
            access = route.access
            operation: dict[str, Any] | None = schema["paths"].get(path, {}).get(method.lower())
            if operation is not None:
                assert operation["x-obmen-access"]["kind"] == access.kind, path
                assert operation.get("security") == access.security(), path
                for requirement in operation.get("security", []):
                    assert set(requirement) <= set(schemes), path
            else:
                assert not route.include_in_schema, f"{method} {path} is missing from the OpenAPI text"
            # Without credentials, with a body that is not even JSON: the rule answers first.
            url = gateway.url + re.sub(r"\{[^}]+\}", "1", path)
            answer = http.request(
                method, url, content=b"{not json", headers={"Content-Type": "application/json"}
            )
            if access.kind == "public":
                # The console's login post is let in by its rule and refused by its CSRF check.
                let_in = 403 if (method, path) == ("POST", "/console/login") else 200
                assert answer.status_code == let_in, (method, path, answer.text)
                continue
            wanted = 404 if access.kind == "form_link" else 401
            # The console answers a person: a page of it without a session is the login page.
            shown = 303 if access.kind == "console_session" and method == "GET" else wanted
            assert answer.status_code == shown, (method, path, answer.status_code, answer.text)
            if shown == 303:
                assert answer.headers["location"].startswith("/console/login?next="), path
            expected[(access.kind, str(wanted))] = expected.get((access.kind, str(wanted)), 0) + 1
    assert rows_stored() == before_rows
    after = refusals(gateway.url)
    assert {k: after.get(k, 0) - before.get(k, 0) for k in expected} == expected


def test_scopes_are_checked_before_the_body(gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch) -> None:
    from config.settings import get_settings

    monkeypatch.setenv("OBMEN_API_TOKENS", "read+write:w,read:r,metrics:m")
    get_settings.cache_clear()
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        assert (
            http.post("/ops/redrive", content=b"{not json", headers={"Authorization": "Bearer r"}).status_code
            == 403
        )
        assert http.get("/ops/parked", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.get("/ops/parked", headers={"Authorization": "Bearer m"}).status_code == 403
        for token in ("m", "r", "w"):
            assert http.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200, (
                token
            )


def test_megabytes_without_a_token_store_nothing(gateway: GatewayThread) -> None:
    """Issue 16 finding 2: 10 × 1 MB tokenless Bitrix24 events added 10 MB to exchange_log."""
    body = "event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=101&pad=" + "x" * 1_000_000
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        for token in ("", "&auth%5Bapplication_token%5D=forged"):
            for _ in range(5):
                answer = http.post(
                    "/bitrix24/events",
                    content=body + token,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                assert answer.status_code == 401
    assert rows_stored() == 0


OUT_OF_BOUNDS = [
    ("/ops/parked?limit=-1", "negative limit"),
    ("/ops/dead-letters?limit=1001", "limit over the cap"),
    ("/acts?offset=-1", "negative offset"),
    ("/acts?limit=%2B5", "a sign"),
    ("/acts?limit=5_0", "an underscore"),
    ("/acts/99999999999999999999", "id beyond 64 bits"),
    ("/acts/9223372036854775808", "id of 2**63"),
    ("/acts/0", "id 0"),
    ("/acts/%D9%A1%D9%A2", "Arabic-Indic digits"),
    ("/acts?deal_id=%EF%BC%91", "a full-width digit"),
    ("/ops/payments?status=%00", "NUL"),
    ("/sep/ownership-changes?vin=" + "A" * 201, "text over 200 characters"),
    ("/sep/lease-candidates?period_from=0001-01-01", "a date before 1900"),
]
BAD_BODIES = [
    (b'{"register": "canaries", "ids": [1180591620717411303424]}', "an id of 2**70"),
    (b'{"register": "canaries", "ids": [true]}', "true as an id"),
    (b'{"register": "canaries", "ids": [1.0]}', "a float as an id"),
    (b'{"register": "canar\\u0000ies"}', "NUL in a JSON string"),
    (b'{"register": "\\ud800"}', "a lone surrogate"),
    (b'{"register": "canaries", "register": "outbox"}', "a repeated key"),
    (b'{"register": "canaries", "ids": [NaN]}', "NaN"),
    (b'{"register": "canaries", "ids": [' + b"1," * 1000 + b"1]}", "1001 ids"),
    (b'{"register": "canaries", "ids": [' + b"9" * 5000 + b"]}", "5000 digits"),
    (b"[" * 100_000 + b"]" * 100_000, "nesting 100,000 deep"),
]


def test_parameters_and_bodies_out_of_bounds_are_422(gateway: GatewayThread) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        for path, why in OUT_OF_BOUNDS:
            answer = http.get(path, headers=READ)
            assert answer.status_code == 422, (why, answer.text)
        for body, why in BAD_BODIES:
            answer = http.post(
                "/ops/redrive", content=body, headers={**WRITE, "Content-Type": "application/json"}
            )
            assert answer.status_code == 422, (why, answer.text[:300])


def test_an_upload_with_an_unstorable_name_is_422(gateway: GatewayThread) -> None:
    for name in (b"scan\x00.pdf", b"a" * 256 + b".pdf"):
        body = (
            b'--b\r\nContent-Disposition: form-data; name="status"\r\n\r\nsigned\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + name + b'"\r\n'
            b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--b--\r\n"
        )
        answer = httpx.post(
            gateway.url + "/acts/1/status",
            content=body,
            headers={**WRITE, "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert answer.status_code == 422, (name[:20], answer.text)

"""The gateway's answers over real HTTP: one error shape (RFC 9457 problem documents) on every path,
documented in the OpenAPI text; an access log line per request under a request id that the response
returns and the tasks the request caused log too (a real worker)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select

from models.db import session_scope
from models.outbox import Outbox
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.request_id import HEADER
from tests.harness.gateway import GatewayThread
from tests.harness.processes import start_worker
from workers.gateway import access_log
from workers.gateway.access import Public
from workers.gateway.app import create_app
from workers.gateway.edge import EdgeRoute
from workers.gateway.problems import MEDIA_TYPE

WRITE = {"Authorization": "Bearer test-write-token"}
READ = {"Authorization": "Bearer test-read-token"}
TESTED = Public("the test's own failing routes")


def with_test_routes() -> Any:
    """The gateway with a route that fails unexpectedly, and one under /console (answers its own errors)."""
    router = APIRouter(route_class=EdgeRoute, dependencies=[Depends(TESTED)])

    @router.get("/failing")
    def failing() -> None:
        raise RuntimeError("secret-internal-detail")

    # A post: every GET under /console that no page takes is the console's own «Не найдено».
    @router.post("/console/missing")
    def console_missing() -> None:
        raise HTTPException(404, "the console's own page")

    app = create_app()
    app.include_router(router)
    return app


@pytest.fixture
def gateway(obmen_app: Any) -> Iterator[GatewayThread]:
    with GatewayThread(with_test_routes()) as gw:
        set_dispatch_mode("off")
        yield gw
    set_dispatch_mode("inline")


def problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert (body["type"], body["status"]) == (f"urn:obmen:problem:{kind}", status)
    assert body["title"] and isinstance(body.get("detail", ""), str)
    return body


def test_every_refusal_and_failure_is_a_problem(gateway: GatewayThread) -> None:
    url = gateway.url
    problem(httpx.get(url + "/nowhere"), 404, "not-found")
    not_allowed = httpx.delete(url + "/healthz")
    problem(not_allowed, 405, "method-not-allowed")
    assert not_allowed.headers["allow"] == "GET"
    anonymous = httpx.get(url + "/ops/parked")
    assert problem(anonymous, 401, "unauthorized")["detail"] == "a valid bearer token is required"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    problem(httpx.post(url + "/ops/canary", headers=READ), 403, "forbidden")

    edge = problem(httpx.get(url + "/ops/parked?limit=-1", headers=READ), 422, "validation")
    assert [e["field"] for e in edge["errors"]] == ["limit"]
    twice = b'{"register": "canaries", "register": "acts"}'
    json_body = {**WRITE, "Content-Type": "application/json"}
    strict = problem(httpx.post(url + "/ops/redrive", content=twice, headers=json_body), 422, "validation")
    assert [e["field"] for e in strict["errors"]] == ["body"]
    nul = problem(
        httpx.post(url + "/ops/redrive", json={"register": "a\x00"}, headers=WRITE), 422, "validation"
    )
    assert nul["errors"][0]["field"] == "register"

    big = b"{" + b" " * (1_048_576 + 10) + b"}"
    too_large = problem(httpx.post(url + "/ops/redrive", content=big, headers=json_body), 413, "too-large")
    assert too_large["detail"] == "request body over 1048576 bytes"
    problem(httpx.post(url + "/ops/redrive", json={"register": "nope"}, headers=WRITE), 404, "not-found")

    failed = httpx.get(url + "/failing", headers={"X-Request-ID": "req-500"})
    body = problem(failed, 500, "internal")
    assert body["request_id"] == failed.headers["x-request-id"] == "req-500"
    assert "secret" not in failed.text and "RuntimeError" not in failed.text

    own = httpx.post(url + "/console/missing")
    assert (own.status_code, own.headers["content-type"]) == (404, "application/json")
    assert own.json() == {"detail": "the console's own page"}


def test_the_openapi_text_documents_the_problems() -> None:
    schema = create_app().openapi()
    assert {"Problem", "ValidationProblem"} <= set(schema["components"]["schemas"])
    assert set(schema["components"]["securitySchemes"]) == {"api_token", "bank_signature"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert MEDIA_TYPE in responses["default"]["content"], where
            if operation["x-obmen-access"]["kind"] == "api_token":
                assert {"401", "403"} <= set(responses), where
            if "422" in responses:
                assert responses["422"]["content"][MEDIA_TYPE]["schema"] == {
                    "$ref": "#/components/schemas/ValidationProblem"
                }, where


class Recorded:
    """The access log's lines as the middleware writes them, with the context bound at the time."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append({**structlog.contextvars.get_contextvars(), **fields, "event": event})


def test_one_access_log_line_per_request_under_its_request_id(
    gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = Recorded()
    monkeypatch.setattr(access_log, "log", recorded)
    given = httpx.get(gateway.url + "/healthz", headers={"X-Request-ID": "shop-42.a:b_c"})
    unsafe = httpx.get(gateway.url + "/ops/parked", headers={"X-Request-ID": "x" * 65})
    made = httpx.get(gateway.url + "/healthz")
    assert given.headers["x-request-id"] == "shop-42.a:b_c"
    assert re.fullmatch("[0-9a-f]{32}", unsafe.headers["x-request-id"])
    assert re.fullmatch("[0-9a-f]{32}", made.headers["x-request-id"])
    assert made.headers["x-request-id"] != unsafe.headers["x-request-id"]
    lines = [
        {k: line[k] for k in ("method", "path", "status", "request_id")}
        for line in recorded.lines
        if line["event"] == "gateway.request"
    ]
    assert lines == [
        {"method": "GET", "path": "/healthz", "status": 200, "request_id": "shop-42.a:b_c"},
        {"method": "GET", "path": "/ops/parked", "status": 401, "request_id": unsafe.headers["x-request-id"]},
        {"method": "GET", "path": "/healthz", "status": 200, "request_id": made.headers["x-request-id"]},
    ]
    assert all(
        isinstance(line["duration_ms"], float)
        for line in recorded.lines
        if line["event"] == "gateway.request"
    )


def test_the_request_id_travels_into_the_tasks_it_caused(obmen_app: Any) -> None:
    """The outbox row the request wrote keeps the id; the relayed message carries it; the worker logs it."""
    worker = start_worker(concurrency=1, pool="solo", queues="ops")
    try:
        with GatewayThread() as gw:  # publishing as in production: after the commit, beside the answer
            started = httpx.post(gw.url + "/ops/canary", headers={**WRITE, "X-Request-ID": "trace-7"})
            assert started.status_code == 202
            with session_scope() as session:
                row = session.scalars(select(Outbox)).one()
                assert row.kwargs["options"]["headers"] == {HEADER: "trace-7"}
            worker.wait_for_output("step.done")
        [done] = [line for line in worker.text().splitlines() if "step.done" in line]
        assert "request_id=trace-7" in done
    finally:
        worker.stop()
        set_dispatch_mode("inline")

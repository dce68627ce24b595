"""The gateway over real HTTP: health, readiness with a stopped database, metrics, ops auth."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from models.canary import Canary
from models.db import session_scope
from tasks.machinery.outbox import set_dispatch_mode
from tests.harness.gateway import GatewayThread
from tests.harness.processes import OBMEN, PostgresServer, Process, free_port
from tests.harness.waiting import wait_for

WRITE = {"Authorization": "Bearer test-write-token"}
READ = {"Authorization": "Bearer test-read-token"}


@pytest.fixture
def gateway(obmen_app) -> Iterator[GatewayThread]:
    with GatewayThread() as gw:
        yield gw
    set_dispatch_mode("inline")


def test_health_and_readiness(gateway: GatewayThread) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_reports_a_stopped_database_as_not_ready() -> None:
    pg = PostgresServer()
    pg.start()
    port = free_port()
    gw = Process([OBMEN, "gateway", "--port", str(port)], env={"OBMEN_DATABASE_URL": pg.url})
    try:
        url = f"http://127.0.0.1:{port}/readyz"

        def answer() -> httpx.Response | None:
            try:
                return httpx.get(url, timeout=10)
            except httpx.TransportError:
                return None

        assert wait_for(answer, timeout=30, what="the gateway").status_code == 200
        pg.stop()
        down = httpx.get(url, timeout=15)
        assert down.status_code == 503
        body = down.json()
        assert body["ready"] is False
        assert body["checks"]["database"].startswith("unavailable")
        assert body["checks"]["broker"] == "ok"
        pg.start()
        assert wait_for(lambda: (r := answer()) is not None and r.status_code == 200 and r, timeout=30)
    finally:
        gw.stop()
        pg.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token"}, 401),
        ({"Authorization": "Basic dGVzdDp0ZXN0"}, 401),
        (READ, 403),
        (WRITE, 200),
    ],
)
def test_an_ops_write_needs_a_write_token(
    gateway: GatewayThread, headers: dict[str, str], status: int
) -> None:
    response = httpx.post(gateway.url + "/ops/redrive", json={"register": "canaries"}, headers=headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == {"register": "canaries", "redriven": [], "skipped": []}


def test_ops_reads_take_a_read_token(gateway: GatewayThread) -> None:
    assert httpx.get(gateway.url + "/ops/parked").status_code == 401
    assert httpx.get(gateway.url + "/ops/parked", headers=READ).json() == []
    assert httpx.get(gateway.url + "/ops/outbox", headers=READ).json() == {"pending": 0, "failing": []}


def test_parked_rows_are_listed_and_redriven_over_http(gateway: GatewayThread) -> None:
    set_dispatch_mode("off")
    from models.base import utcnow

    with session_scope() as s:
        row = Canary(parked_at=utcnow(), attempts=3, last_error="TransientError: boom")
        s.add(row)
        s.flush()
        cid = row.id
    parked = httpx.get(gateway.url + "/ops/parked?register=canaries", headers=READ).json()
    assert [(p["id"], p["last_error"]) for p in parked] == [(cid, "TransientError: boom")]
    redriven = httpx.post(
        gateway.url + "/ops/redrive", json={"register": "canaries", "ids": [cid]}, headers=WRITE
    )
    assert redriven.json()["redriven"] == [cid]
    assert httpx.get(gateway.url + "/ops/outbox", headers=READ).json()["pending"] == 1
    assert (
        httpx.post(gateway.url + "/ops/redrive", json={"register": "nope"}, headers=WRITE).status_code == 404
    )


def test_metrics_carry_register_figures(gateway: GatewayThread) -> None:
    set_dispatch_mode("off")
    from models.base import utcnow

    with session_scope() as s:
        s.add(Canary(parked_at=utcnow()))
    httpx.post(gateway.url + "/ops/canary", headers=WRITE).raise_for_status()
    text = httpx.get(gateway.url + "/metrics", headers=READ).text
    assert "obmen_outbox_pending 1.0" in text
    assert 'obmen_parked_rows{register="canaries"} 1.0' in text
    # No canary has come through yet: the family is there, without a sample (never a -1).
    assert "# TYPE obmen_canary_age_seconds gauge" in text
    assert "\nobmen_canary_age_seconds " not in text


def test_oversized_bodies_are_refused_before_parsing(gateway: GatewayThread) -> None:
    big = b"{" + b" " * (1_048_576 + 10) + b"}"
    response = httpx.post(
        gateway.url + "/ops/redrive", content=big, headers={**WRITE, "Content-Type": "application/json"}
    )
    assert response.status_code == 413

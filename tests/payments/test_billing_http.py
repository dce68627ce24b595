"""Billing's entries over HTTP (write scope), through the real gateway: the month's accruals (enqueued
for a worker; run here as the worker runs it) and subscribers' requests, each a 202 with its business
key, harmless when asked again; refusals as problem documents."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from models.db import session_scope
from models.outbox import Outbox
from models.payments import Accrual, SubscriberRequest
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import ENTRIES
from tasks.payments.chain import START_REMINDER, START_REQUEST
from tests.harness.bank import seed_subscribers
from tests.harness.gateway import GatewayThread

WRITE = {"Authorization": "Bearer test-write-token"}
READ = {"Authorization": "Bearer test-read-token"}
INN = "500100732259"


@pytest.fixture
def gw(obmen_app: Any) -> Iterator[GatewayThread]:
    with GatewayThread() as gateway:
        set_dispatch_mode("off")  # the outbox rows stay for the assertions; the test runs them
        yield gateway
    set_dispatch_mode("inline")


def outbox(task: str) -> list[Outbox]:
    with session_scope() as session:
        return list(session.scalars(select(Outbox).where(Outbox.task_name == task).order_by(Outbox.id)))


def run_accrue_rows() -> list[Any]:
    """What a billing worker does with the rows: the entry with the row's arguments."""
    results = []
    for row in outbox("billing.accrue"):
        with session_scope() as session:
            results.append(ENTRIES["billing.accrue"].call(session, **row.kwargs["kwargs"]))
    return results


def test_accruals_of_a_month(gw: GatewayThread) -> None:
    seed_subscribers(3, accrued=False)
    first = httpx.post(gw.url + "/billing/accruals", json={"period": "2026-12"}, headers=WRITE)
    assert first.status_code == 202, first.text
    assert first.json()["business_key"] == "billing.accrue:2026-12"
    [row] = outbox("billing.accrue")
    assert (row.id, row.business_key) == (first.json()["outbox_id"], "billing.accrue:2026-12")
    assert run_accrue_rows() == [{"period": "2026-12", "created": 3, "already": 0}]
    assert len(outbox(START_REMINDER)) == 3

    again = httpx.post(gw.url + "/billing/accruals", json={"period": "2026-12"}, headers=WRITE)
    assert again.status_code == 202
    assert run_accrue_rows()[-1] == {"period": "2026-12", "created": 0, "already": 3}
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Accrual)) == 3


def test_a_subscriber_request_once_per_number(gw: GatewayThread) -> None:
    body = {"number": "З-1", "kind": "connect", "inn": INN, "name": "ООО «Ромашка»", "tariff": "BASE"}
    first = httpx.post(gw.url + "/billing/requests", json=body, headers=WRITE)
    again = httpx.post(gw.url + "/billing/requests", json={**body, "comment": "again"}, headers=WRITE)
    assert first.status_code == again.status_code == 202
    assert (
        first.json()
        == again.json()
        == {
            "business_key": "subscriber_requests:З-1",
            "request_id": first.json()["request_id"],
        }
    )
    with session_scope() as session:
        row = session.get(SubscriberRequest, first.json()["request_id"])
        assert row is not None and (row.kind, row.subscriber_inn, row.comment) == ("connect", INN, None)
    assert [r.kwargs["kwargs"] for r in outbox(START_REQUEST)] == [{"id": first.json()["request_id"]}]


def test_refusals_are_problems(gw: GatewayThread) -> None:
    read_only = httpx.post(gw.url + "/billing/accruals", json={"period": "2026-12"}, headers=READ)
    assert read_only.status_code == 403
    assert read_only.headers["content-type"] == "application/problem+json"
    month = httpx.post(gw.url + "/billing/accruals", json={"period": "2026-13"}, headers=WRITE)
    assert month.status_code == 422
    assert month.json()["errors"] == [
        {"field": "period", "message": "Value error, period is a month, YYYY-MM"}
    ]
    bad = {"number": "З-2", "kind": "suspend", "inn": "1234567890"}
    request = httpx.post(gw.url + "/billing/requests", json=bad, headers=WRITE)
    assert request.status_code == 422
    assert [e["field"] for e in request.json()["errors"]] == ["kind"]
    wrong_inn = httpx.post(gw.url + "/billing/requests", json={**bad, "kind": "connect"}, headers=WRITE)
    assert [e["field"] for e in wrong_inn.json()["errors"]] == ["inn"]
    assert outbox("billing.accrue") == [] and outbox(START_REQUEST) == []

"""The Bitrix24 client against the Bitrix24 sandbox over real HTTP, and a public client against it too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from integrations.bitrix24 import (
    Bitrix24AuthError,
    Bitrix24Blocked,
    Bitrix24Client,
    Bitrix24MethodNotFound,
    Bitrix24NotFound,
    Bitrix24OperationTimeLimit,
    Bitrix24RequestError,
    Bitrix24Throttled,
    Bitrix24Unavailable,
    Ref,
    deal_document,
)
from integrations.errors import PermanentError, RateLimited, TransientError
from integrations.exchange import Exchange
from integrations.ratelimit import Bucket, LocalRateLimiter
from sandbox.bitrix24 import WEBHOOK_CODE, Bitrix24Emulator, parse_php_query
from sandbox.harness import SandboxClock
from sandbox.server import Sandbox
from tasks.machinery.ratelimit import RedisRateLimiter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox([Bitrix24Emulator(SandboxClock())]) as sandbox:
        yield sandbox


@pytest.fixture
def portal(box: Sandbox) -> Bitrix24Emulator:
    emulator = box.emulator("bitrix24")
    assert isinstance(emulator, Bitrix24Emulator)
    emulator.reset()
    return emulator


@pytest.fixture
def webhook(box: Sandbox, portal: Bitrix24Emulator) -> str:
    return box.client_settings()["OBMEN_BITRIX24_WEBHOOK_URL"]


def control(box: Sandbox, path: str) -> str:
    return f"{box.url}/_sandbox/bitrix24/{path}"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_deals_paging_and_stage_history(box: Sandbox, webhook: str) -> None:
    ids = httpx.post(control(box, "deals"), json=[{"TITLE": f"Абонент {i}"} for i in range(120)]).json()
    client = Bitrix24Client(webhook)
    first = client.deal_list(select=["ID", "TITLE"])
    assert (len(first.items), first.next, first.total) == (50, 50, 120)
    assert set(first.items[0]) == {"ID", "TITLE"} and first.items[0]["ID"] == str(ids[0])
    assert [int(d["ID"]) for d in client.iter_deals()] == ids
    assert client.deal_list(filter={">ID": ids[-3]}).items[0]["ID"] == str(ids[-2])

    assert client.deal_update(ids[0], {"STAGE_ID": "UC_PAID", "UF_CRM_PAID": "Y"}) is True
    assert client.deal_update(ids[0], {"STAGE_ID": "UC_PAID"}) is True  # same stage: no new history entry
    deal = client.deal_get(ids[0])
    assert (deal["STAGE_ID"], deal["UF_CRM_PAID"], deal["CURRENCY_ID"]) == ("UC_PAID", "Y", "RUB")
    seen = httpx.get(control(box, f"deals/{ids[0]}")).json()
    assert seen["stage_name"] == "Оплачено"
    assert [(h["from"], h["to"]) for h in seen["stage_history"]] == [("NEW", "UC_PAID")]


def test_tasks_workflows_and_notifications(box: Sandbox, webhook: str) -> None:
    client = Bitrix24Client(webhook)
    deal_id = client.deal_add({"TITLE": "Абонент"})
    task = client.task_add(
        {"TITLE": "Отключить абонента", "RESPONSIBLE_ID": 11, "UF_CRM_TASK": [f"D_{deal_id}"]}
    )
    assert task["title"] == "Отключить абонента" and task["responsibleId"] == "11"
    workflow = client.workflow_start(3, deal_document(deal_id), {"Debt": "1500.00"})
    assert "." in workflow
    assert client.notify_system(11, "Платёж получен") == 1
    assert httpx.get(control(box, "tasks")).json()[0]["ufCrmTask"] == [f"D_{deal_id}"]
    started = httpx.get(control(box, "workflows")).json()
    assert started == [
        {
            "id": workflow,
            "template_id": 3,
            "document_id": ["crm", "CCrmDocumentDeal", f"DEAL_{deal_id}"],
            "parameters": {"Debt": "1500.00"},
            "started_at": started[0]["started_at"],
        }
    ]
    assert httpx.get(control(box, "notifications")).json()[0]["message"] == "Платёж получен"
    with pytest.raises(Bitrix24NotFound):
        client.workflow_start(3, deal_document(999_999))
    with pytest.raises(Bitrix24RequestError):
        client.task_add({"TITLE": "Без ответственного"})


def test_batch_with_references_and_errors(box: Sandbox, webhook: str) -> None:
    client = Bitrix24Client(webhook)
    result = client.batch(
        {
            "deal": (
                "crm.deal.add",
                {"fields": {"TITLE": "Подключение: ООО «Ромашка»", "OPPORTUNITY": "10.50"}},
            ),
            "process": (
                "bizproc.workflow.start",
                {"TEMPLATE_ID": 5, "DOCUMENT_ID": deal_document(Ref("deal"))},
            ),
            "missing": ("crm.deal.get", {"id": 424242}),
            "again": ("crm.deal.get", {"id": Ref("deal")}),
        }
    )
    deal_id = int(result.result["deal"])
    assert result.result["again"]["TITLE"] == "Подключение: ООО «Ромашка»"
    assert result.result["again"]["OPPORTUNITY"] == "10.50"
    assert httpx.get(control(box, "workflows")).json()[0]["document_id"][2] == f"DEAL_{deal_id}"
    assert list(result.errors) == ["missing"] and isinstance(result.errors["missing"], Bitrix24NotFound)

    halted = client.batch(
        {"bad": ("no.such.method", {}), "never": ("crm.deal.add", {"fields": {"TITLE": "x"}})}, halt=True
    )
    assert isinstance(halted.errors["bad"], Bitrix24MethodNotFound) and halted.result == {}
    assert len(httpx.get(control(box, "deals")).json()) == 1

    with pytest.raises(ValueError, match="1 to 50"):
        client.batch({str(i): ("crm.deal.get", {"id": 1}) for i in range(51)})
    too_long = httpx.post(
        webhook + "batch.json", json={"cmd": {str(i): "crm.deal.get?id=1" for i in range(51)}}
    )
    assert (too_long.status_code, too_long.json()["error"]) == (400, "ERROR_BATCH_LENGTH_EXCEEDED")
    nested = httpx.post(webhook + "batch", json={"cmd": {"a": "batch?cmd[b]=crm.deal.get"}}).json()
    assert nested["result"]["result_error"]["a"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"


def test_typed_errors(box: Sandbox, webhook: str) -> None:
    client = Bitrix24Client(webhook, retries=0)
    with pytest.raises(Bitrix24MethodNotFound):
        client.call("crm.nothing.here")
    with pytest.raises(Bitrix24NotFound) as missing:
        client.deal_get(1)
    assert isinstance(missing.value, PermanentError) and missing.value.status == 400
    with pytest.raises(Bitrix24AuthError):
        Bitrix24Client(webhook.replace(WEBHOOK_CODE, "stolen")).deal_list()
    for fault, kind in [
        ("html_500", Bitrix24Unavailable),
        ("internal_error", Bitrix24Unavailable),
        ("overload", Bitrix24Blocked),
        ("query_limit", Bitrix24Throttled),
        ("operation_time_limit", Bitrix24OperationTimeLimit),
    ]:
        httpx.put(control(box, "knobs"), json={"fault": fault, "fault_next": 1})
        with pytest.raises(kind) as raised:
            client.deal_list()
        assert isinstance(raised.value, TransientError) != isinstance(raised.value, PermanentError), fault
    with pytest.raises(ValueError, match="webhook URL"):
        Bitrix24Client("portal.bitrix24.ru")


def test_the_portal_bucket_answers_503_when_full(box: Sandbox, webhook: str) -> None:
    httpx.put(control(box, "limits"), json={"bucket_size": 5, "drain_per_s": 0.5})
    answers = [httpx.post(webhook + "crm.deal.list.json", json={}) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [503]
    assert answers[-1].json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    assert set(answers[0].json()["time"]) >= {
        "start",
        "finish",
        "duration",
        "operating_reset_at",
        "operating",
    }
    # A batch costs one per command, not one.
    httpx.put(control(box, "limits"), json={"bucket_size": 5, "drain_per_s": 0.5})
    cmd = {str(i): "crm.deal.list" for i in range(6)}
    assert httpx.post(webhook + "batch.json", json={"cmd": cmd}).status_code == 503


def test_throttling_is_retried_with_backoff_then_raised_for_the_task_to_defer(
    box: Sandbox, webhook: str
) -> None:
    sleeps = Sleeps()
    client = Bitrix24Client(webhook, retries=2, backoff_s=0.5, max_wait_s=2.0, sleep=sleeps)
    httpx.put(control(box, "knobs"), json={"fault": "query_limit", "fault_next": 2})
    assert client.deal_list().total == 0
    assert sleeps == [0.5, 1.0]

    httpx.put(control(box, "knobs"), json={"fault": "query_limit", "fault_next": 3})
    with pytest.raises(Bitrix24Throttled) as raised:
        client.deal_list()
    assert isinstance(raised.value, RateLimited) and raised.value.code == "QUERY_LIMIT_EXCEEDED"

    # OPERATION_TIME_LIMIT blocks the method for minutes: no point sleeping in the worker.
    sleeps.clear()
    httpx.put(control(box, "knobs"), json={"fault": "operation_time_limit", "fault_next": 1})
    with pytest.raises(Bitrix24OperationTimeLimit) as blocked:
        client.deal_list()
    assert blocked.value.retry_after_s == 60.0 and sleeps == []


def test_every_call_is_recorded_with_the_webhook_code_masked(webhook: str) -> None:
    records: list[Exchange] = []
    client = Bitrix24Client(webhook, recorder=records.append)
    client.deal_add({"TITLE": "x"}, key="payments:7")
    with pytest.raises(Bitrix24NotFound):
        client.deal_get(99)
    assert [(r.system, r.operation, r.response_status, r.business_key) for r in records] == [
        ("bitrix24", "crm.deal.add", 200, "payments:7"),
        ("bitrix24", "crm.deal.get", 400, None),
    ]
    assert all(WEBHOOK_CODE not in (r.url or "") and "/rest/1/***/" in (r.url or "") for r in records)
    assert '"Not found"' in (records[1].response_body or "")


def test_local_limiter_mirrors_the_bucket_and_keeps_reservations() -> None:
    now = [100.0]
    limiter = LocalRateLimiter(Bucket(rate_per_s=2, burst=3), clock=lambda: now[0])
    assert [limiter.reserve().granted for _ in range(3)] == [True] * 3
    assert limiter.reserve(max_wait_s=0).wait_s == pytest.approx(0.5)
    slot = limiter.reserve(max_wait_s=0, key="row:1")
    assert not slot.granted and slot.wait_s == pytest.approx(0.5)
    later = limiter.reserve(max_wait_s=0, key="row:2")
    assert later.wait_s == pytest.approx(1.0)  # queued behind row:1, not beside it
    assert not limiter.reserve(max_wait_s=0, key="row:1").granted  # early: still waiting
    now[0] += 0.5
    assert limiter.reserve(max_wait_s=0, key="row:1").granted  # its own slot, not a new place in line
    assert limiter.reserve(max_wait_s=0).wait_s == pytest.approx(1.0)  # behind row:2's reservation

    fresh = LocalRateLimiter(Bucket(rate_per_s=2, burst=3), clock=lambda: now[0])
    fresh.saturate()  # the portal said 503: the bucket is full now
    assert fresh.reserve(max_wait_s=0).wait_s == pytest.approx(0.5)


_CALLER = """
import sys, redis
from integrations.bitrix24 import Bitrix24Client
from integrations.ratelimit import Bucket
from tasks.machinery.ratelimit import RedisRateLimiter
webhook, broker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
limiter = RedisRateLimiter(redis.Redis.from_url(broker), "bitrix24:test", Bucket(rate_per_s=20, burst=6))
client = Bitrix24Client(webhook, limiter=limiter, max_wait_s=10, retries=0)
for _ in range(n):
    client.deal_list()
"""


def test_the_limit_holds_across_processes(box: Sandbox, webhook: str) -> None:
    httpx.put(control(box, "limits"), json={"bucket_size": 10, "drain_per_s": 20})
    argv = [sys.executable, "-c", _CALLER, webhook, os.environ["OBMEN_BROKER_URL"], "30"]
    started = time.monotonic()
    callers = [subprocess.Popen(argv, cwd=ROOT) for _ in range(2)]
    assert [c.wait(timeout=60) for c in callers] == [0, 0]
    elapsed = time.monotonic() - started
    log = box.emulator("bitrix24").log.since()
    assert [e.status for e in log] == [200] * 60  # not one 503: both processes kept to one budget
    # 6 at once (a margin below the portal's 10), then 20/s: the other 54 calls need 2.7 s,
    # however many processes make them.
    assert elapsed >= 2.6


def test_redis_limiter_reservations_are_shared(obmen_app) -> None:
    bucket = Bucket(rate_per_s=1, burst=2)
    a, b = (
        RedisRateLimiter(redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"]), "t", bucket) for _ in range(2)
    )
    assert a.reserve().granted and b.reserve().granted
    assert not a.reserve(max_wait_s=0).granted
    first = b.reserve(max_wait_s=0, key="x")
    second = a.reserve(max_wait_s=0, key="y")
    assert (first.granted, second.granted) == (False, False)
    assert second.wait_s == pytest.approx(first.wait_s + 1, abs=0.05)
    again = a.reserve(max_wait_s=0, key="x")  # the reservation is found by either process
    assert not again.granted and again.wait_s == pytest.approx(first.wait_s, abs=0.05)
    assert b.reserve(max_wait_s=5, key="x").granted
    b.saturate()
    assert a.reserve(max_wait_s=0).wait_s >= 1.0


def test_php_query_parser() -> None:
    assert parse_php_query("a[b][0]=x&a[b][1]=y&c=1&d[]=p&d[]=q") == {
        "a": {"b": ["x", "y"]},
        "c": "1",
        "d": ["p", "q"],
    }


def test_a_public_client_library_works_unchanged(box: Sandbox, webhook: str) -> None:
    """fast_bitrix24 (leshchenko1979/fast_bitrix24): its paging runs through batch, its throttle is its own."""
    from fast_bitrix24 import Bitrix

    ids = httpx.post(
        control(box, "deals"), json=[{"TITLE": f"Deal {i}", "OPPORTUNITY": i} for i in range(130)]
    ).json()
    bx = Bitrix(webhook, verbose=False)
    deals = bx.get_all("crm.deal.list", {"select": ["ID", "TITLE"], "filter": {">=OPPORTUNITY": 10}})
    assert sorted(int(d["ID"]) for d in deals) == ids[10:]
    bx.call("crm.deal.update", [{"id": ids[0], "fields": {"STAGE_ID": "UC_PAID"}}])
    got = bx.get_by_ID("crm.deal.get", [ids[0], ids[1]])
    stages = {
        int(k): v["STAGE_ID"]
        for k, v in (got.items() if isinstance(got, dict) else [(d["ID"], d) for d in got])
    }
    assert stages == {ids[0]: "UC_PAID", ids[1]: "NEW"}

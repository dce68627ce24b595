"""Payments under faults, with real worker processes: kill -9 mid-burst, Redis down, Postgres down."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
import redis
from sqlalchemy import create_engine, func, select, text, update

from models.base import utcnow
from models.db import session_scope
from models.outbox import Outbox
from models.payments import DealPaidMark, Payment, PaymentAllocation, SubscriberBalance
from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.harness import SandboxClock
from sandbox.server import Sandbox
from tasks.machinery.outbox import relay_all
from tasks.machinery.sweeper import sweep
from tests.harness.bank import SECRETS_ENV, Bank, bank_settings, payment, seed_subscribers
from tests.harness.gateway import GatewayThread
from tests.harness.processes import (
    OBMEN,
    PostgresServer,
    Process,
    RedisServer,
    free_port,
    obmen,
    start_worker,
)
from tests.harness.waiting import wait_for

FAST_PORTAL = {"OBMEN_BITRIX24_RATE_PER_S": "2000", "OBMEN_BITRIX24_BURST": "500"}


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox([Bitrix24Emulator(SandboxClock())]) as sandbox:
        yield sandbox


def count(*where: object, model: type = Payment) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


def test_kill_9_of_a_worker_during_a_burst_of_1000_payments(
    box: Sandbox,
    obmen_app,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = 1000
    portal = f"{box.url}/_sandbox/bitrix24"
    box.emulator("bitrix24").reset()
    httpx.put(f"{portal}/limits", json={"bucket_size": 5000, "drain_per_s": 5000})
    inns = seed_subscribers(n, first_deal=10_000)
    httpx.post(f"{portal}/deals", json=[{"ID": 10_000 + i} for i in range(n)])
    env = {"OBMEN_BANK_HMAC_SECRETS": SECRETS_ENV, **box.client_settings(), **FAST_PORTAL}
    with bank_settings(monkeypatch, **env), GatewayThread() as gateway:
        first = start_worker(env=env, concurrency=2)
        second: Process | None = None
        try:
            bank = Bank(gateway.url)
            with ThreadPoolExecutor(16) as pool:
                answers = pool.map(
                    lambda i: bank.pay(payment(inns[i], transaction_id=f"BURST-{i}")).status_code, range(n)
                )
                statuses = []
                for i, status in enumerate(answers):
                    statuses.append(status)
                    if i == n // 3:
                        wait_for(
                            lambda: count(Payment.status == "posted") >= 100,
                            timeout=60,
                            what="posting to be under way",
                        )
                        first.kill(signal.SIGKILL)  # the whole worker: main process and pool children
                        second = start_worker(env=env, concurrency=2)
            assert statuses == [201] * n
            assert second is not None
            # What the killed worker held stays unacked in Redis until the visibility timeout; the
            # sweeper re-drives those rows from Postgres. Wait until the rest is consumed, then sweep.
            # The killed worker also took outbox rows down with it (committed, never published):
            # relaying them is beat's `outbox.relay`, run here in its place.
            broker = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])

            def consumed() -> bool:
                relay_all()
                return (
                    count(Outbox.published_at.is_(None), model=Outbox) == 0
                    and broker.llen("payments") == 0
                    and broker.llen("crm") == 0
                )

            wait_for(consumed, timeout=240, interval=1, what="the burst to be consumed")
            with session_scope() as s:
                for model in (Payment, DealPaidMark):
                    s.execute(
                        update(model)
                        .where(model.status.in_(["received", "pending"]))
                        .values(updated_at=utcnow().replace(year=2020))
                    )
            sweep()
            relay_all()
            wait_for(lambda: count(Payment.status == "posted") == n, timeout=240, what="every payment posted")
            wait_for(
                lambda: count(DealPaidMark.status == "done", model=DealPaidMark) == n,
                timeout=90,
                what="every deal marked",
            )
        finally:
            first.kill()
            if second is not None:
                second.stop()
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == n
        assert s.scalar(select(func.count()).select_from(PaymentAllocation)) == n  # none allocated twice
        assert s.scalar(select(func.sum(PaymentAllocation.amount))) == Decimal("1500.00") * n
        assert s.scalar(select(func.count()).where(SubscriberBalance.debt != 0)) == 0
        assert s.scalar(select(func.count()).select_from(DealPaidMark)) == n
    history = httpx.get(f"{portal}/stage-history").json()
    paid_per_deal: dict[int, int] = {}
    for entry in history:
        if entry["to"] == "UC_PAID":
            paid_per_deal[entry["deal_id"]] = paid_per_deal.get(entry["deal_id"], 0) + 1
    assert len(paid_per_deal) == n and set(paid_per_deal.values()) == {1}


def test_redis_stopped_while_payments_arrive(monkeypatch: pytest.MonkeyPatch) -> None:
    own = RedisServer()
    own.start()
    port = free_port()
    env = {
        "OBMEN_BROKER_URL": own.url,
        "OBMEN_BROKER_SOCKET_TIMEOUT_S": "1",
        "OBMEN_BANK_HMAC_SECRETS": SECRETS_ENV,
    }
    gateway = Process([OBMEN, "gateway", "--port", str(port)], env=env)
    worker: Process | None = None
    try:
        bank = Bank(f"http://127.0.0.1:{port}")
        wait_for(lambda: _up(bank), timeout=30, what="the gateway")
        own.stop()
        started = time.monotonic()
        statuses = [
            bank.pay(payment("7707083893", transaction_id=f"NO-REDIS-{i}")).status_code for i in range(20)
        ]
        assert statuses == [201] * 20
        assert time.monotonic() - started < 20  # no answer waits for the broker
        assert count() == 20 and count(Payment.status == "received") == 20
        own.start()
        worker = start_worker(env=env)
        assert obmen("sweep", env=env).returncode == 0  # the relay publishes what the outage held back
        wait_for(lambda: count(Payment.status == "unallocated") == 20, timeout=60, what="all 20 posted")
    finally:
        gateway.stop()
        if worker is not None:
            worker.stop()
        own.close()


def _up(bank: Bank) -> bool:
    try:
        return bank.http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_postgres_stopped_answers_503_and_half_posts_nothing() -> None:
    from models.migrate import upgrade

    pg = PostgresServer()
    pg.start()
    upgrade(pg.url)
    port = free_port()
    gateway = Process(
        [OBMEN, "gateway", "--port", str(port)],
        env={"OBMEN_DATABASE_URL": pg.url, "OBMEN_BANK_HMAC_SECRETS": SECRETS_ENV},
    )
    try:
        bank = Bank(f"http://127.0.0.1:{port}")
        wait_for(lambda: _up(bank), timeout=30, what="the gateway")
        assert bank.pay(payment("7707083893", transaction_id="PG-1")).status_code == 201
        pg.stop()
        down = bank.pay(payment("7707083893", transaction_id="PG-2"))
        assert down.status_code == 503 and down.headers["retry-after"] == "5"
        assert bank.debt("7707083893").status_code == 503
        osmp = bank.osmp(
            command="pay", txn_id="77", txn_date="20261120101500", account="7707083893", sum="10.00"
        )
        assert osmp.status_code == 503 and "<result>1</result>" in osmp.text
        pg.start()
        assert bank.pay(payment("7707083893", transaction_id="PG-2")).status_code == 201  # the bank's retry
        assert bank.pay(payment("7707083893", transaction_id="PG-1")).status_code == 200
        engine = create_engine(pg.url)
        with engine.connect() as conn:
            payments = conn.execute(text("SELECT id, transaction_id FROM payments ORDER BY id")).all()
            steps = (
                conn.execute(text("SELECT kwargs FROM outbox WHERE task_name = 'payments.post'"))
                .scalars()
                .all()
            )
        engine.dispose()
        assert [tid for _, tid in payments] == ["PG-1", "PG-2"]
        # Each payment with the outbox row of its posting step, and nothing else.
        assert sorted(step["kwargs"]["id"] for step in steps) == [pid for pid, _ in payments]
    finally:
        gateway.stop()
        pg.close()

"""A planned-works mailing with real worker processes: the worker killed -9 while SMSC holds a send's
answer; the sweeper re-drives the row, the next worker asks SMSC before sending, and every subscriber
gets the notice exactly once."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, select, update

from models.db import session_scope
from models.master import Subscriber
from models.sms import DELIVERED, NEW, SmsMessage
from sandbox.server import Sandbox
from tasks.machinery.outbox import relay_all, set_dispatch_mode
from tasks.machinery.sweeper import sweep
from tasks.payments.entries import WorksArgs, announce_works
from tests.harness.processes import start_worker
from tests.harness.waiting import wait_for

N = 12


def delivered() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).where(SmsMessage.status == DELIVERED)) or 0


def test_a_worker_killed_mid_send_neither_loses_nor_doubles_a_message(
    smsc: str, box: Sandbox, obmen_app: Any
) -> None:
    phones = [f"7916200{i:04d}" for i in range(N)]
    with session_scope() as s:
        s.execute(
            insert(Subscriber),
            [
                {"inn": f"77000100{i:02d}", "name": f"А{i}", "phone": p, "line": "Л-1"}
                for i, p in enumerate(phones)
            ],
        )
    httpx.put(f"{smsc}/knobs", json={"extra": {"call_ms": 700}})
    env = {**box.client_settings(), "OBMEN_SMS_STATUS_INTERVAL_S": "1", "OBMEN_SMS_RATE_PER_S": "100"}
    set_dispatch_mode("inline")
    worker = start_worker(env=env, concurrency=1, pool="solo", queues="billing,sms")
    second = None
    try:
        starts = datetime.now(UTC) + timedelta(days=2)
        with session_scope() as s:
            announce_works.plain(
                s,
                WorksArgs.model_validate(
                    {
                        "number": "РР-K",
                        "line": "Л-1",
                        "text": "т",
                        "starts_at": starts,
                        "ends_at": starts + timedelta(hours=1),
                    }
                ),
            )
        stats = lambda: httpx.get(f"{smsc}/stats").json()  # noqa: E731
        wait_for(lambda: stats()["sends"] >= 3 and stats()["in_flight"] >= 1, what="a send held by SMSC")
        worker.kill(signal.SIGKILL)
        httpx.put(f"{smsc}/knobs", json={"extra": {"call_ms": 0}})
        second = start_worker(env=env, concurrency=1, pool="solo", queues="billing,sms")
        # The killed worker's message waits in Redis for the visibility timeout; the row is what
        # counts: the sweeper re-drives it once stale (made so here instead of waiting).
        wait_for(lambda: delivered() >= N - 1, timeout=60, what="the rest of the mailing")
        with session_scope() as s:
            s.execute(
                update(SmsMessage)
                .where(SmsMessage.status == NEW)
                .values(updated_at=datetime.now(UTC) - timedelta(hours=1))
            )
        assert sweep().get("sms.send") == 1
        relay_all()
        wait_for(lambda: delivered() == N, timeout=60, what="every notice delivered")
    finally:
        worker.kill()
        if second is not None:
            second.stop()
    taken = httpx.get(f"{smsc}/messages").json()
    assert sorted(m["phone"] for m in taken) == phones  # each once
    with session_scope() as s:
        assert {m.attempts for m in s.scalars(select(SmsMessage))} == {0}

"""The outbox commits with its business change, and concurrent relays publish each row once."""

from __future__ import annotations

import json
import os
import threading

import pytest
import redis
from sqlalchemy import func, select

from models.canary import Canary
from models.db import session_scope
from models.outbox import Outbox
from tasks.machinery.canary import start_canary
from tasks.machinery.outbox import enqueue, relay, set_dispatch_mode


@pytest.fixture(autouse=True)
def _no_publish_on_commit(obmen_app):
    set_dispatch_mode("off")
    yield
    set_dispatch_mode("inline")


def _counts() -> tuple[int, int]:
    with session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(Canary)) or 0,
            s.scalar(select(func.count()).select_from(Outbox)) or 0,
        )


def _queued(queue: str = "ops") -> list[dict]:
    client = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    return [json.loads(m) for m in client.lrange(queue, 0, -1)]


def test_business_row_and_outbox_row_commit_together() -> None:
    with session_scope() as s:
        canary = start_canary(s)
    assert _counts() == (1, 1)
    with session_scope() as s:
        row = s.scalars(select(Outbox)).one()
        assert row.task_name == "ops.canary.run"
        assert row.kwargs["kwargs"] == {"id": canary.id}


def test_rollback_discards_both() -> None:
    with pytest.raises(RuntimeError), session_scope() as s:
        start_canary(s)
        s.flush()
        raise RuntimeError("the business change failed after the outbox row was written")
    assert _counts() == (0, 0)


def test_two_relays_at_once_publish_each_row_once() -> None:
    with session_scope() as s:
        for i in range(300):
            enqueue(s, "ops.canary.run", {"id": i + 1})
    barrier = threading.Barrier(2)
    published: list[int] = []

    def run() -> None:
        barrier.wait()
        total = 0
        while (n := relay(limit=7)) > 0:
            total += n
        published.append(total)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(published) == 300
    messages = _queued()
    ids = [m["headers"]["id"] for m in messages]
    assert len(ids) == 300
    assert len(set(ids)) == 300
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Outbox.published_at.is_(None))) == 0


def test_a_delay_beyond_the_horizon_stays_a_row() -> None:
    with session_scope() as s:
        enqueue(s, "ops.canary.run", {"id": 1}, delay_s=3600)
        enqueue(s, "ops.canary.run", {"id": 2}, delay_s=30)
    assert relay() == 1
    [message] = _queued()
    assert message["headers"]["eta"] is not None
    with session_scope() as s:
        waiting = s.scalars(select(Outbox).where(Outbox.published_at.is_(None))).one()
        assert waiting.kwargs["kwargs"] == {"id": 1}

"""The outbox commits with its business change (a savepoint is no commit), and concurrent relays
publish each row once."""

from __future__ import annotations

import json
import os
import threading

import pytest
import redis
from celery import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from models.canary import Canary
from models.db import session_scope
from models.outbox import Outbox
from tasks.machinery import outbox
from tasks.machinery.canary import start_canary
from tasks.machinery.outbox import enqueue, enqueue_many, relay, set_dispatch_mode, task_id_for


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
        enqueue(s, "ops.canary.run", {"id": 2}, delay_s=5)
    assert relay() == 1
    [message] = _queued()
    assert message["headers"]["eta"] is not None
    with session_scope() as s:
        waiting = s.scalars(select(Outbox).where(Outbox.published_at.is_(None))).one()
        assert waiting.kwargs["kwargs"] == {"id": 1}


def test_a_row_due_beyond_the_horizon_is_left_to_the_relay_at_commit(monkeypatch) -> None:
    """Publishing it right after the commit would cost a transaction that claims nothing."""
    dispatched: list[int] = []
    monkeypatch.setattr(outbox, "dispatch", dispatched.extend)
    with session_scope() as s:
        later = enqueue(s, "ops.canary.run", {"id": 1}, delay_s=3600)
        soon = enqueue(s, "ops.canary.run", {"id": 2}, delay_s=5)
        now = enqueue(s, "ops.canary.run", {"id": 3})
    assert dispatched == [soon.id, now.id]
    assert relay() == 2
    with session_scope() as s:
        waiting = s.get(Outbox, later.id)
        assert waiting is not None and waiting.published_at is None


def _published() -> list[int]:
    return sorted(m["headers"]["id"] for m in _queued())


def _wait_in_savepoints(session: Session) -> None:
    """Enqueue canary 1 in the outer transaction and 2 in a released savepoint, after another one."""
    enqueue(session, "ops.canary.run", {"id": 1})
    with session.begin_nested():
        session.execute(select(1))
    with session.begin_nested():
        enqueue(session, "ops.canary.run", {"id": 2})
    with session.begin_nested():
        session.execute(select(1))


def test_a_released_savepoint_publishes_nothing_before_the_outer_commit() -> None:
    set_dispatch_mode("inline")
    with session_scope() as s:
        _wait_in_savepoints(s)
        assert _queued() == []
        ids = [row.id for row in s.scalars(select(Outbox).order_by(Outbox.id))]
    # Published by the outer commit itself, not left for the beat relay.
    assert _published() == [task_id_for(i) for i in ids]
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Outbox.published_at.is_(None))) == 0


def test_a_rolled_back_savepoint_takes_back_only_its_own_messages() -> None:
    set_dispatch_mode("inline")
    with session_scope() as s:
        kept = enqueue(s, "ops.canary.run", {"id": 1})
        with pytest.raises(RuntimeError), s.begin_nested():
            enqueue(s, "ops.canary.run", {"id": 2})
            with s.begin_nested():  # released into the savepoint that then rolls back
                enqueue_many(s, "ops.canary.run", [{"id": 3}, {"id": 4}])
            raise RuntimeError("the savepoint's change failed")
        with s.begin_nested():
            after = enqueue_many(s, "ops.canary.run", [{"id": 5}])
        s.flush()
        expected = sorted([task_id_for(kept.id), *(task_id_for(i) for i in after)])
    assert _published() == expected
    assert relay() == 0
    assert _published() == expected
    with session_scope() as s:
        assert sorted(row["id"] for row in s.scalars(select(Outbox.kwargs["kwargs"]))) == [1, 5]


def test_a_failed_flush_in_a_savepoint_keeps_the_outer_messages() -> None:
    set_dispatch_mode("inline")
    with session_scope() as s:
        kept = enqueue(s, "ops.canary.run", {"id": 1})
        s.flush()
        with pytest.raises(DataError), s.begin_nested():
            enqueue(s, "ops.canary.run", {"id": 2})
            s.add(Outbox(task_name="x" * 201, kwargs={}))  # too long for the column: the flush fails
            s.flush()
        kept_id = kept.id
    assert _published() == [task_id_for(kept_id)]


def test_an_outer_rollback_publishes_nothing() -> None:
    set_dispatch_mode("inline")
    with pytest.raises(RuntimeError), session_scope() as s:
        _wait_in_savepoints(s)
        enqueue_many(s, "ops.canary.run", [{"id": 3}])
        raise RuntimeError("the business change failed after its savepoints")
    assert _queued() == []
    assert relay() == 0
    assert _counts() == (0, 0)


def test_a_signature_naming_its_task_id_is_published_under_it_without_a_flush() -> None:
    """A caller may keep the message's id before the row is written (the SEP poll's token); the
    others are published as ``outbox-<row id>``, and enqueueing flushes nothing of the caller's."""
    with session_scope() as s:
        canary = start_canary(s)  # its outbox row: published under the row's id
        canary.status = "checked"
        named = enqueue(s, current_app.signature("ops.canary.run", kwargs={"id": 2}, task_id="token-2"))
        enqueue(s, "ops.canary.run", {"id": 3}, delay_s=1)  # asks the database clock
        assert named.id is None and canary in s.dirty  # nothing was flushed to enqueue
    with session_scope() as s:
        rows = {row.kwargs["kwargs"]["id"]: row.id for row in s.scalars(select(Outbox))}
    assert relay() == 3
    assert _published() == sorted([task_id_for(rows[canary.id]), "token-2", task_id_for(rows[3])])

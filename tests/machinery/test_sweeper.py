"""The one sweeper: a row past its due time that no step holds is re-driven after the grace (not the
stale time), never a row whose due time lies ahead or whose step holds it; its queries stay on the
partial index; old log rows are purged in batches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, insert, select, text, update

from config.settings import get_settings
from models.base import utcnow
from models.canary import Canary
from models.db import engine_for, session_scope
from models.dead_letters import DeadLetter
from models.outbox import Outbox
from tasks.machinery.canary import run_canary, start_canary
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.sweeper import purge, sweep


@pytest.fixture(autouse=True)
def _rows_only(obmen_app) -> Iterator[None]:
    set_dispatch_mode("off")  # messages stay outbox rows: the test reads what the sweeper enqueued
    yield
    set_dispatch_mode("inline")


def _canary() -> int:
    with session_scope() as s:
        return start_canary(s).id


def _due(cid: int, seconds_ago: float) -> None:
    with session_scope() as s:
        s.execute(
            update(Canary)
            .where(Canary.id == cid)
            .values(next_step_at=utcnow() - timedelta(seconds=seconds_ago), updated_at=utcnow())
        )


def _mark_published() -> None:
    with session_scope() as s:
        s.execute(update(Outbox).values(published_at=func.now()))


def test_enqueueing_a_step_stamps_its_row_and_running_it_clears_the_stamp() -> None:
    cid = _canary()
    with session_scope() as s:
        canary = s.get(Canary, cid)
        assert canary is not None and canary.next_step_at is not None
    run_canary.run(cid)
    with session_scope() as s:
        canary = s.get(Canary, cid)
        assert canary is not None and (canary.status, canary.next_step_at) == ("done", None)


def test_a_row_past_its_due_time_is_redriven_after_the_grace_not_the_stale_time() -> None:
    lost, ahead, fresh = _canary(), _canary(), _canary()
    _mark_published()  # its message went out (and was lost with a worker)
    grace = get_settings().lost_after_s
    _due(lost, grace + 5)
    _due(ahead, -600)  # a poll due in ten minutes: waiting, not lost, however old the row
    _due(fresh, grace - 10)
    assert sweep() == {"ops.canary.run": 1}
    with session_scope() as s:
        redriven = s.scalars(select(Outbox.kwargs).where(Outbox.published_at.is_(None))).all()
    assert [k["kwargs"]["id"] for k in redriven] == [lost]
    assert all(k["options"]["queue"] == "ops" for k in redriven)


def test_a_row_is_not_judged_lost_while_its_step_holds_it_or_its_queue_is_not_drained() -> None:
    held, queued = _canary(), _canary()
    _mark_published()
    for cid in (held, queued):
        _due(cid, get_settings().lost_after_s + 5)
    broker = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    broker.lpush("ops", b"{}")  # a message waiting in line: the row may be behind it
    assert sweep() == {}
    broker.delete("ops")
    with engine_for().connect() as conn, conn.begin():
        conn.execute(text("SELECT id FROM canaries WHERE id = :id FOR UPDATE"), {"id": held})
        assert sweep() == {"ops.canary.run": 1}  # the held row is skipped, the other re-driven


def test_the_lost_row_query_reads_the_partial_index() -> None:
    with session_scope() as s:
        s.execute(
            insert(Canary),
            [{"status": "done", "fault_times": 0, "executions": 1, "queue": "ops"} for _ in range(20_000)],
        )
        s.execute(text("ANALYZE canaries"))
        plan = "\n".join(
            s.execute(
                text(
                    "EXPLAIN SELECT * FROM canaries WHERE next_step_at < now() - interval '30 seconds'"
                    " AND status IN ('pending') AND parked_at IS NULL ORDER BY next_step_at LIMIT 1000"
                    " FOR UPDATE SKIP LOCKED"
                )
            ).scalars()
        )
    assert "ix_canaries_next_step_at" in plan, plan


def test_old_log_rows_are_purged_in_batches_and_unpublished_outbox_rows_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OBMEN_PURGE_BATCH", "7")
    get_settings.cache_clear()
    try:
        old = utcnow() - timedelta(days=91)
        with session_scope() as s:
            s.execute(
                insert(DeadLetter),
                [{"task_name": "x", "payload": {}, "error": "e", "created_at": old} for _ in range(30)],
            )
            s.execute(insert(DeadLetter), [{"task_name": "x", "payload": {}, "error": "e"}])
            s.execute(
                insert(Outbox),
                [
                    {"task_name": "ops.noop", "kwargs": {}, "created_at": old, "published_at": old},
                    {"task_name": "ops.noop", "kwargs": {}, "created_at": old},
                ],
            )
        assert purge() == {"dead_letters": 30, "outbox": 1}
        with session_scope() as s:
            assert s.scalar(select(func.count()).select_from(DeadLetter)) == 1
            assert s.scalar(select(func.count()).select_from(Outbox)) == 1
    finally:
        get_settings.cache_clear()

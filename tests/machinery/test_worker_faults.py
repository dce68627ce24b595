"""Real worker processes: killed mid-step, a step that keeps failing, re-drive."""

from __future__ import annotations

import json
import signal

import pytest
from sqlalchemy import select, update

from models.base import utcnow
from models.canary import Canary
from models.db import session_scope
from tasks.machinery.canary import start_canary
from tasks.machinery.outbox import relay, set_dispatch_mode
from tests.harness.processes import obmen, start_worker
from tests.harness.waiting import wait_for


@pytest.fixture(autouse=True)
def _publish_inline(obmen_app):
    set_dispatch_mode("inline")


def _canary(cid: int) -> Canary:
    with session_scope() as s:
        row = s.get(Canary, cid)
        assert row is not None
        return row


def test_kill_9_mid_step_then_restart_gives_the_effect_exactly_once() -> None:
    with session_scope() as s:
        cid = start_canary(s, fault="hold", fault_times=4).id
    worker = start_worker(concurrency=1)
    try:
        # The claim commits the attempt before the step's work starts: the step is in progress.
        wait_for(lambda: _canary(cid).attempts == 1, what="the step to start")
        worker.kill(signal.SIGKILL)
    finally:
        worker.stop()
    row = _canary(cid)
    assert (row.status, row.executions) == ("pending", 0)

    # The message died unacked with the worker; after a restart the sweeper finds the row stale.
    with session_scope() as s:
        s.execute(update(Canary).where(Canary.id == cid).values(updated_at=utcnow().replace(year=2020)))
    worker = start_worker(concurrency=1)
    try:
        swept = obmen("sweep")
        assert swept.returncode == 0, swept.stderr
        assert json.loads(swept.stdout.strip().splitlines()[-1]) == {"ops.canary.run": 1}
        wait_for(lambda: _canary(cid).status == "done", timeout=40, what="the re-driven step")
        # The original message comes back too once Redis restores it: it must change nothing.
        with session_scope() as s:
            from tasks.machinery.outbox import enqueue

            enqueue(s, "ops.canary.run", {"id": cid})
        relay()
        wait_for(lambda: worker.text().count("succeeded") >= 2, what="the duplicate delivery")
    finally:
        worker.stop()
    row = _canary(cid)
    assert (row.status, row.executions) == ("done", 1)


def test_a_step_that_always_fails_is_parked_and_redrive_runs_it_again() -> None:
    with session_scope() as s:
        cid = start_canary(s, fault="transient", fault_times=99).id
    worker = start_worker()
    try:
        row = wait_for(lambda: (r := _canary(cid)).parked_at is not None and r, timeout=60, what="parking")
        assert row.attempts == 3  # OBMEN_MAX_ATTEMPTS in the test environment
        assert "transient fault on attempt 3" in (row.last_error or "")
        assert row.status == "pending"

        # Ops fix the cause, then re-drive.
        with session_scope() as s:
            s.execute(update(Canary).where(Canary.id == cid).values(fault=None))
        result = obmen("redrive", "--register", "canaries", "--id", str(cid))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1])["redriven"] == [cid]
        row = wait_for(
            lambda: (r := _canary(cid)).status == "done" and r, timeout=30, what="the re-driven step"
        )
        assert row.executions == 1 and row.parked_at is None
    finally:
        worker.stop()


def test_redrive_of_an_unknown_register_is_a_clear_error() -> None:
    result = obmen("redrive", "--register", "no_such_table")
    assert result.returncode != 0
    assert "no step register called 'no_such_table'" in result.stderr


def test_many_canaries_through_a_real_worker() -> None:
    with session_scope() as s:
        ids = [start_canary(s).id for _ in range(50)]
    worker = start_worker()
    try:
        relay()
        wait_for(
            lambda: all(_canary(i).status == "done" for i in ids), timeout=60, what="all canaries to complete"
        )
    finally:
        worker.stop()
    with session_scope() as s:
        assert set(s.scalars(select(Canary.executions))) == {1}

"""The step decorator without Celery: attempts counted, retry policy, parking, quiet returns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from integrations.errors import PermanentError
from models.canary import Canary
from models.db import get_sessionmaker, session_scope, without_flush_wait
from models.dead_letters import DeadLetter
from models.outbox import Outbox
from tasks.machinery.canary import run_canary, start_canary
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import Outcome, _claim_rows, entry, run_step
from tests.harness.waiting import wait_for


@pytest.fixture(autouse=True)
def _no_publish(obmen_app):
    set_dispatch_mode("off")
    yield
    set_dispatch_mode("inline")


def _canary(**fields: object) -> int:
    with session_scope() as s:
        row = Canary(**fields)
        s.add(row)
        s.flush()
        return row.id


def _load(canary_id: int) -> Canary:
    with session_scope() as s:
        row = s.get(Canary, canary_id)
        assert row is not None
        return row


SPEC = run_canary.spec


def test_success_sets_the_effect_once_and_a_second_delivery_is_quiet() -> None:
    cid = _canary()
    assert run_step(SPEC, cid) is Outcome.DONE
    assert run_step(SPEC, cid) is Outcome.NOTHING_TO_DO
    row = _load(cid)
    assert (row.status, row.executions, row.attempts) == ("done", 1, 0)


def test_transient_errors_are_retried_then_parked_after_the_limit() -> None:
    cid = _canary(fault="transient", fault_times=99)
    assert run_step(SPEC, cid) is Outcome.RETRY
    row = _load(cid)
    assert row.attempts == 1 and row.parked_at is None
    assert "transient fault on attempt 1" in (row.last_error or "")
    assert run_step(SPEC, cid) is Outcome.RETRY
    assert run_step(SPEC, cid) is Outcome.PARKED  # OBMEN_MAX_ATTEMPTS=3 in tests
    row = _load(cid)
    assert row.parked_at is not None and row.attempts == 3
    assert "attempt 3" in (row.last_error or "")
    assert run_step(SPEC, cid) is Outcome.NOTHING_TO_DO


def test_a_permanent_error_parks_at_once() -> None:
    cid = _canary(fault="permanent")
    assert run_step(SPEC, cid) is Outcome.PARKED
    row = _load(cid)
    assert row.attempts == 1 and row.parked_at is not None
    assert row.last_error is not None and row.last_error.startswith("PermanentError: drill")


def test_a_row_whose_attempts_ran_out_in_crashes_is_parked_without_running() -> None:
    # Three deliveries died mid-step (each counted its attempt, none recorded an error).
    cid = _canary(attempts=3)
    assert run_step(SPEC, cid) is Outcome.PARKED
    row = _load(cid)
    assert row.executions == 0
    assert "worker lost mid-step" in (row.last_error or "")


def test_a_missing_row_is_reported_not_raised() -> None:
    assert run_step(SPEC, 424242) is Outcome.MISSING


def test_a_claim_counts_the_attempt_before_the_work_in_a_commit_not_waiting_for_its_flush() -> None:
    cid = _canary(fault="transient", fault_times=99)
    with session_scope() as s:
        s.execute(select(Canary).where(Canary.id == cid).with_for_update())
        # In this transaction, as in the claim's: only the rows the statement finds set it.
        found = s.execute(without_flush_wait(select(Canary.id).where(Canary.id == cid), "postgresql")).all()
        assert found == [(cid,)] and s.scalar(text("SHOW synchronous_commit")) == "off"
    with session_scope() as s:
        none = s.execute(without_flush_wait(select(Canary.id).where(Canary.id == -1), "postgresql")).all()
        assert none == [] and s.scalar(text("SHOW synchronous_commit")) == "on"
    attempts, refused = _claim_rows(SPEC, [cid, 424242], None)
    assert attempts == {cid: 1} and refused == {Outcome.MISSING: 1}
    assert _load(cid).attempts == 1  # committed before any work


def test_a_claim_waits_for_a_row_another_transaction_holds_and_sees_what_it_committed() -> None:
    cid = _canary()
    holder = get_sessionmaker()()
    row = holder.get(Canary, cid, with_for_update=True)
    assert row is not None
    claim = ThreadPoolExecutor(1).submit(_claim_rows, SPEC, [cid], None)
    wait_for(lambda: _waiting_on_a_lock() > 0, timeout=10, what="the claim to wait for the row lock")
    row.status = "done"  # the step's work, committed by whoever held it
    holder.commit()
    holder.close()
    assert claim.result(timeout=10) == ({}, {Outcome.NOTHING_TO_DO: 1})
    assert _load(cid).attempts == 0


def _waiting_on_a_lock() -> int:
    with session_scope() as s:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        return int(s.scalar(text(query)) or 0)


@pytest.mark.parametrize(
    "kwargs",
    [{"id": "seven"}, {}, {"id": 1, "extra": True}, {"id": 1.5}],
)
def test_bad_arguments_become_dead_letters(kwargs: dict) -> None:
    assert run_canary.task(**kwargs) == "rejected"
    with session_scope() as s:
        [letter] = s.scalars(select(DeadLetter)).all()
        assert letter.task_name == "ops.canary.run"
        assert letter.payload["kwargs"] == kwargs
        assert "validation error" in letter.error.lower()


def test_positional_arguments_are_rejected() -> None:
    assert run_canary.task(5) == "rejected"
    with session_scope() as s:
        assert "keyword arguments only" in s.scalars(select(DeadLetter)).one().error


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fault: str | None = None
    fault_times: int = 0


@entry("test.start_canary", args=_Args)
def _start_from_entry(session: Session, args: _Args) -> int:
    """A public entry: records the request as a row and starts its step through the outbox."""
    if args.fault == "explode":
        raise PermanentError("the request was refused")
    return start_canary(session, fault=args.fault, fault_times=args.fault_times).id


def test_an_entry_validates_records_and_enqueues() -> None:
    cid = _start_from_entry.task(fault="transient", fault_times=1)
    row = _load(cid)
    assert (row.status, row.fault, row.fault_times) == ("pending", "transient", 1)
    with session_scope() as s:
        assert s.scalars(select(Outbox.task_name)).all() == ["ops.canary.run"]


def test_an_entry_with_bad_arguments_or_a_refused_request_is_a_dead_letter() -> None:
    assert _start_from_entry.task(fault_times="many") == "rejected"
    assert _start_from_entry.task(fault="explode") == "rejected"
    with session_scope() as s:
        errors = [d.error for d in s.scalars(select(DeadLetter).order_by(DeadLetter.id))]
        assert s.scalar(select(func.count()).select_from(Canary)) == 0
    assert "fault_times" in errors[0]
    assert errors[1] == "PermanentError: the request was refused"

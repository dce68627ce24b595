"""Batched steps: one message of up to 50 ids, one claim and one work commit, each row's guarantees kept."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import pytest
import redis
from celery import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from integrations.errors import TransientError
from models.canary import Canary
from models.db import session_scope
from models.dead_letters import DeadLetter
from models.outbox import Outbox
from tasks.machinery.canary import run_canary
from tasks.machinery.outbox import (
    BATCH_MAX,
    BATCHED_STEPS,
    REQUEST_IDS_HEADER,
    STEP_REGISTERS,
    TASK_IDS_HEADER,
    enqueue,
    relay,
    set_dispatch_mode,
    task_id_for,
)
from tasks.machinery.request_id import HEADER, bound_request_id
from tasks.machinery.steps import STEPS, Outcome, Step, run_steps, step

NAME = "test.canary_batch"


@pytest.fixture(scope="module")
def batched() -> Iterator[Step[Canary]]:
    """The canary's work declared as a batched step, for this module only."""
    declared = step(NAME, model=Canary, statuses={"pending"}, batch=True)(run_canary.spec.fn)
    yield declared
    STEPS.pop(NAME)
    STEP_REGISTERS.pop(NAME)
    BATCHED_STEPS.discard(NAME)


@pytest.fixture(autouse=True)
def _no_publish(obmen_app: object) -> Iterator[None]:
    set_dispatch_mode("off")
    yield
    set_dispatch_mode("inline")


def _canaries(*faults: tuple[str | None, int]) -> list[int]:
    with session_scope() as s:
        rows = [Canary(fault=fault, fault_times=times) for fault, times in faults]
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def _row(canary_id: int) -> Canary:
    with session_scope() as s:
        row = s.get(Canary, canary_id)
        assert row is not None
        return row


def test_each_row_works_in_its_own_savepoint_and_each_failure_is_settled_as_for_one(
    batched: Step[Canary],
) -> None:
    ok = _canaries((None, 0), (None, 0), (None, 0))
    [transient, permanent, finished] = _canaries(("transient", 99), ("permanent", 0), (None, 0))
    assert batched.run(finished) is Outcome.DONE

    outcomes = batched.run_batch([*ok, transient, permanent, finished, 987654])

    assert outcomes == {
        Outcome.DONE: 3,
        Outcome.RETRY: 1,
        Outcome.PARKED: 1,
        Outcome.NOTHING_TO_DO: 1,
        Outcome.MISSING: 1,
    }
    for canary_id in ok:
        row = _row(canary_id)
        assert (row.status, row.executions, row.attempts) == ("done", 1, 0)
    failed = _row(transient)
    assert (failed.status, failed.attempts, failed.parked_at) == ("pending", 1, None)
    assert "transient fault on attempt 1" in (failed.last_error or "")
    assert _row(permanent).parked_at is not None
    with session_scope() as s:
        # The message served six other rows: the retry is a message of the row's own, after the countdown.
        [retry] = s.scalars(
            select(Outbox).where(Outbox.business_key == f"retry:canaries:{transient}:1")
        ).all()
        assert retry.kwargs["kwargs"] == {"id": transient}
        now = s.scalar(select(func.now()))
        assert now is not None and retry.not_before > now
        assert failed.next_step_at == retry.not_before

    again = batched.run_batch([*ok, permanent])
    assert again == {Outcome.NOTHING_TO_DO: 4}
    assert [_row(i).executions for i in ok] == [1, 1, 1]


def test_the_task_takes_ids_and_refuses_a_bad_batch_as_a_dead_letter(batched: Step[Canary]) -> None:
    ids = _canaries((None, 0), (None, 0))
    assert batched.task(ids=ids) == {"done": 2}
    assert batched.task(id=ids[0]) == "nothing_to_do"
    bad_batches: list[dict[str, object]] = [
        {"ids": []},
        {"ids": list(range(1, BATCH_MAX + 2))},
        {"ids": [1], "id": 1},
        {"ids": ["1"]},
    ]
    for bad in bad_batches:
        assert batched.task(**bad) == "rejected"
    # A step not declared ``batch`` keeps its one-row arguments.
    assert run_canary.task(ids=ids) == "rejected"
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 5


def _queued() -> list[dict]:
    client = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    messages = [json.loads(m) for m in client.lrange("ops", 0, -1)]
    client.close()
    return messages


def _enqueue(canary_id: int, request_id: str | None, delay_s: float = 0) -> None:
    with session_scope() as s:
        if request_id is None:
            enqueue(s, NAME, {"id": canary_id}, delay_s=delay_s)
            return
        with bound_request_id(request_id):
            enqueue(s, NAME, {"id": canary_id}, delay_s=delay_s)


def test_the_relay_sends_rows_due_together_as_one_message_carrying_each_request_id(
    batched: Step[Canary],
) -> None:
    ids = _canaries(*[(None, 0)] * (BATCH_MAX + 3))
    for n, canary_id in enumerate(ids[:-1]):
        _enqueue(canary_id, f"req-{n}" if n % 2 else None)
    _enqueue(ids[-1], "req-late", delay_s=5)  # due later than the window: a message of its own

    assert relay() == len(ids)

    messages = _queued()
    batches = [m for m in messages if m["headers"]["task"] == NAME]
    assert len(batches) == 3
    by_size = sorted(batches, key=lambda m: len(_kwargs(m).get("ids", [0])))
    late, rest, full = by_size
    assert _kwargs(late) == {"id": ids[-1]} and late["headers"]["eta"] is not None
    assert _kwargs(full)["ids"] == ids[:BATCH_MAX] and _kwargs(rest)["ids"] == ids[BATCH_MAX:-1]
    carried = full["headers"][REQUEST_IDS_HEADER]
    assert carried[:4] == [None, "req-1", None, "req-3"] and HEADER not in full["headers"]
    assert full["headers"]["eta"] is None

    # The worker's view of one of them: every row done, in one message.
    assert batched.task(**_kwargs(full)) == {"done": BATCH_MAX}


def _kwargs(message: dict) -> dict:
    _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return dict(kwargs)


def test_a_set_wise_batch_is_worked_in_one_call_and_a_failing_one_row_by_row() -> None:
    calls: list[list[int]] = []

    def run_all(session: object, canaries: list[Canary]) -> None:
        calls.append([canary.id for canary in canaries])
        for canary in canaries:
            run_canary.spec.fn(session, canary)

    name = "test.canary_set_wise"
    set_wise = step(name, model=Canary, statuses={"pending"}, batch=True, rerun=True, set_wise=True)(run_all)
    try:
        together = _canaries((None, 0), (None, 0))
        assert set_wise.run_batch(together) == {Outcome.DONE: 2}
        assert calls == [together]

        calls.clear()
        [ok, transient, other] = _canaries((None, 0), ("transient", 99), (None, 0))
        outcomes = set_wise.run_batch([ok, transient, other])
        assert outcomes == {Outcome.DONE: 2, Outcome.RETRY: 1}
        # The batch's call failed and was undone; then each row alone, so only the faulty one failed.
        assert calls == [[ok, transient, other], [ok], [transient], [other]]
        assert [_row(i).executions for i in (ok, other)] == [1, 1]
        assert (_row(transient).status, _row(transient).attempts) == ("pending", 1)

        calls.clear()
        assert set_wise.run(transient) is Outcome.RETRY  # one row: the plain function gets a list of one
        assert calls == [[transient]]
    finally:
        STEPS.pop(name)
        STEP_REGISTERS.pop(name)
        BATCHED_STEPS.discard(name)


PREFETCHING = "test.canary_prefetching"


@pytest.fixture(scope="module")
def prefetching() -> Iterator[tuple[Step[Canary], list[tuple[object, ...]]]]:
    """The canary's work as a batched step with a prefetch that says what it saw; a canary whose
    fault is "prefetch" makes the prefetch itself fail."""
    seen: list[tuple[object, ...]] = []

    @contextmanager
    def prefetch(session: Session, rows: Sequence[Canary]) -> Iterator[dict[int, str]]:
        seen.append(("enter", [row.id for row in rows]))
        if any(row.fault == "prefetch" for row in rows):
            raise TransientError("the prefetch's service is away")
        yield {row.id: f"shared {row.id}" for row in rows}
        seen.append(("exit",))

    def work(session: Session, canary: Canary, *, prefetched: dict[int, str]) -> None:
        seen.append(("row", canary.id, prefetched[canary.id]))
        run_canary.spec.fn(session, canary)

    declared = step(PREFETCHING, model=Canary, statuses={"pending"}, batch=True, prefetch=prefetch)(work)
    yield declared, seen
    STEPS.pop(PREFETCHING)
    STEP_REGISTERS.pop(PREFETCHING)
    BATCHED_STEPS.discard(PREFETCHING)


def test_a_prefetch_serves_the_rows_to_work_once_before_their_savepoints(
    prefetching: tuple[Step[Canary], list[tuple[object, ...]]],
) -> None:
    declared, seen = prefetching
    seen.clear()
    [first, second, failing, done] = _canaries((None, 0), (None, 0), ("permanent", 0), (None, 0))
    assert declared.run(done) is Outcome.DONE
    assert seen == [("enter", [done]), ("row", done, f"shared {done}"), ("exit",)]
    seen.clear()

    outcomes = declared.run_batch([first, second, failing, done])

    assert outcomes == {Outcome.DONE: 2, Outcome.PARKED: 1, Outcome.NOTHING_TO_DO: 1}
    # Once, for the rows still to work, and left after the last of them (a failing row included).
    assert seen == [
        ("enter", [first, second, failing]),
        *[("row", row_id, f"shared {row_id}") for row_id in (first, second, failing)],
        ("exit",),
    ]
    with session_scope() as s:
        row = s.get(Canary, first)
        assert row is not None
        seen.clear()
        declared.plain(s, row)  # the plain function as a test calls it: through the prefetch too
    assert seen == [("enter", [first]), ("row", first, f"shared {first}"), ("exit",)]


def test_a_failing_prefetch_fails_every_row_it_serves_each_settled_as_alone(
    prefetching: tuple[Step[Canary], list[tuple[object, ...]]],
) -> None:
    declared, seen = prefetching
    rows = _canaries((None, 0), ("prefetch", 0))
    seen.clear()

    assert declared.run_batch(rows) == {Outcome.RETRY: 2}

    assert seen == [("enter", rows)]
    for canary_id in rows:
        row = _row(canary_id)
        assert (row.status, row.attempts, row.executions) == ("pending", 1, 0)
        assert "the prefetch's service is away" in (row.last_error or "")


def test_a_prefetch_and_its_keyword_are_declared_together() -> None:
    def without(session: Session, canary: Canary) -> None: ...

    def with_keyword(session: Session, canary: Canary, *, prefetched: object) -> None: ...

    with pytest.raises(RuntimeError, match="together"):
        step("test.no_keyword", model=Canary, statuses={"pending"}, prefetch=lambda s, rows: nullcontext())(
            without
        )
    with pytest.raises(RuntimeError, match="together"):
        step("test.no_prefetch", model=Canary, statuses={"pending"})(with_keyword)
    assert "test.no_keyword" not in STEPS and "test.no_prefetch" not in STEPS


RERUN = "test.canary_rerun"


@pytest.fixture(scope="module")
def rerunning() -> Iterator[Step[Canary]]:
    """The canary's work as a batched step that may run again (it writes nothing outside the database)."""
    declared = step(RERUN, model=Canary, statuses={"pending"}, batch=True, rerun=True)(run_canary.spec.fn)
    yield declared
    STEPS.pop(RERUN)
    STEP_REGISTERS.pop(RERUN)
    BATCHED_STEPS.discard(RERUN)


def test_a_rerun_batch_whose_row_fails_runs_again_a_savepoint_a_row_with_nothing_done_twice(
    rerunning: Step[Canary],
) -> None:
    ok = _canaries((None, 0), (None, 0))
    [transient, permanent] = _canaries(("transient", 99), ("permanent", 0))

    assert rerunning.run_batch(ok) == {Outcome.DONE: 2}  # no failure: the one pass without savepoints
    again = _canaries((None, 0), (None, 0))
    outcomes = rerunning.run_batch([again[0], transient, permanent, again[1]])

    assert outcomes == {Outcome.DONE: 2, Outcome.RETRY: 1, Outcome.PARKED: 1}
    for canary_id in [*ok, *again]:
        row = _row(canary_id)
        # The first pass's work was rolled back with the failure: each row's work is kept once.
        assert (row.status, row.executions, row.attempts) == ("done", 1, 0)
    failed = _row(transient)
    assert (failed.status, failed.attempts, failed.executions) == ("pending", 1, 0)
    assert _row(permanent).parked_at is not None


def test_rerun_is_for_batched_steps() -> None:
    with pytest.raises(RuntimeError, match="batched"):
        step("test.rerun_alone", model=Canary, statuses={"pending"}, rerun=True)(run_canary.spec.fn)
    assert "test.rerun_alone" not in STEPS


TELLING = "test.canary_telling"


def test_a_batched_step_that_tells_its_delivery_gets_each_rows_own_task_id() -> None:
    """The relay carries, for each row of a batch, the task id it would have gone under alone (its
    signature's own, else its outbox row's); a step declaring ``task_id`` gets that, or the
    message's own id when a message of ``ids`` comes without them."""
    seen: dict[int, str | None] = {}

    def work(session: Session, canary: Canary, *, task_id: str | None) -> None:
        seen[canary.id] = task_id
        run_canary.spec.fn(session, canary)

    telling = step(TELLING, model=Canary, statuses={"pending"}, batch=True)(work)
    try:
        ids = _canaries((None, 0), (None, 0), (None, 0))
        with session_scope() as s:
            enqueue(s, current_app.signature(TELLING, kwargs={"id": ids[0]}, task_id="own-token"))
            plain = enqueue(s, TELLING, {"id": ids[1]})
            s.flush()
            plain_id = plain.id
        assert relay() == 2
        [message] = [m for m in _queued() if m["headers"]["task"] == TELLING]
        assert _kwargs(message) == {"ids": ids[:2]}
        carried = message["headers"][TASK_IDS_HEADER]
        assert carried == ["own-token", task_id_for(plain_id)] and message["headers"]["id"] not in carried

        telling.task.push_request(id="the-batch", **{TASK_IDS_HEADER: carried})
        try:
            assert run_steps(telling.spec, ids[:2], telling.task) == {Outcome.DONE: 2}
        finally:
            telling.task.pop_request()
        assert seen == {ids[0]: "own-token", ids[1]: task_id_for(plain_id)}

        telling.task.push_request(id="from-elsewhere")  # ids, but no task ids carried
        try:
            assert run_steps(telling.spec, ids[2:], telling.task) == {Outcome.DONE: 1}
        finally:
            telling.task.pop_request()
        assert seen[ids[2]] == "from-elsewhere"
    finally:
        STEPS.pop(TELLING)
        STEP_REGISTERS.pop(TELLING)
        BATCHED_STEPS.discard(TELLING)


def test_a_set_wise_step_cannot_tell_a_delivery_a_row() -> None:
    def work(session: Session, canaries: list[Canary], *, task_id: str | None) -> None:
        raise AssertionError("never called")

    with pytest.raises(RuntimeError, match="set-wise"):
        step(
            "test.set_wise_telling", model=Canary, statuses={"pending"}, batch=True, rerun=True, set_wise=True
        )(work)
    assert "test.set_wise_telling" not in STEPS

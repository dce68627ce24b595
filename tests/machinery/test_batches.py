"""Batched steps: one message of up to 50 ids, one claim and one work commit, each row's guarantees kept."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import func, select

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
    enqueue,
    relay,
    set_dispatch_mode,
)
from tasks.machinery.request_id import HEADER, bound_request_id
from tasks.machinery.steps import STEPS, Outcome, Step, step

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

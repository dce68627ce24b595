"""The chain of every SEP request, in one place; new submissions queue behind work in flight."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import redis
from sqlalchemy import event, select

from models.db import engine_for, session_scope
from models.outbox import Outbox
from models.sep import APPLIED, DONE, OPEN_STATUSES, SepRequest
from tasks.machinery.outbox import relay, task_id_for
from tasks.machinery.steps import STEPS, Outcome, run_step, run_steps
from tasks.sep.chain import APPLY, NEXT_STEP, POLL, SUBMIT, SUBMIT_PRIORITY
from tests.sep.conftest import add_vehicle, requests_of, run_due, start_ownership_change
from tests.sep.flows import application, call
from workers.app import app


def test_every_open_status_waits_for_a_registered_step_that_takes_it() -> None:
    assert set(NEXT_STEP) == set(OPEN_STATUSES)
    assert not SepRequest.TERMINAL & set(NEXT_STEP)
    declared = {name: spec.statuses for name, spec in STEPS.items() if spec.model is SepRequest}
    assert set(declared) == {SUBMIT, POLL, APPLY}
    assert set(declared) <= set(app.tasks)
    for name, statuses in declared.items():
        # A step takes exactly the statuses that wait for it: no status has two steps, none has none.
        assert statuses == {status for status, task in NEXT_STEP.items() if task == name}, name


def test_submissions_are_published_behind_polls_and_applications(sep_box, master) -> None:
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    call("sep.request_application_data", application_number=number)
    run_due()
    with session_scope() as session:
        rows = session.scalars(select(Outbox).where(Outbox.task_name.like("sep.%")).order_by(Outbox.id)).all()
        priorities = [(r.task_name, r.kwargs.get("options", {}).get("priority")) for r in rows]
    assert priorities == [(SUBMIT, SUBMIT_PRIORITY), (POLL, 0), (APPLY, 0)]


def test_the_poll_token_is_the_task_id_its_outbox_row_is_published_under(sep_box, master) -> None:
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    call("sep.request_application_data", application_number=number)
    [request] = requests_of()
    assert run_step(STEPS[SUBMIT], request.id) is Outcome.DONE
    [queued] = requests_of()
    with session_scope() as session:
        poll = session.scalars(select(Outbox).where(Outbox.task_name == POLL)).one()
    assert queued.poll_task_id is not None and queued.poll_task_id != task_id_for(poll.id)
    assert relay(ids=[poll.id]) == 1
    published = [
        json.loads(m) for m in redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"]).lrange("sep", 0, -1)
    ]
    assert [m["headers"]["id"] for m in published] == [queued.poll_task_id]


def test_results_due_together_are_applied_in_one_batched_message(sep_box, master) -> None:
    """``sep.apply_result`` calls nothing outside Postgres: one message applies many, in one flush,
    what they look up loaded once for all of them."""
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    call("sep.request_application_data", application_number=number)
    call("sep.request_applications")
    ids = [r.id for r in requests_of()]
    assert len(ids) == 2
    for request_id in ids:
        assert run_step(STEPS[SUBMIT], request_id) is Outcome.DONE
        assert run_step(STEPS[POLL], request_id) is Outcome.DONE
    assert {r.status for r in requests_of()} == {DONE}

    assert STEPS[APPLY].batch
    statements: list[str] = []

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine_for(), "before_cursor_execute", executed)
    try:
        assert run_steps(STEPS[APPLY], ids) == Counter({Outcome.DONE: 2})
    finally:
        event.remove(engine_for(), "before_cursor_execute", executed)
    # Both results bring the application: it is read once, for the batch, and no row needed a savepoint.
    assert sum("FROM sep_applications" in statement for statement in statements) == 1
    assert not [statement for statement in statements if "SAVEPOINT" in statement]
    assert {r.status for r in requests_of()} == {APPLIED}
    assert application(number).kind == "OwnershipChange"
    # A copy of the message finds nothing left to do.
    assert run_steps(STEPS[APPLY], ids) == Counter({Outcome.NOTHING_TO_DO: 2})

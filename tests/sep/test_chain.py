"""The chain of every SEP request, in one place; new submissions queue behind work in flight."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from models.db import session_scope
from models.outbox import Outbox
from models.sep import APPLIED, DONE, OPEN_STATUSES, SepRequest
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


def test_results_due_together_are_applied_in_one_batched_message(sep_box, master) -> None:
    """``sep.apply_result`` calls nothing outside Postgres: one message applies many, each in its savepoint."""
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
    assert run_steps(STEPS[APPLY], ids) == Counter({Outcome.DONE: 2})
    assert {r.status for r in requests_of()} == {APPLIED}
    assert application(number).kind == "OwnershipChange"
    # A copy of the message finds nothing left to do.
    assert run_steps(STEPS[APPLY], ids) == Counter({Outcome.NOTHING_TO_DO: 2})

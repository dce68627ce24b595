"""The chain of every SEP request, in one place; new submissions queue behind work in flight."""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from sqlalchemy import event, select

from models.db import engine_for, session_scope
from models.outbox import Outbox
from models.sep import APPLIED, DONE, OPEN_STATUSES, PENDING, QUEUED, SepRequest
from tasks.machinery.outbox import TASK_IDS_HEADER, relay, set_dispatch_mode, task_id_for
from tasks.machinery.steps import STEPS, Outcome, run_step, run_steps
from tasks.sep.chain import APPLY, NEXT_STEP, POLL, SUBMIT, SUBMIT_PRIORITY
from tests.sep.conftest import (
    add_vehicle,
    requests_of,
    run_due,
    sep,
    set_env,
    soap_requests,
    start_ownership_change,
)
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
    with _statements() as statements:
        assert run_steps(STEPS[APPLY], ids) == Counter({Outcome.DONE: 2})
    # Both results bring the application: it is read once, for the batch, and no row needed a savepoint.
    assert sum("FROM sep_applications" in statement for statement in statements) == 1
    assert not [statement for statement in statements if "SAVEPOINT" in statement]
    assert {r.status for r in requests_of()} == {APPLIED}
    assert application(number).kind == "OwnershipChange"
    # A copy of the message finds nothing left to do.
    assert run_steps(STEPS[APPLY], ids) == Counter({Outcome.NOTHING_TO_DO: 2})


def _two_queued(box: Any) -> list[SepRequest]:
    """Two requests sent to SEP one after the other: their first polls fall due together."""
    add_vehicle(box)
    number = start_ownership_change(box)["application_number"]
    call("sep.request_application_data", application_number=number)
    call("sep.request_applications")
    for request in requests_of():
        assert run_step(STEPS[SUBMIT], request.id) is Outcome.DONE
    queued = requests_of()
    assert [r.status for r in queued] == [QUEUED, QUEUED]
    return queued


def _outbox_of(task: str) -> list[Outbox]:
    with session_scope() as session:
        return list(session.scalars(select(Outbox).where(Outbox.task_name == task).order_by(Outbox.id)))


def _published(task: str) -> list[dict[str, Any]]:
    """The messages of ``task`` waiting in the broker's ``sep`` queue (a list a priority: ``sep``,
    then kombu's ``sep\\x06\\x16<priority>``)."""
    client = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    try:
        lists = ["sep", *(f"sep\x06\x16{priority}" for priority in (3, 6, 9))]
        messages = [json.loads(m) for key in lists for m in client.lrange(key, 0, -1)]
    finally:
        client.close()
    return [m for m in messages if m["headers"]["task"] == task]


def _body(message: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(message["body"]))[1]


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL sent to the database inside the block, in order."""
    statements: list[str] = []

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine_for(), "before_cursor_execute", executed)
    try:
        yield statements
    finally:
        event.remove(engine_for(), "before_cursor_execute", executed)


def test_polls_due_together_go_as_one_message_and_one_transaction_each_with_its_token(
    sep_box, master
) -> None:
    """``sep.poll_queue`` is batched: the relay publishes polls due together as one message (its id
    the first outbox row's), carrying each row's token, the task id it would have gone under alone;
    the worker claims them in one statement and polls them under one lock, in one transaction."""
    queued = _two_queued(sep_box)
    ids = [r.id for r in queued]
    polls = _outbox_of(POLL)
    assert relay(ids=[p.id for p in polls]) == 2
    [message] = _published(POLL)
    assert message["headers"]["id"] == task_id_for(polls[0].id)
    assert _body(message) == {"ids": ids}
    assert message["headers"][TASK_IDS_HEADER] == [r.poll_task_id for r in queued]

    with _statements() as statements:
        assert run_steps(STEPS[POLL], ids) == Counter({Outcome.DONE: 2})
    locks = [s for s in statements if "FROM sep_exchange_queue" in s and "FOR UPDATE" in s]
    claims = [s for s in statements if s.startswith("UPDATE sep_exchange_queue SET attempts")]
    assert (len(claims), len(locks)) == (1, 2)  # the claim's subquery and the work's lock
    assert [r.status for r in requests_of()] == [DONE, DONE]
    assert len(soap_requests(sep_box, "GetQueueResult")) == 2


def test_a_poll_batch_whose_call_fails_for_one_row_retries_only_that_row(sep_box, master) -> None:
    first, second = _two_queued(sep_box)
    sep(sep_box).knobs.update({"fault": "soap_fault", "fault_next": 1})  # SEP cannot answer, once
    assert run_steps(STEPS[POLL], [first.id, second.id]) == Counter({Outcome.RETRY: 1, Outcome.DONE: 1})
    failed, polled = requests_of()
    assert (failed.status, failed.attempts, failed.polls) == (QUEUED, 1, 0)
    assert "SEP failed: InternalError" in (failed.last_error or "")
    assert (polled.status, polled.attempts, polled.polls) == (DONE, 0, 1)
    # The failed row comes back in a message of its own, after the retry policy's countdown.
    [retry] = [p for p in _outbox_of(POLL) if p.business_key == f"retry:sep_exchange_queue:{first.id}:1"]
    assert retry.kwargs["kwargs"] == {"id": first.id} and retry.published_at is None
    run_due()
    assert [r.status for r in requests_of()] == [APPLIED, APPLIED]


def test_a_poll_batch_starts_no_call_once_it_has_held_its_rows_its_time(sep_box, master, monkeypatch) -> None:
    """A batch holds its rows' locks through their calls: past its time (one slow poll's, here cut to
    1 s by a soft time limit of 4 s) it polls no more, and its rows left get their attempts back
    and a message of their own, at once."""
    first, second = _two_queued(sep_box)
    set_env(monkeypatch, OBMEN_TASK_SOFT_TIME_LIMIT_S="4")  # 4 s less the 3 s a call may take
    sep(sep_box).knobs.update({"latency_ms": 1200})
    assert run_steps(STEPS[POLL], [first.id, second.id]) == Counter({Outcome.DONE: 1, Outcome.DEFERRED: 1})
    polled, deferred = requests_of()
    assert (polled.status, polled.polls) == (DONE, 1)
    assert (deferred.status, deferred.attempts, deferred.polls, deferred.last_error) == (QUEUED, 0, 0, None)
    assert len(soap_requests(sep_box, "GetQueueResult")) == 1
    [again] = [p for p in _outbox_of(POLL) if p.business_key == f"deferred:sep_exchange_queue:{second.id}"]
    assert again.kwargs["kwargs"] == {"id": second.id}
    sep(sep_box).knobs.update({"latency_ms": 0})
    run_due()
    assert [r.status for r in requests_of()] == [APPLIED, APPLIED]


def _two_pending(box: Any) -> list[SepRequest]:
    """Two requests waiting to be sent, each with its submission's outbox row."""
    add_vehicle(box)
    number = start_ownership_change(box)["application_number"]
    call("sep.request_application_data", application_number=number)
    call("sep.request_applications")
    pending = requests_of()
    assert [r.status for r in pending] == [PENDING, PENDING]
    return pending


def test_submissions_relayed_together_go_as_one_message_and_one_transaction_and_so_do_their_first_polls(
    sep_box, master
) -> None:
    """``sep.submit_request`` is batched: submissions relayed together are one message, claimed in
    one statement (each row's send counted in it) and sent under one lock, in one transaction; the
    first polls that transaction schedules are committed together, and the relay right after its
    commit publishes them as one batched poll message carrying each row's token."""
    ids = [r.id for r in _two_pending(sep_box)]
    submissions = _outbox_of(SUBMIT)
    assert relay(ids=[s.id for s in submissions]) == 2
    [message] = _published(SUBMIT)
    assert message["headers"]["id"] == task_id_for(submissions[0].id)
    assert _body(message) == {"ids": ids}

    set_dispatch_mode("inline")  # as in a worker: the work's commit relays what it wrote
    try:
        with _statements() as statements:
            assert run_steps(STEPS[SUBMIT], ids) == Counter({Outcome.DONE: 2})
    finally:
        set_dispatch_mode("off")
    locks = [s for s in statements if "FROM sep_exchange_queue" in s and "FOR UPDATE" in s]
    claims = [s for s in statements if s.startswith("UPDATE sep_exchange_queue SET") and "RETURNING" in s]
    assert (len(claims), len(locks)) == (1, 2)  # the claim's subquery and the work's lock
    assert "sends=(sep_exchange_queue.sends + " in claims[0]  # each row's send, counted before any left
    queued = requests_of()
    assert [(r.status, r.sends, r.attempts) for r in queued] == [(QUEUED, 1, 0), (QUEUED, 1, 0)]
    assert len(sep(sep_box).world.queue) == 2  # one SEP application each

    polls = _outbox_of(POLL)
    assert len(polls) == 2 and all(p.published_at is not None for p in polls)
    [poll] = _published(POLL)
    assert poll["headers"]["id"] == task_id_for(polls[0].id)
    assert _body(poll) == {"ids": ids}
    assert poll["headers"][TASK_IDS_HEADER] == [r.poll_task_id for r in queued]
    task = app.tasks[POLL]
    task.push_request(id=poll["headers"]["id"], **{TASK_IDS_HEADER: poll["headers"][TASK_IDS_HEADER]})
    try:  # the batched message, as the worker gets it: each row's own poll
        assert run_steps(STEPS[POLL], ids, task) == Counter({Outcome.DONE: 2})
    finally:
        task.pop_request()
    run_due()
    assert [r.status for r in requests_of()] == [APPLIED, APPLIED]


def test_a_submission_batch_whose_send_fails_for_one_row_retries_only_that_row(sep_box, master) -> None:
    first, second = _two_pending(sep_box)
    sep(sep_box).knobs.update({"fault": "soap_fault", "fault_next": 1})  # SEP cannot take it, once
    assert run_steps(STEPS[SUBMIT], [first.id, second.id]) == Counter({Outcome.RETRY: 1, Outcome.DONE: 1})
    failed, sent = requests_of()
    assert (failed.status, failed.attempts, failed.sends) == (PENDING, 1, 1)
    assert "SEP failed: InternalError" in (failed.last_error or "")
    assert (sent.status, sent.attempts, sent.sends) == (QUEUED, 0, 1)
    assert [item.message_id for item in sep(sep_box).world.queue.values()] == [sent.message_id]
    # The failed row comes back in a message of its own, after the retry policy's countdown.
    [retry] = [s for s in _outbox_of(SUBMIT) if s.business_key == f"retry:sep_exchange_queue:{first.id}:1"]
    assert retry.kwargs["kwargs"] == {"id": first.id} and retry.published_at is None
    run_due()
    assert [r.status for r in requests_of()] == [APPLIED, APPLIED]
    assert len(sep(sep_box).world.queue) == 2


def test_a_submission_batch_sends_nothing_once_it_has_held_its_rows_its_time(
    sep_box, master, monkeypatch
) -> None:
    """The poll's time for a batch (``within_batch_time``, one function for both): a row left when
    it is up is sent in a message of its own, its attempt given back; its send, counted by the
    claim, stays counted, though it never left (``sends`` is an upper bound)."""
    first, second = _two_pending(sep_box)
    set_env(monkeypatch, OBMEN_TASK_SOFT_TIME_LIMIT_S="4")  # 4 s less the 3 s a call may take
    sep(sep_box).knobs.update({"latency_ms": 1200})
    assert run_steps(STEPS[SUBMIT], [first.id, second.id]) == Counter({Outcome.DONE: 1, Outcome.DEFERRED: 1})
    sent, deferred = requests_of()
    assert (sent.status, sent.sends) == (QUEUED, 1)
    assert (deferred.status, deferred.attempts, deferred.sends, deferred.last_error) == (PENDING, 0, 1, None)
    assert [item.message_id for item in sep(sep_box).world.queue.values()] == [sent.message_id]
    [again] = [s for s in _outbox_of(SUBMIT) if s.business_key == f"deferred:sep_exchange_queue:{second.id}"]
    assert again.kwargs["kwargs"] == {"id": second.id}
    sep(sep_box).knobs.update({"latency_ms": 0})
    run_due()
    assert [r.status for r in requests_of()] == [APPLIED, APPLIED]
    assert requests_of()[1].sends == 2

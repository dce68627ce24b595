"""Faults at the step level: what each does to the queue row, and that nothing is asked twice or early."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from models.db import session_scope
from models.outbox import Outbox
from models.sep import APPLIED, QUEUED, UNCERTAIN, SepExchangeHistory, SepRequest
from tasks.machinery.steps import Outcome, run_step
from tasks.machinery.sweeper import redrive
from tasks.sep.steps import poll_queue, submit_request
from tests.sep.conftest import requests_of, run_due, sep, set_env, soap_requests
from tests.sep.flows import call, lease, own_vehicle


def _request(request_id: int) -> SepRequest:
    with session_scope() as session:
        row = session.get(SepRequest, request_id)
        assert row is not None
        return row


def _ask(box, number: str = "2026-000001") -> int:
    from tests.sep.conftest import add_vehicle, start_ownership_change

    add_vehicle(box)
    started = start_ownership_change(box)
    return int(
        call("sep.request_application_data", application_number=started["application_number"])["request_id"]
    )


def test_an_unknown_enum_parks_the_row_with_the_xml_read_error(sep_box, master) -> None:
    request_id = _ask(sep_box)
    run_due(until=lambda: _request(request_id).status == QUEUED)
    sep(sep_box).knobs.update({"fault": "unknown_enum", "fault_next": 1})
    run_due()
    row = _request(request_id)
    assert row.parked_at is not None and row.status == QUEUED
    assert row.request_status == "Ошибка чтения XML"
    assert "unknown queue state 'Postponed'" in (row.last_error or "")
    redrive("sep_exchange_queue", [request_id])  # SEP fixed its answer
    run_due()
    assert _request(request_id).status == APPLIED


def test_a_hostile_answer_to_a_poll_parks_it_and_fetches_nothing(sep_box, master) -> None:
    request_id = _ask(sep_box)
    run_due(until=lambda: _request(request_id).status == QUEUED)
    sep(sep_box).knobs.update({"fault": "entity", "fault_next": 1})
    run_due()
    row = _request(request_id)
    assert row.parked_at is not None and "declares a DTD" in (row.last_error or "")


def test_a_result_that_is_never_ready_is_parked_after_the_maximum_then_redriven(
    sep_box, master, monkeypatch
) -> None:
    set_env(monkeypatch, OBMEN_SEP_MAX_POLLS="2")
    sep(sep_box).knobs.update({"extra": {"min_delay_s": 0, "never_ready": True}})
    request_id = _ask(sep_box)
    run_due()
    row = _request(request_id)
    assert (row.polls, row.sep_state, row.status) == (2, "Processing", QUEUED)
    assert row.parked_at is not None and "no result after 2 polls" in (row.last_error or "")

    sep(sep_box).knobs.update({"extra": {"never_ready": False}})
    redrive("sep_exchange_queue", [request_id])
    run_due()
    row = _request(request_id)
    assert (row.polls, row.status, row.parked_at) == (3, APPLIED, None)


def test_a_transient_fault_while_polling_is_retried(sep_box, master) -> None:
    request_id = _ask(sep_box)
    run_due(until=lambda: _request(request_id).status == QUEUED)
    sep(sep_box).knobs.update({"fault": "soap_fault", "fault_next": 1})
    assert run_step(poll_queue.spec, request_id) is Outcome.RETRY  # Celery's retry would carry it on
    assert "SEP failed: InternalError" in (_request(request_id).last_error or "")
    assert run_step(poll_queue.spec, request_id) is Outcome.DONE
    run_due()
    assert _request(request_id).status == APPLIED


@pytest.mark.parametrize("fault", ["slow_headers", "html_500", "empty_200", "truncated"])
def test_a_submission_that_may_have_reached_sep_is_sent_again_as_the_same_request(
    sep_box, master, fault: str
) -> None:
    own_vehicle(sep_box)
    sep(sep_box).knobs.update({"fault": fault, "fault_next": 1, "extra": {"slow_s": 2.5}})
    call("sep.submit_lease_application", lease_contract="ДЛ-1/1")
    [request] = requests_of("SubmitLeaseApplication")
    assert run_step(submit_request.spec, request.id) is Outcome.DONE
    row = _request(request.id)
    assert (row.status, row.sends, row.queue_number) == (UNCERTAIN, 1, None)
    assert row.request_status in ("Ошибка запроса", "Ошибка чтения XML")
    run_due()
    row = _request(request.id)
    assert (row.status, row.sends) == (APPLIED, 2)
    # SEP saw the lease application twice under one message id, and made one application of it.
    assert soap_requests(sep_box, "SubmitLeaseApplication") == ["SubmitLeaseApplication"] * 2
    leases = [a for a in sep(sep_box).world.applications.values() if a.kind == "Lease"]
    assert len(leases) == 1 and lease().application_number == leases[0].number
    with session_scope() as session:
        sent = session.scalars(
            select(SepExchangeHistory.queue_number)
            .where(SepExchangeHistory.request_id == request.id)
            .where(SepExchangeHistory.operation == "SubmitLeaseApplication")
            .order_by(SepExchangeHistory.id)
        ).all()
    assert sent == [None, row.queue_number]


def test_a_submission_that_keeps_failing_uncertainly_is_parked(sep_box, master) -> None:
    sep(sep_box).knobs.update({"fault": "html_500", "fault_next": 10})
    request_id = _ask(sep_box)
    run_due()
    row = _request(request_id)
    assert (row.status, row.sends) == (UNCERTAIN, 3)  # OBMEN_MAX_ATTEMPTS in tests
    assert row.parked_at is not None and "no answer after 3 sends" in (row.last_error or "")


def test_an_early_poll_waits_by_the_database_clock_even_if_the_worker_clock_runs_ahead(
    sep_box, master, monkeypatch
) -> None:
    set_env(monkeypatch, OBMEN_SEP_MIN_POLL_DELAY_S="2")
    request_id = _ask(sep_box)
    assert run_step(submit_request.spec, request_id) is Outcome.DONE
    queued = _request(request_id)
    assert queued.submitted_at is not None and queued.next_poll_at is not None
    assert queued.next_poll_at == queued.submitted_at + timedelta(seconds=2)
    # Delivered at once (jitter), and again from a worker whose clock is an hour ahead:
    assert run_step(poll_queue.spec, request_id) is Outcome.DONE
    with time_machine.travel(queued.submitted_at + timedelta(hours=1)):
        assert run_step(poll_queue.spec, request_id) is Outcome.DONE
    assert soap_requests(sep_box, "GetQueueResult") == []
    with session_scope() as session:
        polls = session.scalars(select(Outbox).where(Outbox.task_name == "sep.poll_queue")).all()
        assert polls and all(p.not_before >= queued.submitted_at + timedelta(seconds=1.9) for p in polls)
    run_due()
    assert _request(request_id).status == APPLIED
    [item] = [i for i in sep(sep_box).world.queue.values() if i.operation == "RequestApplicationData"]
    assert [(at - item.accepted_at).total_seconds() >= 2 for at, _ in item.polls] == [True]


def test_a_not_before_in_year_9999_is_polled_again_after_the_bound_and_parks_the_row(
    sep_box, master, monkeypatch
) -> None:
    set_env(
        monkeypatch,
        OBMEN_SEP_MIN_POLL_DELAY_S="0",
        OBMEN_SEP_MAX_POLLS="2",
        OBMEN_SEP_MAX_NOT_BEFORE_S="1",
    )
    sep(sep_box).knobs.update({"extra": {"min_delay_s": 0, "not_before": "9999-12-31T00:00:00+00:00"}})
    request_id = _ask(sep_box)
    run_due(timeout=10)
    row = _request(request_id)
    assert (row.polls, row.sep_state, row.status) == (2, "TooEarly", QUEUED)
    assert row.parked_at is not None and "no result after 2 polls (SEP says TooEarly)" in (
        row.last_error or ""
    )


class _WorkerKilled(BaseException):
    """What SIGKILL does to a step: the work transaction never commits, nothing in it runs on."""


def test_a_send_is_counted_before_it_leaves_so_a_worker_killed_mid_send_still_counts_it(
    sep_box, master
) -> None:
    sep(sep_box).knobs.update({"fault": "slow_headers", "fault_next": 1, "extra": {"slow_s": 5}})
    request_id = _ask(sep_box)

    def kill(signum: int, frame: object) -> None:
        raise _WorkerKilled

    previous = signal.signal(signal.SIGALRM, kill)
    signal.setitimer(signal.ITIMER_REAL, 1.0)  # SEP has the request by then; its answer is held
    try:
        with pytest.raises(_WorkerKilled):
            run_step(submit_request.spec, request_id)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert soap_requests(sep_box, "RequestApplicationData") == ["RequestApplicationData"]
    row = _request(request_id)
    assert (row.sends, row.attempts, row.queue_number) == (1, 1, None)
    run_due()  # the sweeper's re-drive, in effect: sent again under the same message id
    row = _request(request_id)
    assert (row.sends, row.status) == (2, APPLIED)

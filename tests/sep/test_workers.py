"""Real worker processes against the emulator: SEP's letter through mail intake to the applied data,
with no poll before the minimum delay even when copies of the poll arrive early; and a worker
killed mid-submission (a lease application, a counterparty registration, a lease change) does not
make a second one in SEP."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import select, update

from models.db import session_scope
from models.outbox import Outbox
from models.sep import APPLIED, OWNED, PENDING, SepAssetStatus, SepRequest
from sandbox.server import Sandbox
from tasks.machinery.outbox import TASK_IDS_HEADER, enqueue, relay_all, set_dispatch_mode
from tasks.machinery.sweeper import sweep
from tasks.sep.chain import POLL
from tests.harness.processes import start_worker
from tests.harness.waiting import wait_for
from tests.sep.conftest import (
    EPTS,
    ORG,
    TIMINGS,
    add_vehicle,
    requests_of,
    run_due,
    sep,
    soap_requests,
    start_ownership_change,
)
from tests.sep.flows import NEW_LESSEE, call, import_forms, lease, lease_vehicles
from tests.sep.test_counterparties import counterparty
from tests.sep.test_lease_changes import change


@pytest.fixture
def worker_env(sep_box: Sandbox) -> dict[str, str]:
    set_dispatch_mode("inline")
    return {**TIMINGS, **sep_box.client_settings(), "OBMEN_SEP_MIN_POLL_DELAY_S": "2"}


def _request(operation: str) -> SepRequest | None:
    found = requests_of(operation)
    return found[0] if found else None


def test_letter_to_applied_data_with_no_poll_before_the_minimum_delay_even_with_early_copies(
    sep_box: Sandbox, master: None, worker_env: dict[str, str]
) -> None:
    from workers.app import app

    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    worker = start_worker(env=worker_env, queues="sep,ops")
    try:
        with session_scope() as session:  # as mail intake does, through the outbox
            enqueue(
                session, "sep.request_application_data", {"application_number": number, "source": "mail:7"}
            )
        queued = wait_for(
            lambda: (r := _request("RequestApplicationData")) is not None and r.poll_task_id and r,
            timeout=30,
            what="the queue number",
        )
        # The scheduled poll delivered at once (jitter, a skewed clock), and two stray copies.
        app.send_task("sep.poll_queue", kwargs={"id": queued.id}, task_id=queued.poll_task_id)
        app.send_task("sep.poll_queue", kwargs={"id": queued.id})
        app.send_task("sep.poll_queue", kwargs={"id": queued.id})
        wait_for(
            lambda: (r := _request("RequestApplicationData")) is not None and r.status == APPLIED,
            timeout=40,
            what="the result to be applied",
        )
    finally:
        worker.stop()
    [request] = requests_of("RequestApplicationData")
    assert request.source is not None and request.source.startswith("mail:")  # the letter's row
    [item] = [i for i in sep(sep_box).world.queue.values() if i.operation == "RequestApplicationData"]
    # SEP's own log: one poll, and it came no earlier than 2 s after SEP accepted the request.
    assert len(item.polls) == 1
    assert (item.polls[0][0] - item.accepted_at).total_seconds() >= 2.0
    assert "sep.poll_early" in worker.text()


def test_a_batched_poll_delivered_early_reschedules_its_rows_once_and_its_copies_return_quietly(
    sep_box: Sandbox, master: None, worker_env: dict[str, str]
) -> None:
    """The batched equivalent of the poll's token: a batch of polls carries each row's own task id,
    so its early delivery re-schedules each row once, and copies of it (a redelivery, a message of
    ``ids`` from elsewhere) return quietly: no poll before its time, and no more messages."""
    from workers.app import app

    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    # Time enough for the early batch to be worked before its rows fall due, on a loaded machine.
    worker = start_worker(env={**worker_env, "OBMEN_SEP_MIN_POLL_DELAY_S": "5"}, queues="sep,ops")
    try:
        call("sep.request_application_data", application_number=number)
        call("sep.request_applications")
        queued = wait_for(
            lambda: len(found := requests_of()) == 2 and all(r.poll_task_id for r in found) and found,
            timeout=30,
            what="both queue numbers",
        )
        ids = [r.id for r in queued]
        tokens = {TASK_IDS_HEADER: [r.poll_task_id for r in queued]}
        app.send_task(POLL, kwargs={"ids": ids}, headers=tokens)  # the scheduled batch, at once
        wait_for(lambda: worker.text().count("sep.poll_early") == 2, timeout=30, what="the early batch")
        app.send_task(POLL, kwargs={"ids": ids}, headers=tokens)  # redelivered
        app.send_task(POLL, kwargs={"ids": ids})  # sent by someone else
        wait_for(
            lambda: [r.status for r in requests_of()] == [APPLIED, APPLIED],
            timeout=40,
            what="both results to be applied",
        )
    finally:
        worker.stop()
    assert worker.text().count("sep.poll_early") == 2
    with session_scope() as session:  # the submission's poll and one re-scheduled, for each
        polls = session.scalars(select(Outbox.kwargs).where(Outbox.task_name == POLL)).all()
    assert sorted(p["kwargs"]["id"] for p in polls) == sorted(ids * 2)
    for item in sep(sep_box).world.queue.values():
        assert len(item.polls) == 1 and (item.polls[0][0] - item.accepted_at).total_seconds() >= 5.0


def _killed_mid_submission(box: Sandbox, operation: str, done: Callable[[], bool]) -> None:
    """The pending ``operation`` request is sent by a worker killed while SEP holds its answer (SEP
    has taken it); the sweeper then re-drives the stale row to a new worker, which sends it again
    under the same message id, until ``done()``: SEP executes it once."""
    [pending] = requests_of(operation)
    assert pending.status == PENDING
    sep(box).knobs.update(
        {"fault": "slow_headers", "fault_next": 1, "extra": {"slow_s": 2, "min_delay_s": 0}}
    )
    env = {
        **TIMINGS,
        **box.client_settings(),
        "OBMEN_SEP_READ_TIMEOUT_S": "30",
        "OBMEN_SEP_OPERATION_TIMEOUT_S": "40",
    }
    set_dispatch_mode("inline")
    worker = start_worker(env=env, queues="sep,ops", concurrency=1)
    try:
        relay_all()  # the submission's outbox row, written while nothing was published
        wait_for(lambda: soap_requests(box, operation), timeout=30, what=f"the {operation}")
        worker.kill(signal.SIGKILL)
    finally:
        worker.stop()
    row = _request(operation)
    assert row is not None and (row.status, row.queue_number, row.attempts) == (PENDING, None, 1)
    with session_scope() as session:  # the message died with the worker: the row is stale
        session.execute(
            update(SepRequest)
            .where(SepRequest.id == row.id)
            .values(updated_at=datetime(2020, 1, 1).astimezone())
        )
    worker = start_worker(env=env, queues="sep,ops", concurrency=1)
    try:
        assert sweep() == {"sep.submit_request": 1}  # as beat's ops.sweep does
        relay_all()
        wait_for(done, timeout=40, what=f"the {operation} applied")
    finally:
        worker.stop()
    assert soap_requests(box, operation) == [operation] * 2
    assert len([i for i in sep(box).world.queue.values() if i.operation == operation]) == 1
    assert "sep.resend_same_message_id" in worker.text()


def test_a_worker_killed_between_submit_and_storing_the_queue_number_gives_one_sep_application(
    sep_box: Sandbox, master: None
) -> None:
    # The vehicle is ours already (the ownership change is tested elsewhere).
    add_vehicle(sep_box, owner=ORG)
    with session_scope() as session:
        session.add(
            SepAssetStatus(
                asset_inventory_number="OS-1",
                epts=EPTS,
                status=OWNED,
                period=datetime.now().astimezone(),
                application_number="0",
            )
        )
    call("sep.submit_lease_application", lease_contract="ДЛ-1/1", source="ops")
    _killed_mid_submission(sep_box, "SubmitLeaseApplication", lambda: lease().status == "Зарегистрировано")
    [leased] = [a for a in sep(sep_box).world.applications.values() if a.kind == "Lease"]
    assert lease().application_number == leased.number


def test_workers_killed_mid_registration_lease_change_and_confirmation_make_one_of_each(
    sep_box: Sandbox, master: None
) -> None:
    """Перенаём end to end, a worker killed in the middle of each new submission on the way."""
    import_forms()
    lease_vehicles(sep_box)
    call("sep.register_counterparty", inn=NEW_LESSEE)
    run_due(until=lambda: requests_of("RegisterCounterparty"))  # found missing; the registration waits
    _killed_mid_submission(
        sep_box, "RegisterCounterparty", lambda: counterparty(NEW_LESSEE).status == "Зарегистрирован"
    )
    assert list(sep(sep_box).world.counterparties) == [NEW_LESSEE]

    set_dispatch_mode("off")
    call(
        "sep.submit_lease_change",
        change_number="П-9",
        kind="LesseeChange",
        epts=[EPTS],
        new_lessee_inn=NEW_LESSEE,
    )
    _killed_mid_submission(sep_box, "SubmitLeaseChange", lambda: change("П-9").status == "Зарегистрировано")
    [moved] = [a for a in sep(sep_box).world.applications.values() if a.kind == "LesseeChange"]
    assert change("П-9").application_number == moved.number

    set_dispatch_mode("off")
    call("sep.confirm_lease_change", change_number="П-9", codes=moved.codes)
    _killed_mid_submission(sep_box, "ConfirmLeaseChange", lambda: change("П-9").status == "Исполнен")
    assert (moved.status, sep(sep_box).world.vehicles[EPTS].leased_to) == ("Исполнен", NEW_LESSEE)

"""Real workers killed (kill -9) in the middle of the new SEP operations' submissions: SEP got the
request, the worker died before the queue number was stored. The sweeper re-drives the row, the
request goes again under the same message id, and SEP has one registration, one lease change."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import update

from models.db import session_scope
from models.sep import PENDING, SepRequest
from sandbox.server import Sandbox
from tasks.machinery.outbox import relay_all, set_dispatch_mode
from tests.harness.processes import obmen, start_worker
from tests.harness.waiting import wait_for
from tests.sep.conftest import EPTS, TIMINGS, requests_of, run_due, sep, soap_requests
from tests.sep.flows import NEW_LESSEE, call, import_forms, lease_vehicles
from tests.sep.test_counterparties import counterparty
from tests.sep.test_lease_changes import change


def _killed_mid_submission(box: Sandbox, operation: str, done: Callable[[], bool]) -> None:
    """The pending ``operation`` request is sent by a worker killed while SEP holds its answer; then
    re-driven by the sweeper to a new worker, until ``done()``."""
    [pending] = requests_of(operation)
    assert pending.status == PENDING
    sep(box).knobs.update(
        {"fault": "slow_headers", "fault_next": 1, "extra": {"slow_s": 3, "min_delay_s": 0}}
    )
    env = {
        **TIMINGS,
        **box.client_settings(),
        "OBMEN_SEP_MIN_POLL_DELAY_S": "1",
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
    [row] = requests_of(operation)
    assert (row.status, row.queue_number, row.attempts) == (PENDING, None, 1)
    with session_scope() as session:  # the message died with the worker: the row is stale
        session.execute(
            update(SepRequest)
            .where(SepRequest.id == row.id)
            .values(updated_at=datetime(2020, 1, 1).astimezone())
        )
    worker = start_worker(env=env, queues="sep,ops", concurrency=1)
    try:
        swept = obmen("sweep", env=env)
        assert swept.returncode == 0, swept.stderr
        assert json.loads(swept.stdout.strip().splitlines()[-1]) == {"sep.submit_request": 1}
        wait_for(done, timeout=40, what=f"the {operation} applied")
    finally:
        worker.stop()
    assert soap_requests(box, operation) == [operation] * 2
    assert len([i for i in sep(box).world.queue.values() if i.operation == operation]) == 1
    assert "sep.resend_same_message_id" in worker.text()


@pytest.mark.usefixtures("master")
def test_a_worker_killed_mid_registration_registers_the_counterparty_once(sep_box: Sandbox) -> None:
    import_forms()
    call("sep.register_counterparty", inn=NEW_LESSEE)
    run_due(until=lambda: requests_of("RegisterCounterparty"))  # found missing; the registration waits
    _killed_mid_submission(
        sep_box, "RegisterCounterparty", lambda: counterparty(NEW_LESSEE).status == "Зарегистрирован"
    )
    assert list(sep(sep_box).world.counterparties) == [NEW_LESSEE]


@pytest.mark.usefixtures("master")
def test_a_worker_killed_mid_lease_change_makes_one_sep_application(sep_box: Sandbox) -> None:
    import_forms()
    lease_vehicles(sep_box)
    call("sep.submit_lease_change", change_number="ОК-9", kind="LeaseEnd", epts=[EPTS])
    _killed_mid_submission(sep_box, "SubmitLeaseChange", lambda: change("ОК-9").status == "Зарегистрировано")
    [ended] = [a for a in sep(sep_box).world.applications.values() if a.kind == "LeaseEnd"]
    assert change("ОК-9").application_number == ended.number

"""A real worker process against the emulator over HTTP: a worker killed between ``SendMessage`` and
its commit does not send the package twice — the re-driven step finds it at the operator by its key
(run in-process: what matters is the state the killed worker left, not a second worker start)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import update

from models.db import session_scope
from models.edo import SENDING, SENT, EdoPackage
from sandbox.server import Sandbox
from tasks.edo import steps
from tasks.edo.chain import SEND
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import Outcome
from tasks.machinery.sweeper import sweep
from tests.edo.flow import documents_of, edo_settings, emulator, master_data, package, package_in, submit
from tests.harness.processes import start_worker
from tests.harness.waiting import wait_for


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, _sandbox: Sandbox, obmen_app: object) -> Iterator[dict[str, str]]:
    set_dispatch_mode("inline")
    with edo_settings(monkeypatch, _sandbox) as settings:
        master_data()
        yield settings


def test_a_worker_killed_between_send_message_and_its_commit_sends_the_package_once(
    _sandbox: Sandbox, env: dict[str, str]
) -> None:
    world = emulator(_sandbox).world
    # The operator takes the message, then holds its answer long enough for the worker to be killed.
    emulator(_sandbox).knobs.update(
        {"extra": {"hold_operation": "SendMessage", "hold_s": 30, "hold_next": 1}}
    )
    worker = start_worker(env=env, queues="edo", concurrency=1)
    try:
        package_id = submit(package_in())
        wait_for(lambda: world.send_calls == 1, timeout=30, what="the operator to accept the message")
        worker.kill(signal.SIGKILL)
    finally:
        worker.stop()
        emulator(_sandbox).knobs.extra.pop("hold_operation")  # the held answer has nobody to go to
    killed = package(package_id)
    assert (killed.status, killed.message_id, killed.attempts) == (SENDING, None, 1)

    # The message died with the worker; the sweeper finds the row stale and re-drives it.
    with session_scope() as session:
        session.execute(
            update(EdoPackage)
            .where(EdoPackage.id == package_id)
            .values(updated_at=datetime(2020, 1, 1).astimezone())
        )
    assert sweep() == {SEND: 1}  # what beat runs every OBMEN_SWEEP_INTERVAL_S
    assert steps.send_package.run(package_id) is Outcome.DONE  # the re-driven message, delivered
    sent = package(package_id)
    [message_id] = world.messages
    assert sent.message_id == message_id and sent.sent_at == world.messages[message_id].sent_at
    assert world.send_calls == 1 and world.custom_fields == {sent.package_key: 1}
    assert sent.status == SENT and all(d.operator_document_id for d in documents_of(package_id))

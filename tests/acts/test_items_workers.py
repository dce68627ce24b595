"""Real worker processes killed -9 in the middle of the new acts steps: between Bitrix24's answer to
``crm.item.add`` and the commit (``acts.item.sync``), and while the e-mail step reads the company
(``acts.email.send``). The re-driven step (run in-process: what matters is the state the killed
worker left) neither loses the work nor doubles it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from models.acts import EMAILING, SENT, SIGNED_BY_US, Act, ActItem
from models.db import session_scope
from models.mail import OutgoingLetter
from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.server import Sandbox
from tasks.acts import steps
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import Outcome
from tasks.machinery.sweeper import sweep
from tests.acts.support import SCAN, SmtpSink, act, draft
from tests.acts.test_crm import drain, seed_deal
from tests.acts.test_items import ITEMS, _move, items
from tests.acts.test_items import box as box
from tests.acts.test_items import smtp as smtp
from tests.harness.processes import Process, start_worker
from tests.harness.waiting import wait_for


@pytest.fixture
def held(box: Sandbox, smtp: SmtpSink) -> Iterator[tuple[Bitrix24Emulator, dict[str, str]]]:
    emulator = box.emulator("bitrix24")
    assert isinstance(emulator, Bitrix24Emulator)
    seed_deal(box)
    yield emulator, {**box.client_settings(), **ITEMS, "OBMEN_SMTP_URL": smtp.url}
    emulator.knobs.extra.pop("hold_method", None)  # a held answer has nobody to go to


def _kill_when_held(emulator: Bitrix24Emulator, worker: Process, what: str) -> None:
    try:
        wait_for(lambda: emulator.knobs.extra.get("hold_next") == 0, timeout=30, what=what)
        worker.kill(signal.SIGKILL)
    finally:
        worker.stop()
        emulator.knobs.extra.pop("hold_method")


def _stale(model: Any, row_id: int) -> None:
    """The message died with the worker; make the row as old as the sweeper's stale time."""
    with session_scope() as s:
        s.execute(
            update(model).where(model.id == row_id).values(updated_at=datetime(2020, 1, 1).astimezone())
        )


def test_a_worker_killed_between_adding_the_item_and_its_commit_adds_it_once(
    held: tuple[Bitrix24Emulator, dict[str, str]],
) -> None:
    emulator, env = held
    emulator.knobs.extra.update({"hold_method": "crm.item.add", "hold_s": 30, "hold_next": 1})
    worker = start_worker(env=env, queues="acts", concurrency=1)
    set_dispatch_mode("inline")
    act_id = draft(company_id=55)
    _kill_when_held(emulator, worker, "the portal to add the item")
    set_dispatch_mode("off")
    assert len(emulator.smart.items[1038]) == 1  # Bitrix24 added it; our commit died with the worker
    with session_scope() as s:
        row = s.scalars(select(ActItem).where(ActItem.act_id == act_id)).one()
        assert (row.status, row.item_id, row.attempts) == ("pending", None, 1)
    _stale(ActItem, row.id)
    assert sweep().get("acts.item.sync") == 1  # what beat runs every OBMEN_SWEEP_INTERVAL_S
    assert steps.sync_act_item.run(row.id) is Outcome.DONE  # the re-driven message, delivered
    [item] = items_of(emulator)
    with session_scope() as s:
        synced = s.get(ActItem, row.id)
        assert synced is not None and (synced.status, synced.item_id) == ("synced", item["id"])
    assert item["xmlId"] == f"obmen-act-{act_id}"


def items_of(emulator: Bitrix24Emulator) -> list[dict[str, Any]]:
    with emulator.portal.lock:
        return list(emulator.smart.items[1038].values())


def test_a_worker_killed_in_the_email_step_sends_the_act_once(
    held: tuple[Bitrix24Emulator, dict[str, str]], smtp: SmtpSink, box: Sandbox
) -> None:
    emulator, env = held
    act_id = draft(company_id=55, exchange_method="email")
    _move(act_id, SIGNED_BY_US, upload=SCAN)
    drain()
    emulator.knobs.extra.update({"hold_method": "crm.company.get", "hold_s": 30, "hold_next": 1})
    worker = start_worker(env=env, queues="acts", concurrency=1)
    set_dispatch_mode("inline")
    assert _move(act_id, SENT) == EMAILING
    _kill_when_held(emulator, worker, "the e-mail step to read the company")
    set_dispatch_mode("off")
    with session_scope() as s:
        assert s.scalars(select(OutgoingLetter)).all() == []  # the letter was never committed
    assert act(act_id).attempts == 1
    _stale(Act, act_id)
    assert sweep().get("acts.email.send") == 1
    drain()  # the re-driven step, mail.send, and the step's look after the letter left
    assert act(act_id).status == SENT
    [letter] = smtp.messages
    assert [a.get_content() for a in letter.iter_attachments()] == [SCAN.content]
    assert items(box)[0]["stageId"] == "DT1038_0:SENT"

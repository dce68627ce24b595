"""The acts' Bitrix24 items and e-mail through real worker processes: end to end, and killed -9 in the middle of the new steps: between Bitrix24's answer to
``crm.item.add`` and the commit (``acts.item.sync``), and while the e-mail step reads the company
(``acts.email.send``). The re-driven step (run in-process: what matters is the state the killed
worker left) neither loses the work nor doubles it."""

from __future__ import annotations

import base64
import signal
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
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
from tests.acts.support import SCAN, SmtpSink, act, draft, drain, seed_deal
from tests.acts.test_items import ITEMS, _move, items
from tests.acts.test_items import box as box
from tests.acts.test_items import smtp as smtp
from tests.harness.gateway import GatewayThread
from tests.harness.processes import Process, start_worker
from tests.harness.waiting import wait_for


@pytest.fixture
def held(box: Sandbox, smtp: SmtpSink) -> Iterator[tuple[Bitrix24Emulator, dict[str, str]]]:
    emulator = box.emulator("bitrix24")
    assert isinstance(emulator, Bitrix24Emulator)
    seed_deal(box)
    yield (
        emulator,
        {**box.client_settings(), **ITEMS, "OBMEN_SMTP_URL": smtp.url, "OBMEN_ACTS_EMAIL_CHECK_S": "1"},
    )
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
        return list(emulator.smart.items.get(1038, {}).values())


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


def test_end_to_end_through_a_real_worker_the_manager_works_in_bitrix24_only(
    held: tuple[Bitrix24Emulator, dict[str, str]], smtp: SmtpSink, box: Sandbox
) -> None:
    """POST /acts → item; the manager moves it in the portal (event → gateway → worker); «sent» e-mails it."""
    emulator, env = held
    worker = start_worker(env=env, queues="acts,mail", concurrency=2)
    try:
        with GatewayThread() as gw:
            events = ["ONCRMDEALUPDATE", "ONCRMDYNAMICITEMUPDATE"]
            httpx.put(
                box.url + "/_sandbox/bitrix24/events",
                json={"handler": gw.url + "/bitrix24/events", "events": events},
            )
            created = httpx.post(
                gw.url + "/acts",
                data={"number": "П-1", "deal_id": "101", "act_type": "paper_ul", "exchange_method": "email"},
                files={"file": ("act.pdf", b"%PDF-1.4 act", "application/pdf")},
                headers={"Authorization": "Bearer test-write-token"},
            )
            assert created.status_code == 201, created.text
            act_id = created.json()["id"]
            item = wait_for(lambda: next(iter(items_of(emulator)), None), timeout=60, what="the act's item")
            scan = base64.b64encode(SCAN.content).decode()
            move = f"{box.url}/_sandbox/bitrix24/items/1038/{item['id']}/update"
            stage = "DT1038_0:SIGNED_BY_US"
            httpx.post(
                move, json={"fields": {"stageId": stage, "ufCrmObmenActFile": ["s.pdf", scan]}, "user": 7}
            )
            wait_for(
                lambda: act(act_id).status == SIGNED_BY_US, timeout=60, what="the manager's move in obmen"
            )
            httpx.post(move, json={"fields": {"stageId": "DT1038_0:SENT"}, "user": 7})
            wait_for(lambda: act(act_id).status == SENT, timeout=60, what="the act e-mailed")
            wait_for(
                lambda: items_of(emulator)[0]["stageId"] == "DT1038_0:SENT",
                timeout=60,
                what="the item to follow",
            )
    finally:
        worker.stop()
    [letter] = smtp.messages
    assert [a.get_content() for a in letter.iter_attachments()] == [SCAN.content]
    assert len(items_of(emulator)) == 1

"""The Bitrix24 side of the acts flow against the Bitrix24 emulator, over real HTTP.

Steps run in-process (``drain``) so each test can look between them; ``test_e2e.py`` runs the
same flow through a real worker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from models.acts import SENT, SIGNED, ActCrmAction, ActDeadline, ActDeal, ActFormRequest
from models.db import session_scope
from models.exchange_log import ExchangeLog
from models.outbox import Outbox
from sandbox.bitrix24.events import APPLICATION_TOKEN
from sandbox.server import Sandbox
from tasks.acts import machine
from tasks.acts.deadlines import sweep_deadlines
from tasks.acts.deals import deal_changed, reconcile_deals
from tasks.acts.entries import StageRows, fire_batch, move_stages
from tasks.acts.register import Effects, change_status, lock_act
from tasks.machinery.deadlines import DeadlineRows
from tasks.machinery.workdays import MOSCOW
from tests.acts.support import (
    MANAGER,
    SCAN,
    SmtpSink,
    act,
    bitrix,
    crm_actions,
    deadlines,
    draft,
    drain,
    events_delivered,
    events_gateway,
    portals,
    seed_deal,
)
from tests.harness.gateway import GatewayThread
from tests.harness.waiting import wait_for

APPROVED = "UC_APPROVED"


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch, smtp: SmtpSink, obmen_app: Any) -> Iterator[Sandbox]:
    with portals(
        monkeypatch, OBMEN_SMTP_URL=smtp.url, OBMEN_ACTS_PUBLIC_URL="https://obmen.example"
    ) as sandbox:
        yield sandbox


@pytest.fixture
def gateway(box: Sandbox) -> Iterator[GatewayThread]:
    with events_gateway(box) as gw:
        yield gw


def manager_moves(box: Sandbox, deal_id: int, stage: str) -> None:
    httpx.post(
        f"{box.url}/_sandbox/bitrix24/deals/{deal_id}/update", json={"STAGE_ID": stage}
    ).raise_for_status()


def deal_row(deal_id: int = 101) -> ActDeal:
    with session_scope() as s:
        return s.scalars(select(ActDeal).where(ActDeal.deal_id == deal_id)).one()


def form_row() -> ActFormRequest:
    with session_scope() as s:
        return s.scalars(select(ActFormRequest)).one()


def portal(box: Sandbox, what: str) -> Any:
    return httpx.get(f"{box.url}/_sandbox/bitrix24/{what}").json()


# --- events in ----------------------------------------------------------------------------------------
def test_approval_sends_the_form_letter_and_the_answer_fills_the_acts(
    box: Sandbox, gateway: GatewayThread, smtp: SmtpSink
) -> None:
    seed_deal(box)
    draft(deal_id=101, number="А-1")  # a paper act drafted before the answer
    drain()
    manager_moves(box, 101, APPROVED)
    delivered = events_delivered(box)
    assert delivered[-1]["status"] == 200 and delivered[-1]["event"] == "ONCRMDEALUPDATE"
    assert deal_row().status == "pending"  # the event carried the id only: the step reads the deal
    assert drain()["acts.form.send"] == 1
    row = deal_row()
    assert (row.stage_id, row.title, row.company_id, row.assigned_by_id) == (
        APPROVED,
        "Экспорт сыра",
        55,
        MANAGER,
    )

    form = form_row()
    assert (form.status, form.email, form.requested_by) == ("sent", "buh@romashka.example", "stage")
    [letter] = smtp.messages
    assert letter["To"] == "ООО «Ромашка» <buh@romashka.example>"
    assert "Экспорт сыра" in str(letter["Subject"])
    link = f"https://obmen.example/acts/forms/{form.token}"
    assert link in letter.get_content()
    assert [(d.kind, d.status) for d in deadlines()] == [("form_answer", "waiting")]
    assert form.sent_at is not None and deadlines()[0].due_at == form.sent_at + timedelta(days=3)

    # Further events of the same deal send nothing more.
    manager_moves(box, 101, APPROVED)
    httpx.post(f"{box.url}/_sandbox/bitrix24/deals/101/update", json={"TITLE": "Экспорт сыра и масла"})
    events_delivered(box)
    drain()
    assert len(smtp.messages) == 1

    page = httpx.get(gateway.url + f"/acts/forms/{form.token}")
    assert page.status_code == 200 and "exchange_method" in page.text
    refused = httpx.post(gateway.url + f"/acts/forms/{form.token}", json={"exchange_method": "edo"})
    assert refused.status_code == 422 and "operator" in refused.text
    answered = httpx.post(
        gateway.url + f"/acts/forms/{form.token}",
        data={"exchange_method": "edo", "edo_operator": "СБИС", "edo_id": "2BE1234567890"},
    )
    assert answered.status_code == 200 and "через ЭДО" in answered.text
    again = httpx.post(gateway.url + f"/acts/forms/{form.token}", json={"exchange_method": "paper"})
    assert again.status_code == 409
    assert (
        httpx.post(gateway.url + "/acts/forms/not-a-token", json={"exchange_method": "paper"}).status_code
        == 404
    )

    row = deal_row()
    assert (row.exchange_method, row.edo_operator, row.edo_id) == ("edo", "СБИС", "2BE1234567890")
    drafted = act(1)
    assert (drafted.exchange_method, drafted.edo_operator, drafted.edo_id) == ("edo", "СБИС", "2BE1234567890")
    assert [d.status for d in deadlines()] == ["cancelled"]
    drain()
    [notice] = portal(box, "notifications")
    assert (
        notice["user_id"] == MANAGER
        and "ответил" in notice["message"]
        and "2BE1234567890" in notice["message"]
    )
    # An act drafted after the answer takes it as well.
    later = act(draft(deal_id=101, number="Э-2", act_type="electronic_ul"))
    assert (later.edo_operator, later.edo_id) == ("СБИС", "2BE1234567890")


def test_a_forged_application_token_is_refused(box: Sandbox, gateway: GatewayThread) -> None:
    body = {"event": "ONCRMDEALUPDATE", "data[FIELDS][ID]": "101", "auth[application_token]": "forged"}
    response = httpx.post(
        gateway.url + "/bitrix24/events",
        content=urlencode(body),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    missing = httpx.post(
        gateway.url + "/bitrix24/events", data={"event": "ONCRMDEALUPDATE", "data[FIELDS][ID]": "101"}
    )
    assert missing.status_code == 401
    with session_scope() as s:
        # Nothing of a request that fails authentication is stored (the refusal is a log line and a count).
        assert s.scalars(select(ActDeal)).all() == []
        assert s.scalars(select(ExchangeLog).where(ExchangeLog.direction == "in")).all() == []
    good = httpx.post(
        gateway.url + "/bitrix24/events",
        data={**body, "auth[application_token]": APPLICATION_TOKEN},
    )
    assert good.json() == {"accepted": "ONCRMDEALUPDATE", "deal_id": 101}
    with session_scope() as s:
        [logged] = s.scalars(select(ExchangeLog).where(ExchangeLog.direction == "in")).all()
    assert logged.response_status == 200
    assert APPLICATION_TOKEN not in (logged.request_body or "")
    other = httpx.post(
        gateway.url + "/bitrix24/events",
        data={"event": "ONCRMLEADADD", "data[FIELDS][ID]": "5", "auth[application_token]": APPLICATION_TOKEN},
    )
    assert other.json() == {"ignored": "ONCRMLEADADD"}


def test_lost_events_are_found_by_the_reconciliation(
    box: Sandbox, gateway: GatewayThread, smtp: SmtpSink
) -> None:
    seed_deal(box)
    events_delivered(box)
    drain()
    reconcile_deals()  # the first run sets the cursor
    drain()
    httpx.put(box.url + "/_sandbox/bitrix24/events", json={"drop_next": 1})
    manager_moves(box, 101, APPROVED)
    wait_for(bitrix(box).events.idle, timeout=30, what="the portal's queue")
    assert bitrix(box).events.state()["deliveries"][-1]["dropped"] is True
    drain()
    assert deal_row().stage_id != APPROVED and smtp.messages == []

    found = reconcile_deals()
    assert found["marked"] == 1
    drain()
    assert deal_row().stage_id == APPROVED
    assert len(smtp.messages) == 1
    assert reconcile_deals()["marked"] == 0  # nothing new since


# --- deadlines ----------------------------------------------------------------------------------------
def test_no_answer_in_three_days_notifies_the_manager(box: Sandbox, smtp: SmtpSink) -> None:
    seed_deal(box, stage=APPROVED)
    with session_scope() as s:
        deal_changed(s, 101)
    drain()
    form = form_row()
    assert form.sent_at is not None
    assert sweep_deadlines(now=form.sent_at + timedelta(days=3) - timedelta(seconds=1)) == {
        "signature": 0,
        "form_answer": 0,
    }
    assert sweep_deadlines(now=form.sent_at + timedelta(days=3)) == {"signature": 0, "form_answer": 1}
    drain()
    [notice] = portal(box, "notifications")
    assert notice["user_id"] == MANAGER and "не заполнил форму" in notice["message"]
    assert sweep_deadlines(now=form.sent_at + timedelta(days=30)) == {"signature": 0, "form_answer": 0}


def _paper_sent(number: str, deal_id: int, when: Any) -> int:
    act_id = draft(number=number, deal_id=deal_id)
    with session_scope() as s:
        change_status(s, lock_act(s, act_id), "Подписан с нашей стороны", actor=machine.MANAGER, upload=SCAN)
        change_status(s, lock_act(s, act_id), SENT, actor=machine.MANAGER, now=when)
    return act_id


def test_five_working_days_unsigned_give_one_task(box: Sandbox) -> None:
    seed_deal(box)
    sent_at = datetime(2025, 10, 30, 12, 0, tzinfo=MOSCOW)  # Thursday; Sat 1 Nov works, 3–4 Nov are off
    act_id = _paper_sent("А-1", 101, sent_at)
    drain()
    assert portal(box, "deals/101")["STAGE_ID"] == "UC_ACT_SENT"
    due = datetime(2025, 11, 8, 0, 0, tzinfo=MOSCOW)
    assert deadlines()[0].due_at == due
    assert sweep_deadlines(now=due - timedelta(seconds=1))["signature"] == 0
    assert sweep_deadlines(now=due)["signature"] == 1
    drain()
    [task] = portal(box, "tasks")
    assert task["title"] == "Указать статус акта"
    assert task["responsibleId"] == str(MANAGER) and task["ufCrmTask"] == ["D_101"]
    assert "А-1" in task["description"] and "30.10.2025" in task["description"]
    [deadline] = deadlines()
    assert (deadline.status, deadline.result) == ("fired", f"task {task['id']}")

    # The step runs again (its worker died after Bitrix24 answered): it finds the task, adds none.
    with session_scope() as s:
        row = s.get(ActDeadline, deadline.id)
        assert row is not None
        row.status = "due"
    drain()
    assert len(portal(box, "tasks")) == 1
    # The manager calls the counterparty and records the outcome; the deal follows.
    with session_scope() as s:
        change_status(s, lock_act(s, act_id), "Акт принят, но не подписан заявителем", actor=machine.MANAGER)
    drain()
    assert portal(box, "deals/101")["STAGE_ID"] == "WON"


def test_a_task_is_not_created_for_an_act_signed_meanwhile(box: Sandbox) -> None:
    seed_deal(box)
    act_id = _paper_sent("А-1", 101, datetime(2025, 10, 30, 12, 0, tzinfo=MOSCOW))
    sweep_deadlines(now=deadlines()[0].due_at)  # fired; the task step has not run yet
    with session_scope() as s:
        change_status(s, lock_act(s, act_id), SIGNED, actor=machine.MANAGER, upload=SCAN)
    drain()
    assert portal(box, "tasks") == []
    assert deadlines()[0].result == "skipped: the act is «Акт получен и подписан» now"


def test_beat_down_for_two_days_fires_each_overdue_act_once(box: Sandbox) -> None:
    for deal_id in (101, 102, 103, 104, 105):
        bitrix(box).add_deal({"ID": deal_id, "TITLE": f"Сделка {deal_id}", "ASSIGNED_BY_ID": MANAGER})
    # Sent Monday 13 … Friday 17 October 2025: due at 00:00 of Tue 21 … Sat 25 October.
    ids = [_paper_sent(f"А-{i}", 101 + i, datetime(2025, 10, 13 + i, 15, 0, tzinfo=MOSCOW)) for i in range(5)]
    drain()
    # Beat was last up on Tuesday 21 October at 01:00, and comes back two days later.
    assert sweep_deadlines(now=datetime(2025, 10, 21, 1, 0, tzinfo=MOSCOW))["signature"] == 1
    back = datetime(2025, 10, 23, 1, 0, tzinfo=MOSCOW)
    results: list[dict[str, int]] = []
    sweepers = [threading.Thread(target=lambda: results.append(sweep_deadlines(now=back))) for _ in range(3)]
    for t in sweepers:
        t.start()
    for t in sweepers:
        t.join()
    assert sum(r["signature"] for r in results) == 2  # due Wed 22 and Thu 23, whichever sweep got them
    assert sweep_deadlines(now=back + timedelta(days=2))["signature"] == 2  # Fri 24 and Sat 25
    assert sweep_deadlines(now=back + timedelta(days=30))["signature"] == 0
    drain()
    tasks = portal(box, "tasks")
    assert len(tasks) == 5
    assert sorted(t["ufCrmTask"][0] for t in tasks) == [f"D_{d}" for d in (101, 102, 103, 104, 105)]
    assert {d.status for d in deadlines()} == {"fired"}
    assert all(act(i).status == SENT for i in ids)


# --- batches ---------------------------------------------------------------------------------------
def _messages(task: str) -> list[dict[str, Any]]:
    with session_scope() as s:
        rows = s.scalars(select(Outbox).where(Outbox.task_name == task).order_by(Outbox.id))
        return [row.kwargs["kwargs"] for row in rows]


def test_deal_moves_go_fifty_to_a_batch_call(box: Sandbox) -> None:
    for deal_id in range(1, 61):
        bitrix(box).add_deal({"ID": deal_id, "STAGE_ID": "PREPARATION", "ASSIGNED_BY_ID": MANAGER})
    ids = [draft(number=f"А-{d}", deal_id=d) for d in range(1, 62)]  # deal 61 is not in the portal
    with session_scope() as s:
        for act_id in ids:
            change_status(
                s, lock_act(s, act_id), "Подписан с нашей стороны", actor=machine.MANAGER, upload=SCAN
            )
        effects = Effects()
        for act_id in ids:  # one transaction moving 61 acts, as a page of the СБИС feed does
            change_status(s, lock_act(s, act_id), SENT, actor=machine.MANAGER, effects=effects)
        effects.write(s)
    messages = _messages("acts.crm.move_stages")[-2:]  # after one per draft («Подготовка акта»)
    assert [len(m["ids"]) for m in messages] == [50, 11]
    # Another mover holds one row: this batch leaves it to that mover.
    held = messages[0]["ids"][0]
    holder = session_scope()
    other = holder.__enter__()
    other.execute(select(ActCrmAction).where(ActCrmAction.id == held).with_for_update())
    try:
        for message in messages:
            with session_scope() as s:
                move_stages.plain(s, StageRows(**message))
    finally:
        holder.__exit__(None, None, None)
    batches = [e for e in bitrix(box).log.since() if "/batch" in e.path]
    assert len(batches) == 2
    rows = {r.id: r for r in crm_actions()}
    assert rows[held].status == "pending" and rows[held].last_error is None
    missing = next(r for r in rows.values() if r.deal_id == 61)
    assert missing.status == "pending" and "Not found" in (missing.last_error or "")
    assert sum(r.status == "done" for r in rows.values()) == 59
    bitrix(box).add_deal({"ID": 61, "STAGE_ID": "PREPARATION", "ASSIGNED_BY_ID": MANAGER})
    drain()  # what the sweeper's re-drive runs: the row, with the other waiting one
    assert {r.status for r in crm_actions()} == {"done"}
    assert {d["STAGE_ID"] for d in portal(box, "deals")} == {"UC_ACT_SENT"}


def test_due_deadlines_are_handed_out_fifty_to_a_message(box: Sandbox) -> None:
    for deal_id in range(1, 56):
        bitrix(box).add_deal({"ID": deal_id, "ASSIGNED_BY_ID": MANAGER})
    for d in range(1, 56):
        _paper_sent(f"А-{d}", d, datetime(2025, 10, 13, 15, 0, tzinfo=MOSCOW))
    assert sweep_deadlines(now=datetime(2025, 10, 30, tzinfo=MOSCOW))["signature"] == 55
    messages = _messages("acts.deadlines.fire_batch")
    assert [len(m["ids"]) for m in messages] == [50, 5]
    for message in messages:
        with session_scope() as s:
            assert fire_batch.plain(s, DeadlineRows(**message)) == {"done": len(message["ids"])}
    assert len(portal(box, "tasks")) == 55
    with session_scope() as s:
        assert fire_batch.plain(s, DeadlineRows(**messages[1])) == {"nothing_to_do": 5}

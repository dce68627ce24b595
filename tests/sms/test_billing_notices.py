"""The billing flow's SMS and requests (seed 001): reminders and the warning sent once each, the
disconnection held while the subscriber owes, the override, «вы подключены», requests of any kind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from models.db import session_scope
from models.master import Subscriber
from models.payments import BillingDeadline, SubscriberRequest
from models.sms import SmsMessage
from sandbox.server import Sandbox
from tasks.machinery.steps import STEPS, Outcome, run_step
from tasks.payments.billing import DEADLINES, escalate
from tasks.payments.entries import (
    AccrueArgs,
    CloseArgs,
    OverrideArgs,
    RequestArgs,
    accrue,
    close_request,
    override_request,
    submit_request,
)
from tasks.payments.requests import RequestConflict, UnknownRequest
from tests.harness.bank import pay_and_post, seed_subscribers
from tests.harness.outbox import run_pending

PHONES = ["+79160000001", "8 916 000-00-02", "8 (916) 000-00-03"]


@pytest.fixture
def subscribers(smsc: str, box: Sandbox) -> Iterator[list[str]]:
    inns = seed_subscribers(3, accrued=False)
    with session_scope() as s:
        for inn, phone in zip(inns, PHONES, strict=True):
            s.execute(update(Subscriber).where(Subscriber.inn == inn).values(phone=phone))
    b24 = f"{box.url}/_sandbox/bitrix24"
    httpx.post(f"{b24}/deals", json=[{"ID": 1000 + i} for i in range(3)]).raise_for_status()
    yield inns


def sms() -> list[tuple[str, str]]:
    with session_scope() as s:
        return [(m.business_key, m.phone) for m in s.scalars(select(SmsMessage).order_by(SmsMessage.id))]


def pay(inn: str, tid: str, amount: str = "1500.00") -> None:
    pay_and_post(inn, amount, tid)


def test_reminders_repeat_and_warning_go_once_each_by_sms(subscribers: list[str], smsc: str) -> None:
    a, b, c = subscribers
    with session_scope() as s:
        accrue.plain(s, AccrueArgs(period="2026-12"))
    with session_scope() as s:
        accrue.plain(s, AccrueArgs(period="2026-12"))  # a second run adds nothing
    assert [k for k, _ in sms()] == [f"reminder:{inn}:2026-12:1" for inn in subscribers]
    pay(b, "P-B")
    with session_scope() as s:
        s.execute(update(BillingDeadline).values(due_at=datetime(2026, 1, 1, tzinfo=UTC)))
    assert escalate() == {"fired": 4, "cancelled": 2}
    assert run_pending(DEADLINES.fire, DEADLINES.fire_batch) == [Outcome.DONE] * 4
    keys = [k for k, _ in sms()][3:]
    assert sorted(keys) == sorted(
        [f"reminder:{inn}:2026-12:2" for inn in (a, c)]
        + [f"disconnect_warning:{inn}:2026-12" for inn in (a, c)]
    )
    assert run_pending("sms.send") == [Outcome.DONE] * 7
    texts = {m["phone"]: m["text"] for m in httpx.get(f"{smsc}/messages").json() if "отключена" in m["text"]}
    assert set(texts) == {"79160000001", "79160000003"} and "1500.00 руб." in texts["79160000001"]


def test_a_disconnection_waits_for_the_payment_that_clears_the_debt(subscribers: list[str]) -> None:
    a, b, _ = subscribers
    with session_scope() as s:
        accrue.plain(s, AccrueArgs(period="2026-12"))
    with session_scope() as s:
        held = submit_request.plain(s, RequestArgs(number="О-1", kind="disconnect", inn=a))
        free = submit_request.plain(s, RequestArgs(number="О-2", kind="change_tariff", inn=b, tariff="PRO"))
    assert run_pending("billing.start_request_process") == [Outcome.DONE]
    pay(a, "P-A1", "1000.00")  # not all of it: still held
    assert run_pending("billing.start_request_process") == []
    pay(a, "P-A2", "500.00")
    assert run_pending("billing.start_request_process") == [Outcome.DONE]
    with session_scope() as s:
        rows = {r.id: r for r in s.scalars(select(SubscriberRequest))}
        assert rows[held].status == rows[free].status == "process_started"
        assert rows[held].deal_id == 1000 and rows[held].override_by is None


def test_an_override_records_who_and_why_and_bad_ones_are_refused(subscribers: list[str]) -> None:
    a = subscribers[0]
    with session_scope() as s:
        accrue.plain(s, AccrueArgs(period="2026-12"))
    with session_scope() as s:
        submit_request.plain(s, RequestArgs(number="О-3", kind="disconnect", inn=a))
    with pytest.raises(ValidationError):
        OverrideArgs.model_validate({"number": "О-3", "by": "", "reason": "x"})
    with session_scope() as s, pytest.raises(UnknownRequest):
        override_request.call(s, number="О-404", by="Иванова", reason="договор расторгнут")
    with session_scope() as s:
        assert override_request.call(s, number="О-3", by="Иванова", reason="договор расторгнут") == "new"
    with session_scope() as s, pytest.raises(RequestConflict, match="status is new"):
        override_request.call(s, number="О-3", by="Иванова", reason="ещё раз")
    assert run_pending("billing.start_request_process") == [Outcome.DONE]
    with session_scope() as s:
        row = s.scalars(select(SubscriberRequest)).one()
        assert (row.status, row.override_by, row.override_reason) == (
            "process_started",
            "Иванова",
            "договор расторгнут",
        )
        assert row.override_at is not None


def test_a_closed_connection_says_you_are_connected_once(subscribers: list[str], smsc: str) -> None:
    with session_scope() as s:
        submit_request.plain(
            s,
            RequestArgs(
                number="П-1", kind="connect", inn="500100732259", name="ООО Новый", phone="89167770000"
            ),
        )
    with session_scope() as s, pytest.raises(RequestConflict, match="no process running"):
        close_request.call(s, number="П-1")
    assert run_pending("billing.start_request_process") == [Outcome.DONE]
    for _ in range(2):
        with session_scope() as s:
            assert close_request.plain(s, CloseArgs(number="П-1")) == "closed"
    assert sms() == [("connected:П-1", "79167770000")]
    assert run_pending("sms.send") == [Outcome.DONE]
    assert "Вы подключены" in httpx.get(f"{smsc}/messages").json()[0]["text"]


def test_requests_of_any_kind_become_the_departments_task_once(
    subscribers: list[str], box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.settings import get_settings

    monkeypatch.setenv("OBMEN_BILLING_DEPARTMENTS", '{"complaint": 21, "other": 22}')
    get_settings.cache_clear()
    with session_scope() as s:
        submit_request.plain(
            s, RequestArgs(number="Ж-1", kind="complaint", inn=subscribers[0], comment="Нет связи с утра")
        )
        submit_request.plain(s, RequestArgs(number="В-1", kind="question", inn=subscribers[1]))
        submit_request.plain(s, RequestArgs(number="Ж-1", kind="complaint", inn=subscribers[0]))
    assert run_pending("billing.start_request_process") == [Outcome.DONE, Outcome.DONE]
    # The complaint's task was made, then its worker died before recording it: the retry finds it.
    with session_scope() as s:
        complaint_id = s.scalars(
            update(SubscriberRequest)
            .where(SubscriberRequest.number == "Ж-1")
            .values(status="new", attempts=1, bitrix24_task_id=None)
            .returning(SubscriberRequest.id)
        ).one()
    assert run_step(STEPS["billing.start_request_process"], complaint_id) is Outcome.DONE
    tasks = httpx.get(f"{box.url}/_sandbox/bitrix24/tasks").json()
    assert sorted((t["responsibleId"], t["xmlId"]) for t in tasks) == [
        ("21", "subscriber_requests:Ж-1"),
        ("22", "subscriber_requests:В-1"),
    ]
    complaint = next(t for t in tasks if t["responsibleId"] == "21")
    assert "Нет связи с утра" in complaint["description"] and complaint["ufCrmTask"] == ["D_1000"]
    with session_scope() as s:
        assert s.get(SubscriberRequest, complaint_id).bitrix24_task_id == complaint["id"]  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        RequestArgs.model_validate({"number": "X", "kind": "praise", "inn": subscribers[0]})


def test_requests_over_http_and_the_cli_held_overridden_closed_and_bad_input(
    subscribers: list[str], obmen_app: object
) -> None:
    from click.testing import CliRunner

    from tasks.machinery.outbox import set_dispatch_mode
    from tests.harness.gateway import GatewayThread
    from workers.cli import cli

    write, read = {"Authorization": "Bearer test-write-token"}, {"Authorization": "Bearer test-read-token"}
    a = subscribers[0]
    with session_scope() as s:
        accrue.plain(s, AccrueArgs(period="2026-12"))
    with GatewayThread() as gw:
        set_dispatch_mode("off")
        body = {"number": "О-7", "kind": "disconnect", "inn": a}
        assert httpx.post(f"{gw.url}/billing/requests", json=body, headers=write).status_code == 202
        held = httpx.get(f"{gw.url}/billing/requests/О-7", headers=read)
        assert held.status_code == 200 and held.json()["status"] == "awaiting_payment"
        assert httpx.post(f"{gw.url}/billing/requests/О-7/close", headers=write).status_code == 409
        missing = httpx.post(
            f"{gw.url}/billing/requests/О-404/override", json={"by": "А", "reason": "Б"}, headers=write
        )
        assert missing.status_code == 404
        for bad in (
            {"by": "", "reason": "долг списан"},
            {"by": "Иванова"},
            {"by": "И", "reason": "x", "extra": 1},
        ):
            answer = httpx.post(f"{gw.url}/billing/requests/О-7/override", json=bad, headers=write)
            assert answer.status_code == 422, (bad, answer.text)
        read_only = httpx.post(
            f"{gw.url}/billing/requests/О-7/override", json={"by": "А", "reason": "Б"}, headers=read
        )
        assert read_only.status_code == 403
        assert (
            httpx.get(f"{gw.url}/billing/requests/О-7", headers=read).json()["status"] == "awaiting_payment"
        )

        done = CliRunner().invoke(
            cli, ["billing", "override", "О-7", "--by", "Петров", "--reason", "долг списан"]
        )
        assert done.exit_code == 0, done.output
        again = CliRunner().invoke(cli, ["billing", "override", "О-7", "--by", "Петров", "--reason", "ещё"])
        assert again.exit_code == 1 and "does not wait for a payment" in again.output
        assert run_pending("billing.start_request_process") == [Outcome.DONE]
        closed = httpx.post(f"{gw.url}/billing/requests/О-7/close", headers=write)
        assert closed.status_code == 200, closed.text
        state = closed.json()
        assert (state["status"], state["override_by"], state["override_reason"]) == (
            "closed",
            "Петров",
            "долг списан",
        )
    assert sms() == [
        (f"reminder:{inn}:2026-12:1", p)
        for inn, p in zip(subscribers, ["79160000001", "79160000002", "79160000003"], strict=True)
    ]

"""Posting, allocation, accruals, escalation, requests and the CRM, as plain steps against the Bitrix24 sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import redis
from sqlalchemy import select, update

from models.db import session_scope
from models.master import Subscriber
from models.outbox import Outbox
from models.payments import (
    Accrual,
    BillingDeadline,
    DealPaidMark,
    Payment,
    PaymentAllocation,
    SubscriberBalance,
    SubscriberRequest,
)
from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.harness import SandboxClock
from sandbox.server import Sandbox
from tasks.machinery.steps import STEPS, Outcome, run_step
from tasks.payments.billing import DEADLINES, escalate
from tasks.payments.entries import AccrueArgs, RequestArgs, accrue, submit_request
from tasks.payments.register import Incoming, accept_payments
from tasks.payments.steps import post_payments
from tests.harness.bank import FEE, bank_settings, pay_and_post, seed_subscribers
from tests.harness.outbox import run_pending as run_outbox

PAID_AT = datetime(2026, 11, 20, 7, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox([Bitrix24Emulator(SandboxClock())]) as sandbox:
        yield sandbox


@pytest.fixture
def b24(box: Sandbox, obmen_app, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from tasks.machinery.outbox import set_dispatch_mode

    emulator = box.emulator("bitrix24")
    emulator.reset()
    set_dispatch_mode("off")  # steps are run by hand here; their outbox rows stay for the assertions
    with bank_settings(monkeypatch, **box.client_settings()):
        yield f"{box.url}/_sandbox/bitrix24"
    set_dispatch_mode("inline")


def seed_deals(b24: str, first: int, n: int) -> None:
    assert (
        httpx.post(
            f"{b24}/deals", json=[{"ID": first + i, "TITLE": f"Абонент {i}"} for i in range(n)]
        ).status_code
        == 201
    )


def pay(inn: str, amount: str, tid: str) -> int:
    return pay_and_post(inn, amount, tid)


def run_pending(task: str) -> list[Outcome]:
    """Run the steps the outbox holds for ``task``, also those the deadline sweep handed out 50 to a message."""
    return run_outbox(task, DEADLINES.fire_batch if task == DEADLINES.fire else None)


def balance(inn: str) -> tuple[Decimal, Decimal]:
    with session_scope() as s:
        row = s.get(SubscriberBalance, inn)
        assert row is not None
        return row.debt, row.advance


def deal(b24: str, deal_id: int) -> dict:
    return httpx.get(f"{b24}/deals/{deal_id}").json()


def test_allocation_oldest_first_then_advance_and_the_deal_follows(b24: str) -> None:
    inn = seed_subscribers(1)[0]
    seed_deals(b24, 1000, 1)
    with session_scope() as s:  # a second, newer month
        s.add(
            Accrual(
                subscriber_inn=inn,
                period=datetime(2026, 12, 1).date(),
                amount=Decimal("1500.00"),
                paid_amount=0,
                status="unpaid",
            )
        )
        s.get(SubscriberBalance, inn).debt = Decimal("3000.00")  # type: ignore[union-attr]
    pay(inn, "2000.00", "P1")
    with session_scope() as s:
        accruals = s.execute(
            select(Accrual.period, Accrual.paid_amount, Accrual.status).order_by(Accrual.period)
        ).all()
    assert [(str(p), a, st) for p, a, st in accruals] == [
        ("2026-11-01", 1500, "paid"),
        ("2026-12-01", 500, "unpaid"),
    ]
    assert balance(inn) == (Decimal("1000.00"), 0)
    assert run_pending("crm.mark_deal_paid") == []  # still owes

    pay(inn, "1200.00", "P2")
    assert balance(inn) == (0, Decimal("200.00"))
    assert run_pending("crm.mark_deal_paid") == [Outcome.DONE]
    assert deal(b24, 1000)["stage_name"] == "Оплачено"
    with session_scope() as s:
        assert s.scalar(select(Payment.remainder).where(Payment.transaction_id == "P2")) == Decimal("200.00")
        assert s.scalars(select(DealPaidMark.status)).all() == ["done"]
        assert len(s.scalars(select(PaymentAllocation)).all()) == 3

    # The next month's accrual eats the advance first.
    with session_scope() as s:
        s.execute(update(Accrual).values(period=Accrual.period - timedelta(days=400)))
    with session_scope() as s:
        result = accrue.plain(s, AccrueArgs(period="2026-11"))
    assert result == {"period": "2026-11", "created": 1, "already": 0}
    assert balance(inn) == (Decimal("1300.00"), 0)
    with session_scope() as s:
        assert accrue.plain(s, AccrueArgs(period="2026-11"))["created"] == 0


def test_a_batch_posts_each_payment_after_the_one_before_it(b24: str) -> None:
    owes_two, owes_one = seed_subscribers(2)
    with session_scope() as s:  # the first also owes a second, newer month
        s.add(Accrual(subscriber_inn=owes_two, period=date(2026, 12, 1), amount=FEE, paid_amount=0))
        s.get(SubscriberBalance, owes_two).debt = 2 * FEE  # type: ignore[union-attr]
        paid = [("B1", owes_two, "1000.00"), ("B2", owes_one, "1500.00"), ("B3", owes_two, "2500.00")]
        paid += [("B4", owes_two, "500.00"), ("B5", "7707083893", "10.00")]  # the last: nobody's ИНН
        accepted = accept_payments(
            s,
            [
                Incoming(tid, "bank", inn, Decimal(amount), PAID_AT, "test", None, tid)
                for tid, inn, amount in paid
            ],
        )
    ids = [a.payment_id for a in accepted]

    assert post_payments.run_batch(ids) == {Outcome.DONE: 5}

    with session_scope() as s:
        allocations = s.execute(
            select(Payment.transaction_id, Accrual.period, PaymentAllocation.amount)
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .join(Accrual, Accrual.id == PaymentAllocation.accrual_id)
            .order_by(PaymentAllocation.id)
        ).all()
        payments = {
            row.transaction_id: row.status
            for row in s.execute(select(Payment.transaction_id, Payment.status))
        }
        remainders = {
            row.transaction_id: row.remainder
            for row in s.execute(select(Payment.transaction_id, Payment.remainder))
        }
        marked = s.scalars(select(DealPaidMark.payment_id).order_by(DealPaidMark.id)).all()
    assert [(tid, str(period), amount) for tid, period, amount in allocations] == [
        ("B1", "2026-11-01", Decimal("1000.00")),
        ("B2", "2026-11-01", Decimal("1500.00")),
        ("B3", "2026-11-01", Decimal("500.00")),
        ("B3", "2026-12-01", Decimal("1500.00")),
    ]
    assert payments == dict.fromkeys(["B1", "B2", "B3", "B4"], "posted") | {"B5": "unallocated"}
    assert (remainders["B3"], remainders["B4"]) == (Decimal("500.00"), Decimal("500.00"))
    assert balance(owes_two) == (0, Decimal("1000.00"))
    assert balance(owes_one) == (0, 0)
    assert marked == [ids[1], ids[2]]  # the payments that cleared a debt, each once
    with session_scope() as s:
        keys = s.scalars(select(Outbox.business_key).where(Outbox.task_name == "crm.mark_deal_paid")).all()
    assert sorted(k or "" for k in keys) == ["payments:B2", "payments:B3"]


def test_accrual_starts_the_reminder_then_escalates_to_a_disconnection_task(b24: str) -> None:
    inns = seed_subscribers(3, accrued=False)
    seed_deals(b24, 1000, 3)
    with session_scope() as s:
        assert accrue.plain(s, AccrueArgs(period="2026-12"))["created"] == 3
    assert run_pending("billing.start_reminder") == [Outcome.DONE] * 3
    workflows = httpx.get(f"{b24}/workflows").json()
    assert sorted(w["document_id"][2] for w in workflows) == ["DEAL_1000", "DEAL_1001", "DEAL_1002"]
    assert deal(b24, 1000)["stage_name"] == "Ожидает оплаты"
    assert workflows[0]["parameters"]["Debt"] == "1500.00"

    pay(inns[1], "1500.00", "PAID-1")  # one pays in time
    assert escalate() == {"fired": 0, "cancelled": 0}  # nothing due yet: deadlines are rows with due_at
    with session_scope() as s:
        s.execute(update(BillingDeadline).where(BillingDeadline.kind == "reminder").values(due_at=PAID_AT))
    assert escalate() == {"fired": 2, "cancelled": 1}
    assert run_pending("billing.fire_deadline") == [Outcome.DONE] * 2
    repeats = [w for w in httpx.get(f"{b24}/workflows").json() if w["parameters"].get("Reminder") == "repeat"]
    assert len(repeats) == 2 and httpx.get(f"{b24}/tasks").json() == []

    with session_scope() as s:
        s.execute(update(BillingDeadline).where(BillingDeadline.kind == "disconnect").values(due_at=PAID_AT))
    pay(inns[2], "1500.00", "PAID-2")  # pays late, before the disconnection
    assert escalate() == {"fired": 1, "cancelled": 2}
    assert run_pending("billing.fire_deadline") == [Outcome.DONE]
    tasks = httpx.get(f"{b24}/tasks").json()
    assert [(t["title"], t["responsibleId"], t["ufCrmTask"]) for t in tasks] == [
        ("Отключить абонента", "11", ["D_1000"])
    ]
    assert inns[0] in tasks[0]["description"] and "[obmen:billing_deadlines:" in tasks[0]["description"]
    assert escalate() == {"fired": 0, "cancelled": 0}  # each deadline fires once


def test_a_missing_deal_or_responsible_parks_with_a_clear_error(b24: str) -> None:
    seed_subscribers(1, accrued=False, first_deal=None)
    with session_scope() as s:
        accrue.plain(s, AccrueArgs(period="2026-12"))
    assert run_pending("billing.start_reminder") == [Outcome.PARKED]
    with session_scope() as s:
        accrual = s.scalars(select(Accrual)).one()
        assert "has no Bitrix24 deal" in (accrual.last_error or "") and accrual.parked_at is not None


def test_subscriber_requests_start_their_process_once(b24: str) -> None:
    inn = seed_subscribers(1, accrued=False)[0]
    seed_deals(b24, 1000, 1)
    with session_scope() as s:
        first = submit_request.plain(
            s, RequestArgs(number="З-1", kind="connect", inn="500100732259", name="ООО Новый")
        )
        second = submit_request.plain(
            s, RequestArgs(number="З-2", kind="change_tariff", inn=inn, tariff="PRO")
        )
    with session_scope() as s:
        assert submit_request.plain(s, RequestArgs(number="З-1", kind="connect", inn="500100732259")) == first
    assert run_pending("billing.start_request_process") == [Outcome.DONE, Outcome.DONE]
    with session_scope() as s:
        rows = {r.id: r for r in s.scalars(select(SubscriberRequest))}
    assert rows[first].status == "process_started" and rows[second].deal_id == 1000
    new_deal = deal(b24, rows[first].deal_id)  # type: ignore[arg-type]
    assert (
        new_deal["TITLE"] == "Подключение: ООО Новый"
        and new_deal["ORIGIN_ID"] == "obmen:subscriber_requests:З-1"
    )
    workflows = {w["id"]: w for w in httpx.get(f"{b24}/workflows").json()}
    assert workflows[rows[first].workflow_id]["template_id"] == 2
    assert workflows[rows[second].workflow_id]["parameters"]["Tariff"] == "PRO"


def test_bitrix24_throttling_or_failing_never_undoes_a_posted_payment(b24: str) -> None:
    inn = seed_subscribers(1)[0]
    seed_deals(b24, 1000, 1)
    payment_id = pay(inn, "1500.00", "CRM-1")

    # Throttled: the step is deferred through the outbox and keeps its attempts.
    httpx.put(f"{b24}/knobs", json={"fault": "query_limit", "fault_next": 1})
    assert run_pending("crm.mark_deal_paid") == [Outcome.DEFERRED]
    with session_scope() as s:
        mark = s.scalars(select(DealPaidMark)).one()
        assert (mark.status, mark.attempts) == ("pending", 0)
        deferred = s.scalars(
            select(Outbox).where(Outbox.business_key == f"deferred:crm_deal_marks:{mark.id}")
        ).one()
        assert deferred.published_at is None

    # The portal's budget recovers (here: the shared limiter forgets the 503 and the reserved slot).
    client = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    client.delete(*client.keys("obmen:ratelimit:*"))

    # Failing: retried by the one policy, then parked; the payment stays posted all along.
    httpx.put(f"{b24}/knobs", json={"fault": "internal_error", "fault_next": 3})
    outcomes = [run_step(STEPS["crm.mark_deal_paid"], mark.id) for _ in range(3)]
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.PARKED]
    with session_scope() as s:
        assert s.get(Payment, payment_id).status == "posted"  # type: ignore[union-attr]
        assert "INTERNAL_SERVER_ERROR" in (s.get(DealPaidMark, mark.id).last_error or "")  # type: ignore[union-attr]

    # The CRM catches up after a re-drive.
    from tasks.machinery.sweeper import redrive

    assert redrive("crm_deal_marks").ids == [mark.id]
    # The deferred message and the re-drive both arrive: one does it, the other finds it done.
    assert sorted(o.value for o in run_pending("crm.mark_deal_paid")) == ["done", "nothing_to_do"]
    assert deal(b24, 1000)["STAGE_ID"] == "UC_PAID"


def test_a_stale_mark_is_superseded_by_a_newer_debt(b24: str) -> None:
    inn = seed_subscribers(1)[0]
    seed_deals(b24, 1000, 1)
    pay(inn, "1500.00", "S-1")
    with session_scope() as s:
        s.get(SubscriberBalance, inn).debt = Decimal("1500.00")  # type: ignore[union-attr]
    assert run_pending("crm.mark_deal_paid") == [Outcome.DONE]
    with session_scope() as s:
        assert s.scalars(select(DealPaidMark.status)).one() == "superseded"
    assert deal(b24, 1000)["STAGE_ID"] == "NEW"


def test_a_payment_of_a_subscriber_without_deal_is_posted_without_crm(b24: str) -> None:
    inn = seed_subscribers(1, first_deal=None)[0]
    pay(inn, "1500.00", "ND-1")
    with session_scope() as s:
        assert s.scalars(select(DealPaidMark)).all() == []
        assert s.get(Subscriber, inn) is not None

"""Group commit: concurrent payments accepted in one transaction, each answered as if alone."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from models.db import session_scope
from models.outbox import Outbox
from models.payments import Payment
from tasks.payments.register import Acceptance, Incoming, accept_payment, accept_payments
from workers.gateway.group_commit import GroupCommit


class StoreDown(Exception):
    pass


def _incoming(transaction_id: str, amount: str = "1500.00") -> Incoming:
    return Incoming(
        transaction_id=transaction_id,
        source="bank",
        inn="500100732259",
        amount=Decimal(amount),
        paid_at=datetime(2026, 11, 20, 7, 15, tzinfo=UTC),
        purpose="Оплата услуг связи",
        payer_name=None,
        content_hash=f"{transaction_id}|{amount}",
    )


def test_requests_arriving_during_a_write_form_the_next_group() -> None:
    groups: list[list[int]] = []
    first_written = threading.Event()
    release = threading.Event()

    def write(items: list[int]) -> list[int]:
        groups.append(items)
        if len(groups) == 1:
            first_written.set()
            assert release.wait(10)
        return [item * 10 for item in items]

    commit = GroupCommit[int, int](write, shared=(StoreDown,))

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(commit.submit(0))
        await asyncio.to_thread(first_written.wait, 10)
        rest = [asyncio.ensure_future(commit.submit(i)) for i in range(1, 9)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(scenario()) == [i * 10 for i in range(9)]
    assert groups == [[0], list(range(1, 9))]


def test_a_failing_item_fails_alone_and_a_shared_failure_fails_the_group_once() -> None:
    calls: list[list[str]] = []

    def write(items: list[str]) -> list[str]:
        calls.append(items)
        if "down" in items:
            raise StoreDown("the store is down")
        if "bad" in items:
            raise ValueError("a bad item")
        return [item.upper() for item in items]

    commit = GroupCommit[str, str](write, shared=(StoreDown,))

    async def submit_together(items: list[str]) -> list[str | BaseException]:
        return await asyncio.gather(*(commit.submit(item) for item in items), return_exceptions=True)

    answers = asyncio.run(submit_together(["a", "bad", "c"]))
    assert answers[0] == "A" and answers[2] == "C"
    assert isinstance(answers[1], ValueError)
    assert calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]

    calls.clear()
    answers = asyncio.run(submit_together(["a", "down"]))
    assert all(isinstance(answer, StoreDown) for answer in answers)
    assert calls == [["a", "down"]]  # not retried one by one against a store that is down


def test_a_group_answers_each_payment_as_if_it_came_alone(obmen_app: object) -> None:
    with session_scope() as s:
        earlier = accept_payment(s, _incoming("G-OLD"))
    group = [
        _incoming("G-2"),
        _incoming("G-1"),
        _incoming("G-OLD"),  # recorded before: the same content
        _incoming("G-OLD", "1.00"),  # recorded before: other content
        _incoming("G-2"),  # the same delivery twice in one group
        _incoming("G-1", "2.00"),  # another payment under an id this group creates
    ]
    with session_scope() as s:
        answers = accept_payments(s, group)
    with session_scope() as s:
        ids = {row.transaction_id: row.id for row in s.execute(select(Payment.transaction_id, Payment.id))}
        posting = s.scalars(
            select(func.coalesce(Outbox.business_key, "")).where(Outbox.task_name == "payments.post")
        ).all()
        statuses = set(s.scalars(select(Payment.status)))
    assert answers == [
        Acceptance("created", ids["G-2"]),
        Acceptance("created", ids["G-1"]),
        Acceptance("duplicate", earlier.payment_id),
        Acceptance("conflict", earlier.payment_id),
        Acceptance("duplicate", ids["G-2"]),
        Acceptance("conflict", ids["G-1"]),
    ]
    assert sorted(posting) == ["payments:G-1", "payments:G-2", "payments:G-OLD"]
    assert statuses == {"received"}


@pytest.mark.parametrize("size", [1, 150])
def test_a_group_writes_one_row_per_payment(obmen_app: object, size: int) -> None:
    with session_scope() as s:
        answers = accept_payments(s, [_incoming(f"N-{i}") for i in range(size)])
    assert {a.outcome for a in answers} == {"created"}
    assert len({a.payment_id for a in answers}) == size
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == size
        assert s.scalar(select(func.count()).select_from(Outbox)) == size
        # Due now, written by the insert: the sweeper knows when each posting step was due.
        assert s.scalar(select(func.count()).where(Payment.next_step_at.is_(None))) == 0

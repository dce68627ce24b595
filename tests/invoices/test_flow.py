"""The invoice flow's steps over real Postgres and Redis against the 1C emulator over HTTP, run in
this process as a worker runs them: a request asked of 1C once, refusals deferred, every bad answer
rejected naming its field, 1C's change list followed from its cursor, bank payments matched."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from sqlalchemy import func, select, update

from integrations.onec.invoices import MSK
from integrations.onec.sessions import RedisSessions
from models.db import session_scope
from models.invoices import (
    MATCH_AMBIGUOUS,
    MATCH_MATCHED,
    MATCH_UNMATCHED,
    PAID,
    PARTLY_PAID,
    REQUEST_DONE,
    REQUEST_PENDING,
    REQUEST_REJECTED,
    UPDATE_APPLIED,
    UPDATE_REJECTED,
    Invoice,
    InvoiceChangeCursor,
    InvoiceFile,
    InvoicePayment,
    InvoiceRequest,
    InvoiceUpdate,
    InvoiceVersion,
)
from models.outbox import Outbox
from models.payments import Payment
from sandbox.onec import OnecEmulator
from sandbox.server import Sandbox
from tasks.invoices.chain import APPLY_UPDATE, ASK_ONEC, MATCH_PAYMENT
from tasks.invoices.changes import poll
from tasks.invoices.entries import request_invoice
from tasks.invoices.queries import RequestRow, invoice_detail, payments_for_a_person
from tasks.invoices.steps import apply_update, ask_onec, match_payment
from tasks.machinery.steps import Outcome
from tasks.payments.register import Incoming, accept_payment
from tasks.payments.steps import post_payments
from tests.invoices.conftest import INN, OTHER_INN


def ask(order: str = "ORD-1", amount: str = "1500.00", inn: str = INN) -> RequestRow:
    with session_scope() as s:
        return request_invoice.call(s, order_id=order, amount=amount, customer_inn=inn, source="test")


def row(model: type, row_id: int) -> object:
    with session_scope() as s:
        found = s.get(model, row_id)
        assert found is not None
        s.expunge(found)
        return found


def request_row(request_id: int) -> InvoiceRequest:
    found = row(InvoiceRequest, request_id)
    assert isinstance(found, InvoiceRequest)
    return found


def invoice(invoice_id: int) -> Invoice:
    found = row(Invoice, invoice_id)
    assert isinstance(found, Invoice)
    return found


def count(model: type, *where: object) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


def queued(task: str) -> list[dict[str, object]]:
    """The kwargs of the outbox rows of ``task``."""
    with session_scope() as s:
        rows = s.scalars(select(Outbox).where(Outbox.task_name == task).order_by(Outbox.id))
        return [r.kwargs["kwargs"] for r in rows]


def obtained(order: str = "ORD-1", amount: str = "1500.00", inn: str = INN) -> Invoice:
    state = ask(order, amount, inn)
    assert ask_onec.run(state.id) is Outcome.DONE
    done = request_row(state.id)
    assert done.status == REQUEST_DONE and done.invoice_id is not None
    return invoice(done.invoice_id)


def test_a_request_is_asked_of_1c_once_and_answered_from_the_register_after(
    flow: Sandbox, onec: OnecEmulator
) -> None:
    state = ask()
    assert (state.status, state.invoice) == (REQUEST_PENDING, None)
    assert queued(ASK_ONEC) == [{"id": state.id}]

    assert ask_onec.run(state.id) is Outcome.DONE
    assert ask_onec.run(state.id) is Outcome.NOTHING_TO_DO  # a doubled message changes nothing
    done = request_row(state.id)
    assert done.status == REQUEST_DONE and done.invoice_id is not None
    held = onec.books.find(invoice(done.invoice_id).onec_id)
    assert held is not None
    with session_scope() as s:
        detail = invoice_detail(s, done.invoice_id)
        stored = s.get(InvoiceFile, detail.file_sha256)
        assert stored is not None and stored.content == held.pdf
    assert (detail.number, detail.order_id, detail.amount, detail.version) == (
        held.number,
        "ORD-1",
        Decimal("1500.00"),
        1,
    )

    calls = onec.stats()["calls"]
    again = ask(amount="1500")  # the same business key, written another way
    assert again.id == state.id and again.status == REQUEST_DONE
    assert again.invoice is not None and again.invoice.number == held.number
    assert onec.stats()["calls"] == calls and queued(ASK_ONEC) == [{"id": state.id}]

    # An invoice the register got otherwise (1C's change list) answers a new request: 1C is not asked.
    with session_scope() as s:
        s.execute(update(InvoiceRequest).values(order_id="ORD-1-earlier"))
    other = ask()
    assert other.id != state.id and other.status == REQUEST_DONE
    assert other.invoice is not None and other.invoice.id == done.invoice_id
    assert onec.stats()["calls"] == calls


def test_no_free_licence_or_session_is_try_later_never_a_failure(
    flow: Sandbox, onec: OnecEmulator, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = ask()
    onec.knobs.update({"extra": {"licences": 0}})
    assert ask_onec.run(state.id) is Outcome.DEFERRED
    onec.knobs.update({"extra": {"licences": 4, "licence_answer": "sessions"}})
    # Every one of our session leases held elsewhere: 1C is not even asked.
    sessions = RedisSessions(redis_client, "onec", 4)
    leases = [sessions.try_acquire(60) for _ in range(4)]
    calls = onec.stats()["calls"]
    assert ask_onec.run(state.id) is Outcome.DEFERRED
    assert onec.stats()["calls"] == calls
    waiting = request_row(state.id)
    assert (waiting.status, waiting.attempts, waiting.parked_at) == (REQUEST_PENDING, 0, None)
    assert len(queued(ASK_ONEC)) == 3  # the entry's, and one deferral each, through the outbox
    for lease in leases:
        assert lease is not None
        sessions.release(lease)
    assert ask_onec.run(state.id) is Outcome.DONE

    # 1C refusing our login is no "try later": parked for a person, with 1C's realm in the error.
    monkeypatch.setattr(onec, "users", {})
    refused = ask("ORD-2")
    assert ask_onec.run(refused.id) is Outcome.PARKED
    parked = request_row(refused.id)
    assert parked.status == REQUEST_PENDING and parked.parked_at is not None
    assert parked.last_error is not None and "1C:Enterprise 8.3" in parked.last_error


BAD_ANSWERS = [
    ("base64", "Файл"),
    ("not_pdf", "Файл"),
    ("broken_pdf", "Файл"),
    ("big_file", "Файл"),
    ("amount", "Сумма"),
    ("order", "Заказ"),
    ("number_taken", "Номер"),
]


def test_every_bad_answer_rejects_the_request_naming_the_field_and_writes_nothing(
    flow: Sandbox, onec: OnecEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBMEN_INVOICE_MAX_FILE_BYTES", str(64 * 1024))
    first = obtained("ORD-0")
    for n, (corrupt, field) in enumerate(BAD_ANSWERS):
        before = (count(Invoice), count(InvoiceVersion), count(InvoiceFile))
        onec.knobs.update({"extra": {"corrupt": corrupt, "corrupt_count": 1, "big_file_bytes": 100_000}})
        state = ask(f"ORD-{n + 1}")
        assert ask_onec.run(state.id) is Outcome.DONE, corrupt  # recorded, not retried: no crash loop
        rejected = request_row(state.id)
        assert (rejected.status, rejected.error_field, rejected.parked_at) == (REQUEST_REJECTED, field, None)
        assert rejected.last_error is not None and f"«{field}»" in rejected.last_error, corrupt
        assert (count(Invoice), count(InvoiceVersion), count(InvoiceFile)) == before, corrupt
        # The site asks again once 1C is right: the request is asked of 1C again, and done.
        again = ask(f"ORD-{n + 1}")
        assert again.id == state.id and again.status == REQUEST_PENDING
        assert ask_onec.run(state.id) is Outcome.DONE
        assert request_row(state.id).status == REQUEST_DONE, corrupt
    assert invoice(first.id).current_version == 1


def test_the_change_list_brings_payments_corrections_and_new_invoices_from_its_cursor(
    flow: Sandbox, onec: OnecEmulator
) -> None:
    first = obtained("ORD-1")
    second = obtained("ORD-2", "800.00")
    assert poll().outcomes["unchanged"] == 2  # the two creations, known already

    onec.books.pay(onec.books.invoices[first.onec_id], Decimal("500.00"), onec.clock.now())
    onec.books.correct(onec.books.invoices[second.onec_id], onec.clock.now())
    made_in_1c = onec.books.invoice_for("ORD-3", Decimal("99.90"), OTHER_INN, onec.clock.now())
    report = poll()
    assert report.outcomes == {"applied": 1, "fetch": 2}
    paid = invoice(first.id)
    assert (paid.payment_status, paid.paid_amount, paid.current_version) == (
        PARTLY_PAID,
        Decimal("500.00"),
        1,
    )

    updates = queued(APPLY_UPDATE)
    assert len(updates) == 2
    for kwargs in updates:
        update_id = kwargs["id"]
        assert isinstance(update_id, int)
        assert apply_update.run(update_id) is Outcome.DONE
    assert count(InvoiceUpdate, InvoiceUpdate.status == UPDATE_APPLIED) == 2
    corrected = invoice(second.id)
    assert corrected.current_version == 2
    with session_scope() as s:
        versions = invoice_detail(s, second.id).versions
    assert [v.version for v in versions] == [1, 2] and versions[0].file_sha256 != versions[1].file_sha256
    assert count(Invoice, Invoice.onec_id == made_in_1c.id) == 1

    # Read again from an older cursor (a poll whose commit was lost): nothing changes or doubles.
    with session_scope() as s:
        s.execute(update(InvoiceChangeCursor).values(cursor=None))
    again = poll()
    assert set(again.outcomes) == {"unchanged"}
    assert count(InvoiceUpdate) == 2 and count(InvoiceVersion) == 4

    # A poll lost to 1C refusing: the cursor stays, the next poll applies the page.
    onec.books.pay(onec.books.invoices[first.onec_id], None, onec.clock.now())
    onec.knobs.update({"fault": "licence", "fault_next": 1})
    with pytest.raises(Exception, match="licence"):
        poll()
    assert invoice(first.id).payment_status != PAID
    assert poll().outcomes == {"applied": 1}
    assert invoice(first.id).payment_status == PAID

    # A correction 1C answers with another number for the same id: rejected naming «Номер», and the
    # feed goes on.
    onec.books.correct(onec.books.invoices[first.onec_id], onec.clock.now())
    onec.knobs.update({"extra": {"corrupt": "renumber", "corrupt_count": 1}})
    poll()
    update_id = queued(APPLY_UPDATE)[-1]["id"]
    assert isinstance(update_id, int)
    assert apply_update.run(update_id) is Outcome.DONE
    rejected = row(InvoiceUpdate, update_id)
    assert isinstance(rejected, InvoiceUpdate)
    assert (rejected.status, rejected.error_field) == (UPDATE_REJECTED, "Номер")
    assert invoice(first.id).current_version == 1


def pay(purpose: str, amount: str, inn: str = INN, transaction_id: str = "T-1") -> int:
    with session_scope() as s:
        accepted = accept_payment(
            s,
            Incoming(
                transaction_id=transaction_id,
                source="bank",
                inn=inn,
                amount=Decimal(amount),
                paid_at=datetime.now(UTC),
                purpose=purpose,
                payer_name="ООО Покупатель",
                content_hash=transaction_id,
            ),
        )
    assert post_payments.run(accepted.payment_id) is Outcome.DONE
    with session_scope() as s:
        match_id = s.scalar(select(InvoicePayment.id).where(InvoicePayment.payment_id == accepted.payment_id))
    if match_id is not None:
        assert queued(MATCH_PAYMENT)[-1] == {"id": match_id}
        assert match_payment.run(match_id) is Outcome.DONE
    return accepted.payment_id


def test_bank_payments_naming_an_invoice_mark_it_paid_or_wait_for_a_person(
    flow: Sandbox, onec: OnecEmulator
) -> None:
    first = obtained("ORD-1", "1500.00")
    short = first.number.split("-")[-1].lstrip("0")  # payers write «123» for «0000-000123»
    pay(f"Оплата по счету № {short} от {_msk_day(first)} за автомобиль, в т.ч. НДС 20% 100-00", "1000.00")
    partly = invoice(first.id)
    assert (partly.payment_status, partly.paid_amount) == (PARTLY_PAID, Decimal("1000.00"))
    pay(f"Доплата по сч. {short}", "500.00", transaction_id="T-2")
    paid = invoice(first.id)
    assert (paid.payment_status, paid.paid_amount) == (PAID, Decimal("1500.00"))
    # 1C books the same bank statement later: the money is not counted twice.
    onec.books.pay(onec.books.invoices[first.onec_id], None, onec.clock.now())
    poll()
    assert invoice(first.id).paid_amount == Decimal("1500.00")
    assert count(Payment) == 2 and count(InvoicePayment, InvoicePayment.status == MATCH_MATCHED) == 2

    # Ambiguous or unknown purposes wait, visibly, for a person; one naming no invoice is not ours.
    second = obtained("ORD-2")
    cases = [
        (f"Оплата по счетам № {first.number} и № {second.number}", MATCH_AMBIGUOUS),
        (f"Оплата по счёт №{second.number} от 01.01.2020", MATCH_AMBIGUOUS),
        ("Оплата по сч 777", MATCH_UNMATCHED),
    ]
    for n, (purpose, _) in enumerate(cases):
        pay(purpose, "100.00", transaction_id=f"T-{n + 3}")
    pay("Оплата по договору 15 от 01.12.2026, р/сч 40702810900000000001", "100.00", transaction_id="T-x")
    with session_scope() as s:
        waiting = payments_for_a_person(s)
    assert [(w.purpose, w.status) for w in waiting] == cases and all(w.note for w in waiting)
    assert count(InvoicePayment) == 5
    assert invoice(second.id).paid_amount == Decimal("0.00")


def _msk_day(found: Invoice) -> str:
    return f"{found.issued_at.astimezone(MSK):%d.%m.%Y}"

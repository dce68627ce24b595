"""Applying 1C's invoices to the register in real Postgres: versions, identical re-sends, files kept
once, payments, conflicts of id and number that write nothing, and concurrent appliers."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from integrations.onec.invoices import Invoice as Document
from integrations.onec.invoices import InvoiceChange, InvoiceFile, PaymentStatus
from models.db import session_scope
from models.invoices import Invoice, InvoiceRequest, InvoiceVersion
from models.invoices import InvoiceFile as StoredFile
from sandbox.onec.pdf import render_invoice
from tasks.invoices.register import (
    ChangeOutcome,
    InvoiceNotInRegister,
    InvoiceRenumbered,
    NumberTaken,
    advance_cursor,
    apply_change,
    apply_document,
    apply_payment,
    read_cursor,
    record_request,
)
from tests.invoices.conftest import INN

ISSUED = datetime(2026, 12, 1, 7, 15, tzinfo=UTC)


def document(
    onec_id: str = "11111111-2222-3333-4444-555555555555",
    number: str = "0000-000123",
    *,
    purpose: str = "Оплата по счету № 0000-000123 от 01.12.2026",
    revision: int = 1,
    status: PaymentStatus = PaymentStatus.UNPAID,
    paid: str = "0.00",
    data_version: str = "v1",
) -> Document:
    pdf = render_invoice(
        number=number,
        issued_at=ISSUED,
        customer_inn=INN,
        order_id="ORD-7",
        amount=Decimal("1500.00"),
        purpose=purpose,
        revision=revision,
    )
    return Document(
        onec_id=onec_id,
        number=number,
        issued_at=ISSUED,
        customer_inn=INN,
        order_id="ORD-7",
        amount=Decimal("1500.00"),
        purpose=purpose,
        payment_status=status,
        paid_amount=Decimal(paid),
        file=InvoiceFile(pdf, f"Счет {number}.pdf"),
        data_version=data_version,
    )


def counts(session: Session) -> tuple[int, int, int]:
    return (
        session.scalar(select(func.count()).select_from(Invoice)) or 0,
        session.scalar(select(func.count()).select_from(InvoiceVersion)) or 0,
        session.scalar(select(func.count()).select_from(StoredFile)) or 0,
    )


def test_a_new_invoice_is_version_one_with_its_file() -> None:
    doc = document()
    with session_scope() as session:
        applied = apply_document(session, doc)
    assert applied.created and applied.new_version and applied.version == 1
    with session_scope() as session:
        row = session.get(Invoice, applied.invoice_id)
        assert row is not None
        assert (row.onec_id, row.number, row.number_key) == (doc.onec_id, "0000-000123", "123")
        assert (row.customer_inn, row.order_id, row.amount) == (INN, "ORD-7", Decimal("1500.00"))
        assert row.issued_at == ISSUED and row.payment_status == "unpaid" and row.current_version == 1
        stored = session.get(StoredFile, row.file_sha256)
        assert (
            stored is not None and stored.content == doc.file.content and stored.size == len(doc.file.content)
        )
        assert row.file_sha256 == doc.file.sha256
        assert counts(session) == (1, 1, 1)


def test_an_identical_resend_makes_no_version() -> None:
    with session_scope() as session:
        apply_document(session, document())
    with session_scope() as session:
        again = apply_document(session, document())
        assert not again.created and not again.new_version and again.version == 1
        assert counts(session) == (1, 1, 1)


def test_a_correction_is_a_new_version_and_the_old_one_stays() -> None:
    with session_scope() as session:
        first = apply_document(session, document())
    corrected = document(
        purpose="Оплата по счету № 0000-000123 (реквизиты уточнены)", revision=2, data_version="v2"
    )
    with session_scope() as session:
        applied = apply_document(session, corrected)
    assert applied.new_version and applied.version == 2 and applied.invoice_id == first.invoice_id
    with session_scope() as session:
        row = session.get(Invoice, first.invoice_id)
        assert row is not None and row.purpose == corrected.purpose and row.onec_data_version == "v2"
        versions = session.scalars(select(InvoiceVersion).order_by(InvoiceVersion.version)).all()
        assert [v.version for v in versions] == [1, 2]
        assert versions[0].purpose == document().purpose
        assert versions[0].file_sha256 != versions[1].file_sha256 == row.file_sha256
        assert versions[0].content_hash != versions[1].content_hash == row.content_hash
        assert counts(session) == (1, 2, 2)
    # Back to the first wording: that is a change too (version 3), but its file is not stored twice.
    with session_scope() as session:
        assert apply_document(session, document(data_version="v3")).version == 3
        assert counts(session) == (1, 3, 2)


def test_a_file_shared_by_two_invoices_is_kept_once() -> None:
    one = document()
    other = replace(document("99999999-2222-3333-4444-555555555555", "0000-000124"), file=one.file)
    with session_scope() as session:
        apply_document(session, one)
        apply_document(session, other)
        assert counts(session) == (2, 2, 1)


def test_payment_status_follows_1c_without_a_version() -> None:
    with session_scope() as session:
        apply_document(session, document())
    with session_scope() as session:
        applied = apply_document(session, document(status=PaymentStatus.PARTLY_PAID, paid="500.00"))
        assert applied.payment_changed and not applied.new_version
    with session_scope() as session:
        row = session.scalars(select(Invoice)).one()
        assert (row.payment_status, row.paid_amount) == ("partly_paid", Decimal("500.00"))
        assert apply_payment(session, row.onec_id, PaymentStatus.PAID, Decimal("1500.00"))
        assert not apply_payment(session, row.onec_id, PaymentStatus.PAID, Decimal("1500.00"))
        with pytest.raises(InvoiceNotInRegister):
            apply_payment(session, "no-such-id", PaymentStatus.PAID, Decimal("1.00"))
        assert counts(session)[1] == 1


def test_one_id_arriving_with_another_number_is_refused_and_writes_nothing() -> None:
    with session_scope() as session:
        apply_document(session, document())
    renumbered = document(number="0000-000999", purpose="другое", status=PaymentStatus.PAID, paid="1500.00")
    with session_scope() as session:
        with pytest.raises(InvoiceRenumbered) as caught:
            apply_document(session, renumbered)
        assert caught.value.field == "Номер"
        assert "0000-000999" in str(caught.value) and "0000-000123" in str(caught.value)
        # The transaction is still usable: the caller records the error in it.
        record_request(session, order_id="ORD-7", amount=Decimal("1500"), customer_inn=INN, source="test")
    with session_scope() as session:
        row = session.scalars(select(Invoice)).one()
        assert (row.number, row.payment_status, row.current_version) == ("0000-000123", "unpaid", 1)
        assert counts(session) == (1, 1, 1)
        assert session.scalar(select(func.count()).select_from(InvoiceRequest)) == 1


def test_a_number_reused_by_another_id_is_refused_and_writes_nothing() -> None:
    with session_scope() as session:
        apply_document(session, document())
    intruder = document("99999999-2222-3333-4444-555555555555", purpose="чужой счёт")
    with session_scope() as session:
        with pytest.raises(NumberTaken) as caught:
            apply_document(session, intruder)
        assert caught.value.field == "Номер"
        assert intruder.onec_id in str(caught.value)
    with session_scope() as session:
        assert counts(session) == (1, 1, 1)


def test_two_workers_applying_one_new_invoice_make_one_version() -> None:
    barrier = threading.Barrier(2)
    results: list[object] = []

    def apply() -> None:
        with session_scope() as session:
            barrier.wait()
            results.append(apply_document(session, document()))

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2
    with session_scope() as session:
        assert counts(session) == (1, 1, 1)


def test_two_ids_racing_for_one_number_leave_one_and_a_typed_error() -> None:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def apply(onec_id: str) -> None:
        try:
            with session_scope() as session:
                barrier.wait()
                apply_document(session, document(onec_id))
            outcomes.append("applied")
        except NumberTaken as exc:
            outcomes.append(exc.field)

    threads = [
        threading.Thread(target=apply, args=(f"{i}1111111-2222-3333-4444-555555555555",)) for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["applied", "Номер"]
    with session_scope() as session:
        assert counts(session) == (1, 1, 1)


def test_a_change_list_entry_applies_the_payment_or_asks_for_the_document() -> None:
    def change(data_version: str | None, status: PaymentStatus = PaymentStatus.PAID) -> InvoiceChange:
        return InvoiceChange(
            onec_id=document().onec_id,
            number="0000-000123",
            payment_status=status,
            paid_amount=Decimal("1500.00"),
            data_version=data_version,
            changed_at=None,
        )

    with session_scope() as session:
        assert apply_change(session, change("v1")) is ChangeOutcome.FETCH  # not in the register yet
        apply_document(session, document())
        assert apply_change(session, change("v2")) is ChangeOutcome.FETCH  # the document changed
        assert apply_change(session, change(None)) is ChangeOutcome.FETCH
        assert apply_change(session, change("v1")) is ChangeOutcome.APPLIED
        assert apply_change(session, change("v1")) is ChangeOutcome.UNCHANGED
        row = session.scalars(select(Invoice)).one()
        assert row.payment_status == "paid" and row.current_version == 1
        renumbered = replace(change("v1"), number="0000-000999")
        with pytest.raises(InvoiceRenumbered):
            apply_change(session, renumbered)


def test_requests_are_recorded_once_per_business_key() -> None:
    with session_scope() as session:
        first, made = record_request(
            session, order_id="ORD-7", amount=Decimal("1500"), customer_inn=INN, source="site"
        )
        assert made and first.status == "pending" and len(first.request_key) == 36
        again, made_again = record_request(
            session, order_id="ORD-7", amount=Decimal("1500.00"), customer_inn=INN, source="site"
        )
        assert not made_again and again.id == first.id and again.request_key == first.request_key
        other, made_other = record_request(
            session, order_id="ORD-7", amount=Decimal("100.00"), customer_inn=INN, source="site"
        )
        assert made_other and other.id != first.id


def test_the_change_cursor_moves_with_its_transaction() -> None:
    with session_scope() as session:
        assert read_cursor(session) is None
        advance_cursor(session, "17")
    with pytest.raises(RuntimeError), session_scope() as session:
        advance_cursor(session, "42")
        raise RuntimeError("the page failed to apply")
    with session_scope() as session:
        assert read_cursor(session) == "17"
        advance_cursor(session, "42")
    with session_scope() as session:
        assert read_cursor(session) == "42"

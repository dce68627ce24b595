"""The invoice JSON as 1C writes it, field by field: what is tolerated, and what is refused naming
the key."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from integrations.onec.errors import InvalidInvoice
from integrations.onec.invoices import (
    PaymentStatus,
    load_json,
    parse_amount,
    parse_changes,
    parse_datetime,
    parse_invoice,
    parse_payment_status,
)
from sandbox.onec.pdf import render_invoice
from tests.invoices.conftest import INN

PDF = render_invoice(
    number="0000-000001",
    issued_at=datetime(2026, 12, 1, tzinfo=UTC),
    customer_inn=INN,
    order_id="ORD-1",
    amount=Decimal("10.00"),
    purpose="Оплата",
    revision=1,
)


def raw(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "Ид": "6f1c2d9e-0000-4000-8000-000000000001",
        "Номер": "0000-000001",
        "Дата": "2026-12-01T10:15:00",
        "ИНН": INN,
        "Заказ": "ORD-1",
        "Сумма": "10.00",
        "Назначение": "Оплата по счету № 0000-000001",
        "СтатусОплаты": "Не оплачен",
        "Файл": base64.b64encode(PDF).decode(),
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        ("1234.50", "1234.50"),
        (Decimal("1234.5"), "1234.50"),
        (1234, "1234.00"),
        ("1 234,50", "1234.50"),
        ("1\u00a0234,5", "1234.50"),
        ("1\u202f234\u00a0567,00", "1234567.00"),
        (" 0,01 ", "0.01"),
    ],
)
def test_amounts_as_1c_writes_them(value: Any, amount: str) -> None:
    assert parse_amount(value, "Сумма") == Decimal(amount)


@pytest.mark.parametrize("value", ["1,234.50", "12.345", "abc", "", "1e3", True, 12.5, None, "-5.00"])
def test_amounts_that_are_not(value: Any) -> None:
    with pytest.raises(InvalidInvoice) as caught:
        parse_amount(value, "Сумма")
    assert caught.value.field == "Сумма"


def test_json_numbers_are_read_as_decimals_never_floats() -> None:
    document = load_json(b'\xef\xbb\xbf{"\xd0\xa1\xd1\x83\xd0\xbc\xd0\xbc\xd0\xb0": 0.1}')
    assert document == {"Сумма": Decimal("0.1")}


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-12-01T10:15:00", datetime(2026, 12, 1, 7, 15, tzinfo=UTC)),  # Moscow, UTC+3
        ("01.12.2026 10:15:00", datetime(2026, 12, 1, 7, 15, tzinfo=UTC)),
        ("2026-12-01T10:15:00+05:00", datetime(2026, 12, 1, 5, 15, tzinfo=UTC)),
        ("2026-12-01T10:15:00Z", datetime(2026, 12, 1, 10, 15, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 11, 30, 21, 0, tzinfo=UTC)),
    ],
)
def test_dates_without_a_zone_are_moscow_time(text: str, utc: datetime) -> None:
    parsed = parse_datetime(text, "Дата")
    assert parsed == utc and parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00", "вчера", "2026-13-01T00:00:00", 20261201])
def test_dates_that_are_not(text: Any) -> None:
    with pytest.raises(InvalidInvoice) as caught:
        parse_datetime(text, "Дата")
    assert caught.value.field == "Дата"


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Не оплачен", PaymentStatus.UNPAID),
        ("НЕ ОПЛАЧЕН", PaymentStatus.UNPAID),
        ("Оплачен частично", PaymentStatus.PARTLY_PAID),
        ("Оплачен", PaymentStatus.PAID),
        ("Отменён", PaymentStatus.CANCELLED),
        ("Отменен", PaymentStatus.CANCELLED),
        (None, PaymentStatus.UNPAID),
    ],
)
def test_payment_status_words(word: str | None, status: PaymentStatus) -> None:
    assert parse_payment_status(word) is status


def test_an_invoice_with_keys_spelled_as_1c_developers_do() -> None:
    document = raw()
    document["ИД"] = document.pop("Ид")
    document["НОМЕР"] = document.pop("Номер")
    document["Файл"] = "\r\n".join(document["Файл"][i : i + 76] for i in range(0, len(document["Файл"]), 76))
    invoice = parse_invoice(document, max_file_bytes=1_000_000)
    assert invoice.onec_id == "6f1c2d9e-0000-4000-8000-000000000001" and invoice.number == "0000-000001"
    assert invoice.file.content == PDF
    assert invoice.paid_amount == Decimal("0.00")


def test_a_paid_invoice_without_a_paid_amount_is_paid_in_full() -> None:
    invoice = parse_invoice(raw(СтатусОплаты="Оплачен"), max_file_bytes=1_000_000)
    assert invoice.paid_amount == invoice.amount


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"Ид": None}, "Ид"),
        ({"Номер": "  "}, "Номер"),
        ({"ИНН": "7707083894"}, "ИНН"),
        ({"ИНН": 7707083893}, "ИНН"),
        ({"Сумма": "0.00"}, "Сумма"),
        ({"Дата": None}, "Дата"),
        ({"СтатусОплаты": "Оплачено наполовину"}, "СтатусОплаты"),
        ({"Файл": None}, "Файл"),
        ({"Файл": "не base64!"}, "Файл"),
        ({"Заказ": {"Номер": 1}}, "Заказ"),
        ({"ид": "дубль"}, "ид"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInvoice) as caught:
        parse_invoice(raw(**changes), max_file_bytes=1_000_000)
    assert caught.value.field == field


def test_a_body_that_is_not_json() -> None:
    with pytest.raises(InvalidInvoice) as caught:
        load_json(b"<html><body>Service Unavailable</body></html>")
    assert caught.value.field == "(тело ответа)"
    with pytest.raises(InvalidInvoice, match="not UTF-8"):
        load_json("{}".encode("utf-16"))


def test_a_bad_change_list_entry_is_set_aside_and_the_rest_count() -> None:
    page = parse_changes(
        json.loads(
            json.dumps(
                {
                    "Изменения": [
                        {"Ид": "a", "Номер": "1", "СтатусОплаты": "Оплачен", "СуммаОплаты": "5,00"},
                        {"Ид": "b", "Номер": "2", "СтатусОплаты": "Потерян"},
                        {"Ид": "c", "Номер": "3", "Изменено": "2026-12-01T10:00:00", "ВерсияДанных": "x"},
                    ],
                    "Курсор": 42,
                    "ЕстьЕще": "Да",
                }
            )
        )
    )
    assert [c.onec_id for c in page.changes] == ["a", "c"]
    assert page.changes[0].paid_amount == Decimal("5.00")
    assert page.changes[1].changed_at == datetime(2026, 12, 1, 7, tzinfo=UTC)
    assert [(r.position, r.onec_id, r.error.field) for r in page.rejected] == [(1, "b", "СтатусОплаты")]
    assert page.cursor == "42" and page.has_more


def test_a_change_list_without_a_cursor_is_refused() -> None:
    with pytest.raises(InvalidInvoice) as caught:
        parse_changes({"Изменения": []})
    assert caught.value.field == "Курсор"

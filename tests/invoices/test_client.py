"""obmen's 1C client against the 1C emulator over real HTTP: what 1C really sends, how it fails,
and every bad answer refused naming its field."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis
from pypdf import PdfReader

from integrations.errors import PermanentError, TransientError
from integrations.exchange import Exchange
from integrations.onec.client import OnecClient
from integrations.onec.errors import (
    InvalidInvoice,
    InvoiceMismatch,
    OnecAuthRefused,
    OnecLicencesExhausted,
    OnecNotFound,
    OnecUnavailable,
)
from integrations.onec.invoices import Invoice, PaymentStatus
from integrations.onec.sessions import RedisSessions
from sandbox.onec import OnecEmulator
from sandbox.server import Sandbox
from tests.invoices.conftest import INN, MAX_FILE_BYTES, make_client

MSK = ZoneInfo("Europe/Moscow")


def ask(client: OnecClient, order: str = "ORD-1", amount: str = "1234.50", inn: str = INN) -> Invoice:
    return client.request_invoice(
        order_id=order, amount=Decimal(amount), customer_inn=inn, request_key=f"req-{order}-{amount}"
    )


def test_an_invoice_for_an_order_and_amount(client: OnecClient, onec: OnecEmulator) -> None:
    invoice = ask(client)

    held = onec.books.find(invoice.onec_id)
    assert held is not None
    assert invoice.number == held.number
    assert (invoice.order_id, invoice.amount, invoice.customer_inn) == ("ORD-1", Decimal("1234.50"), INN)
    # 1C's zone-less local time is Moscow time; the client hands out aware UTC.
    assert invoice.issued_at.tzinfo is UTC
    assert invoice.issued_at == held.issued_at.astimezone(UTC)
    assert invoice.payment_status is PaymentStatus.UNPAID and invoice.paid_amount == Decimal("0.00")
    assert invoice.purpose.startswith(f"Оплата по счету № {held.number}")
    assert invoice.file.content == held.pdf
    assert invoice.file.sha256 == hashlib.sha256(held.pdf).hexdigest()
    assert invoice.data_version == held.data_version
    page = PdfReader(io.BytesIO(invoice.file.content)).pages[0].extract_text()
    assert held.number in page and "1234.50" in page
    # Asking again for the same order and amount is the same invoice.
    assert ask(client).onec_id == invoice.onec_id
    assert ask(client, amount="100.00").onec_id != invoice.onec_id


def test_the_answer_carries_a_bom_cyrillic_keys_and_a_local_date(
    client: OnecClient, onec: OnecEmulator, exchanges: list[Exchange]
) -> None:
    invoice = ask(client)
    body = exchanges[-1].response_body or ""
    assert body.startswith("\ufeff{")
    assert '"Ид"' in body and '"СтатусОплаты": "Не оплачен"' in body
    local = invoice.issued_at.astimezone(MSK).strftime("%Y-%m-%dT%H:%M:%S")
    assert f'"Дата": "{local}"' in body

    onec.knobs.update({"extra": {"bom": False}})
    assert client.get_invoice(invoice.onec_id) == invoice
    assert not (exchanges[-1].response_body or "").startswith("\ufeff")


@pytest.mark.parametrize(
    ("style", "wire"), [("string", '"1234.50"'), ("number", "1234.5"), ("russian", '"1\u00a0234,50"')]
)
def test_amounts_as_strings_numbers_and_russian_notation(
    client: OnecClient, onec: OnecEmulator, exchanges: list[Exchange], style: str, wire: str
) -> None:
    onec.knobs.update({"extra": {"numbers": style}})
    invoice = ask(client)
    assert f'"Сумма": {wire}' in (exchanges[-1].response_body or "")
    assert invoice.amount == Decimal("1234.50")


def test_the_change_list_follows_payments_and_corrections_with_a_cursor(
    client: OnecClient, onec: OnecEmulator
) -> None:
    first = ask(client, "ORD-1")
    second = ask(client, "ORD-2")
    page = client.changes(None, limit=10)
    assert [c.onec_id for c in page.changes] == [first.onec_id, second.onec_id]
    assert not page.has_more and page.rejected == []
    cursor = page.cursor

    held = onec.books.find(first.onec_id)
    assert held is not None
    onec.books.pay(held, Decimal("1000.00"), onec.clock.now())
    onec.books.correct(held, onec.clock.now())
    page = client.changes(cursor, limit=1)
    assert page.has_more
    assert page.changes[0].payment_status is PaymentStatus.PARTLY_PAID
    assert page.changes[0].paid_amount == Decimal("1000.00")
    page = client.changes(page.cursor, limit=10)
    assert not page.has_more and len(page.changes) == 1
    # A correction is a new document: another data version, another file.
    assert page.changes[0].data_version != first.data_version
    corrected = client.get_invoice(first.onec_id)
    assert corrected.file.sha256 != first.file.sha256 and corrected.purpose != first.purpose
    assert client.changes(page.cursor, limit=10).changes == []


def test_payments_happen_over_sandbox_time(client: OnecClient, onec: OnecEmulator) -> None:
    onec.knobs.update({"extra": {"auto_pay_after_s": 3600}})
    invoice = ask(client)
    assert client.get_invoice(invoice.onec_id).payment_status is PaymentStatus.UNPAID
    onec.clock.advance(3601)
    paid = client.get_invoice(invoice.onec_id)
    assert paid.payment_status is PaymentStatus.PAID and paid.paid_amount == invoice.amount


def test_an_html_500_is_try_later(client: OnecClient, onec: OnecEmulator) -> None:
    onec.knobs.update({"fault": "html_500", "fault_next": 1})
    with pytest.raises(OnecUnavailable, match="HTTP 500") as caught:
        ask(client)
    assert isinstance(caught.value, TransientError)
    assert ask(client).number  # the next call goes through


def test_a_wrong_password_is_401_with_1c_realm(
    _sandbox: Sandbox, onec: OnecEmulator, redis_client: redis.Redis, exchanges: list[Exchange]
) -> None:
    client = make_client(_sandbox, RedisSessions(redis_client, "onec", 4), exchanges, password="wrong")
    with pytest.raises(OnecAuthRefused) as caught:
        ask(client)
    assert caught.value.realm == "1C:Enterprise 8.3"
    assert isinstance(caught.value, PermanentError)
    assert onec.stats()["unauthorized"] == 1
    client.close()


@pytest.mark.parametrize("answer", ["licence", "sessions"])
def test_no_free_licence_is_try_later_never_a_failure(
    client: OnecClient, onec: OnecEmulator, answer: str
) -> None:
    onec.knobs.update({"extra": {"licences": 0, "licence_answer": answer}})
    with pytest.raises(OnecLicencesExhausted) as caught:
        ask(client)
    assert caught.value.retry_after_s == 2.0
    assert not isinstance(caught.value, PermanentError)
    assert onec.stats()["licence_refusals"] == 1
    assert onec.books.invoices == {}


def test_more_callers_than_licences_get_try_later_for_the_rest(
    _sandbox: Sandbox, onec: OnecEmulator, redis_client: redis.Redis, exchanges: list[Exchange]
) -> None:
    """obmen allowed 4 sessions where 1C has 2 licences: the overflow is refused the way 1C does."""
    onec.knobs.update({"extra": {"licences": 2, "call_ms": 150}})
    client = make_client(_sandbox, RedisSessions(redis_client, "onec", 4), exchanges, max_wait_s=5)
    start = threading.Barrier(4)

    def call(i: int) -> str:
        start.wait()
        try:
            return ask(client, f"ORD-{i}").number
        except OnecLicencesExhausted:
            return "try later"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(call, range(4)))
    assert outcomes.count("try later") == onec.stats()["licence_refusals"] >= 1
    assert onec.stats()["max_licences_held"] == 2
    client.close()


def test_never_more_concurrent_calls_than_sessions_at_1c(
    _sandbox: Sandbox, onec: OnecEmulator, redis_client: redis.Redis, exchanges: list[Exchange]
) -> None:
    onec.knobs.update({"extra": {"licences": 4, "call_ms": 20}})
    client = make_client(_sandbox, RedisSessions(redis_client, "onec", 4), exchanges, max_wait_s=30)
    with ThreadPoolExecutor(12) as pool:
        numbers = list(pool.map(lambda i: ask(client, f"ORD-{i}").number, range(60)))
    stats = onec.stats()
    assert len(set(numbers)) == 60
    assert stats["max_in_flight"] == 4
    assert stats["licence_refusals"] == 0
    client.close()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        ("base64", "not valid base64"),
        ("not_pdf", "not a PDF"),
        ("broken_pdf", "does not parse"),
        ("big_file", f"larger than {MAX_FILE_BYTES} bytes"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(
    client: OnecClient, onec: OnecEmulator, corrupt: str, message: str
) -> None:
    onec.knobs.update(
        {"extra": {"corrupt": corrupt, "corrupt_count": 1, "big_file_bytes": MAX_FILE_BYTES + 10}}
    )
    with pytest.raises(InvalidInvoice, match=message) as caught:
        ask(client)
    assert caught.value.field == "Файл"
    assert isinstance(caught.value, PermanentError)
    assert ask(client).file.content[:5] == b"%PDF-"  # only that answer was spoilt


@pytest.mark.parametrize(("corrupt", "field"), [("amount", "Сумма"), ("order", "Заказ")])
def test_an_invoice_for_something_else_than_asked_is_refused(
    client: OnecClient, onec: OnecEmulator, corrupt: str, field: str
) -> None:
    onec.knobs.update({"extra": {"corrupt": corrupt, "corrupt_count": 1}})
    with pytest.raises(InvoiceMismatch) as caught:
        ask(client)
    assert caught.value.field == field
    assert caught.value.asked in ("ORD-1", "1234.50")


def test_an_unknown_invoice_is_not_found(client: OnecClient) -> None:
    with pytest.raises(OnecNotFound):
        client.get_invoice("00000000-0000-0000-0000-000000000000")


def test_every_exchange_is_recorded_without_secrets_and_with_files_clipped(
    client: OnecClient, onec: OnecEmulator, exchanges: list[Exchange]
) -> None:
    invoice = ask(client)
    onec.knobs.update({"fault": "html_500", "fault_next": 1})
    with pytest.raises(OnecUnavailable):
        client.get_invoice(invoice.onec_id)
    assert [e.response_status for e in exchanges] == [200, 500]
    assert [e.operation for e in exchanges] == ["СчетНаОплату", "ПолучитьСчет"]
    assert exchanges[0].business_key == "req-ORD-1-1234.50"
    everything = " ".join(
        f"{e.request_headers} {e.request_body} {e.response_body} {e.url}" for e in exchanges
    )
    assert "sandbox-1c-password" not in everything
    assert all(e.request_headers["authorization"] == "***" for e in exchanges)
    whole = base64.b64encode(invoice.file.content).decode()
    assert whole[:64] not in everything.replace("\\r\\n", "")
    assert "base64 chars clipped" in (exchanges[0].response_body or "")
    assert len(exchanges[0].response_body or "") < 2000


def test_the_emulator_counts_calls_for_the_benchmark(
    _sandbox: Sandbox, client: OnecClient, onec: OnecEmulator
) -> None:
    ask(client)
    stats = httpx.get(f"{_sandbox.url}/_sandbox/onec/stats").json()
    assert stats["calls"] == 1 and stats["max_in_flight"] == 1
    httpx.post(f"{_sandbox.url}/_sandbox/onec/scenario", json={"number": "0000-000001", "action": "pay"})
    listed = httpx.get(f"{_sandbox.url}/_sandbox/onec/invoices").json()
    assert listed[0]["status"] == "Оплачен"
    assert httpx.post(f"{_sandbox.url}/_sandbox/onec/stats/reset").json()["calls"] == 0

"""The console's actions end to end, through the gateway, the outbox and a real worker against the
sandboxes: an ownership change confirmed with a code typed by hand, an unallocated payment assigned,
a bank payment counted towards the invoice a person chose, a parked row re-driven after a
confirmation; and a walk through every page with the counts compared to the registers and the status
colours as the browser computes them. The main pages' screenshots in
docs/console.md are taken here."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page
from sqlalchemy import select

from config.settings import get_settings
from models.base import utcnow
from models.canary import Canary
from models.console import ConsoleAudit
from models.db import session_scope
from models.invoices import InvoicePayment
from models.payments import Payment
from models.sep import QUEUED, SepApplication, SepExchangeError, SepRequest
from models.sep_codes import SepConfirmationCode
from sandbox.server import Sandbox
from tasks.invoices.register import apply_document
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import STEPS, run_step
from tasks.payments.register import Incoming, accept_payment
from tasks.sep import queries
from tests.console.conftest import Console, screenshot
from tests.harness.processes import Process, start_worker
from tests.harness.waiting import wait_for
from tests.invoices.conftest import INN
from tests.invoices.test_register import document
from tests.sep.conftest import ORG, TIMINGS, add_vehicle, intake, run_due, start_ownership_change

SUBSCRIBER = "500100732259"  # tests/data/master.json
GREEN, BLUE, RED = "rgb(46, 125, 50)", "rgb(21, 101, 192)", "rgb(198, 40, 40)"


@pytest.fixture(scope="module")
def worker(_sandbox: Sandbox) -> Iterator[Process]:
    running = start_worker(env={**TIMINGS, **_sandbox.client_settings()}, queues="sep,payments,ops")
    yield running
    running.stop()


@pytest.fixture
def publishing() -> Iterator[None]:
    """The gateway publishes what it commits, as in production (the SEP fixtures turn it off)."""
    set_dispatch_mode("background")
    yield
    set_dispatch_mode("inline")


def colour(page: Page, selector: str) -> str:
    return str(page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor"))


def tab_counts(page: Page) -> dict[str, int]:
    found = page.eval_on_selector_all(
        "nav.tabs a", "tabs => tabs.map(t => [t.dataset.tab, t.querySelector('.count')?.textContent])"
    )
    return {key: int(count) for key, count in found if count is not None}


def test_ownership_change_confirmed_with_a_code_typed_by_hand(
    console: Console, sep_box: Sandbox, master: None, worker: Process
) -> None:
    add_vehicle(sep_box)
    number = str(start_ownership_change(sep_box)["application_number"])
    intake()
    run_due()  # the letter is filed and the application's data fetched
    with session_scope() as session:
        code = session.scalars(
            select(SepConfirmationCode.code).where(SepConfirmationCode.application_number == number)
        ).one()
        counts = queries.summary(session)
    set_dispatch_mode("background")
    page = console.page("operator")
    page.goto("/console/sep/ownership")
    assert tab_counts(page) == {
        "letters": counts["letters"],
        "ownership": counts["ownership_changes"],
        "lease": counts["lease_applications"],
        "queue": counts["queue"],
        "errors": counts["errors"],
        "changes": 0,
        "counterparties": 0,
    }
    row = page.locator(f'tr[data-application="{number}"]')
    row.get_by_role("checkbox").check()
    row.get_by_label(f"код {number}").fill(code)
    screenshot(page, "sep-ownership")
    page.get_by_role("button", name="Подтвердить").click()
    assert "Подтверждение отправлено в очередь" in page.get_by_role("status").first.inner_text()

    def confirmed() -> SepApplication | None:
        with session_scope() as session:
            found = session.scalars(
                select(SepApplication).where(SepApplication.application_number == number)
            ).one()
            last = session.get(SepRequest, found.last_request_id) if found.last_request_id else None
            done = (
                last is not None and last.operation == "ConfirmOwnershipChange" and last.status == "applied"
            )
            return found if done else None

    application = wait_for(confirmed, timeout=60, what="the confirmation to be applied")
    assert application.request_status == "Получен ответ"
    page.goto(f"/console/sep/applications/{number}")
    badge = page.locator('.card [data-status="Получен ответ"]')
    assert badge.inner_text() == "✔ Получен ответ"
    assert colour(page, '.card [data-status="Получен ответ"]') == GREEN
    screenshot(page, "sep-application")
    with session_scope() as session:
        audit = session.scalars(
            select(ConsoleAudit).where(ConsoleAudit.action == "sep.confirm_ownership_change")
        ).one()
    assert (audit.login, audit.target, (audit.detail or {}).get("code")) == (
        "operator",
        f"sep_applications:{number}",
        code,
    )


def test_an_unallocated_payment_assigned_to_a_subscriber(
    console: Console, master: None, worker: Process, publishing: None
) -> None:
    with session_scope() as session:
        payment_id = accept_payment(
            session,
            Incoming(
                transaction_id="console-1",
                source="bank",
                inn=ORG,
                amount=Decimal("1500.00"),
                paid_at=utcnow(),
                purpose="Оплата по счёту 17",
                payer_name="ООО «Лизинг»",
                content_hash="0" * 64,
            ),
        ).payment_id
    run_step(STEPS["payments.post"], payment_id)  # nobody has that ИНН: unallocated
    page = console.page("operator")
    page.goto("/console/payments?status=unallocated")
    row = page.locator(f'tr[data-id="{payment_id}"]')
    assert "1\u202f500,00\u00a0₽" in row.inner_text()
    assert colour(page, f'tr[data-id="{payment_id}"] .st') == RED
    row.get_by_placeholder("ИНН абонента").fill(SUBSCRIBER)
    screenshot(page, "payments")
    row.get_by_role("button", name="Разнести").click()
    assert f"разнесён на абонента {SUBSCRIBER}" in page.get_by_role("status").first.inner_text()

    def posted() -> bool:
        with session_scope() as session:
            found = session.get(Payment, payment_id)
            return found is not None and found.status == "posted"

    wait_for(posted, timeout=60, what="the payment to be posted by the worker")
    page.goto(f"/console/payments?inn={ORG}")
    assert "✔ Разнесён" in page.locator(f'tr[data-id="{payment_id}"]').inner_text()


def test_an_invoice_listed_by_its_customer_and_a_waiting_payment_counted_towards_it(console: Console) -> None:
    with session_scope() as session:
        invoice_id = apply_document(session, document()).invoice_id
        payment_id = accept_payment(
            session,
            Incoming(
                transaction_id="console-invoice-1",
                source="bank",
                inn=INN,
                amount=Decimal("1500.00"),
                paid_at=utcnow(),
                purpose="Оплата по сч 0000-000123 и 0000-000124",
                payer_name="ООО «Клиент»",
                content_hash="1" * 64,
            ),
        ).payment_id
        waiting = InvoicePayment(
            payment_id=payment_id,
            payer_inn=INN,
            amount=Decimal("1500.00"),
            purpose="Оплата по сч 0000-000123 и 0000-000124",
            named="0000-000123, 0000-000124",
            status="ambiguous",
            note="several invoices named",
        )
        session.add(waiting)
        session.flush()
        match_id = waiting.id
    page = console.page("operator")
    page.goto(f"/console/invoices?inn={INN}")
    row = page.locator('[data-list="invoices"] tbody tr', has_text="0000-000123")
    assert "1\u202f500,00\u00a0₽" in row.inner_text() and "✖ Не оплачено" in row.inner_text()
    pending = page.locator(f'[data-list="invoice_payments"] tr[data-id="{match_id}"]')
    assert "✖ Неоднозначно" in pending.inner_text()
    pending.get_by_placeholder("№ счёта в реестре").fill(str(invoice_id))
    screenshot(page, "invoices")
    pending.get_by_role("button", name="Засчитать").click()
    assert f"засчитан в счёт {invoice_id}" in page.get_by_role("status").first.inner_text()
    page.get_by_role("link", name="0000-000123").click()
    page.wait_for_url(f"**/console/invoices/{invoice_id}")
    assert "✔ Оплачено" in page.locator("dl.card").inner_text()
    assert "console:operator" in page.locator('[data-list="invoice_matched"]').inner_text()
    with session_scope() as session:
        audited = session.scalar(select(ConsoleAudit).where(ConsoleAudit.action == "invoices.assign_payment"))
        assert (
            audited is not None
            and audited.outcome == "ok"
            and audited.target == f"invoice_payments:{match_id}"
        )


def test_a_parked_row_redriven_by_an_admin_after_a_confirmation(
    console: Console, worker: Process, publishing: None
) -> None:
    with session_scope() as session:
        canary = Canary(status="pending", attempts=3, last_error="PermanentError: drill", parked_at=utcnow())
        session.add(canary)
        session.flush()
        canary_id = canary.id
    operator = console.page("operator")
    operator.goto("/console/ops")
    assert operator.get_by_role("button", name="Повторить").count() == 0
    page = console.page("admin")
    page.goto("/console/ops")
    page.get_by_label(f"выбрать canaries {canary_id}").check()
    screenshot(page, "ops")
    page.get_by_role("button", name="Повторить").click()
    assert page.inner_text("h1") == "Повторить остановленные строки?"
    page.get_by_role("button", name="Да, повторить").click()
    assert f"canaries: повторено {canary_id}" in page.get_by_role("status").first.inner_text()

    def done() -> bool:
        with session_scope() as session:
            found = session.get(Canary, canary_id)
            return found is not None and found.status == "done"

    wait_for(done, timeout=60, what="the re-driven canary")


def _seed_requests() -> None:
    now = utcnow()
    with session_scope() as session:
        for n, (status, shown) in enumerate(
            [(QUEUED, "Получен номер очереди"), ("error", "Ошибка запроса"), ("error", "Ошибка чтения XML")]
        ):
            session.add(
                SepRequest(
                    operation="RequestApplicationData",
                    business_key=f"console-test:{n}",
                    message_id=f"00000000-0000-0000-0000-00000000000{n}",
                    payload={},
                    status=status,
                    request_status=shown,
                    queue_number=f"Q-{n}" if status == QUEUED else None,
                    submitted_at=now,
                    next_poll_at=now,
                )
            )
        session.add(
            SepExchangeError(
                correlation_id="Q-1",
                operation="RequestApplicationData",
                kind="sep",
                code="E42",
                message="Нет такого заявления",
            )
        )


def test_every_page_and_tab_shows_its_counts_and_statuses_in_colour_with_words(console: Console) -> None:
    _seed_requests()
    page = console.page("viewer")
    page.goto("/console/")
    assert page.locator('[data-widget="ready_queue"] .n').inner_text() == "1"
    screenshot(page, "home")
    links: list[Any] = page.eval_on_selector_all(
        "header nav a", "links => links.map(a => a.getAttribute('href'))"
    )
    tabs = [
        f"/console/sep/{tab}"
        for tab in (
            "request",
            "letters",
            "ownership",
            "lease",
            "queue",
            "errors",
            "changes",
            "counterparties",
        )
    ]
    for link in [*links, *tabs]:
        answer = page.request.get(link)
        assert answer.status == 200, link
        assert answer.text().count("<h1>") == 1, link
    page.goto("/console/sep/queue")
    with session_scope() as session:
        assert tab_counts(page)["queue"] == queries.summary(session)["queue"] == 3
    for shown, expected, mark in (
        ("Получен номер очереди", BLUE, "○"),
        ("Ошибка запроса", RED, "✖"),
        ("Ошибка чтения XML", RED, "✖"),
    ):
        selector = f'[data-list="queue"] [data-status="{shown}"]'
        assert page.inner_text(selector) == f"{mark} {shown}"
        assert colour(page, selector) == expected
    screenshot(page, "sep-queue")
    page.goto("/console/exchange")
    screenshot(page, "exchange")
    # The API's pages work offline too: their scripts come from the gateway (any other host fails the test).
    for docs in ("/docs", "/redoc"):
        page.goto(docs)
        page.get_by_text("obmen gateway").first.wait_for()
    export = page.request.get("/console/exchange?format=csv")
    assert export.ok and export.text().startswith("\ufeff№;Когда;Система")


def test_a_work_list_longer_than_a_page_pages_through_its_whole_count(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBMEN_CONSOLE_PAGE_SIZE", "5")
    get_settings.cache_clear()
    try:
        with session_scope() as session:
            for n in range(7):
                session.add(
                    SepExchangeError(
                        correlation_id=f"Q-{n}", operation="GetQueueResult", kind="sep", message=f"ошибка {n}"
                    )
                )
        page = console.page("viewer")
        page.goto("/console/sep/errors")
        rows = page.locator('[data-list="errors"] tbody tr')
        assert rows.count() == 5 and "Q-6" in rows.first.inner_text()  # the newest first
        assert "Показаны 1–5 из 7" in page.locator("p.more").inner_text()
        page.get_by_role("link", name="Дальше »").click()
        page.wait_for_url("**/console/sep/errors?start=5")
        assert [r.inner_text().split("\t")[1] for r in rows.all()] == ["Q-1", "Q-0"]
        assert "Показаны 6–7 из 7" in page.locator("p.more").inner_text()
        assert page.get_by_role("link", name="Дальше »").count() == 0
        page.get_by_role("link", name="« В начало").click()
        page.wait_for_url("**/console/sep/errors")
        assert rows.count() == 5
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

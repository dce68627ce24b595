"""The console's pages for issue 14 in Chromium: АРМ СЭП's «Изменения лизинга» (a termination
confirmed with the lessee's code typed by hand, through SEP's emulator) and «Контрагенты СЭП» (a
counterparty registered by ИНН); billing's «Отключения» (a disconnection held for a debt let go by an
operator saying why), «Плановые работы» with the mailing's report and «SMS», the SMS sent through the
SMSC emulator. Each form's bad input is refused in Russian with nothing written; a viewer's post is
refused by the server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from models.console import ConsoleAudit
from models.db import session_scope
from models.master import Subscriber
from models.payments import SubscriberBalance, SubscriberRequest
from models.sep import SepCounterparty, SepLeaseChange, SepRequest
from sandbox.server import Sandbox
from tasks.machinery.steps import Outcome
from tasks.payments.entries import announce_works, submit_request
from tests.console.conftest import Console, screenshot
from tests.console.test_flows import tab_counts
from tests.harness.outbox import run_pending
from tests.sep.conftest import EPTS, LESSEE, run_due, sep
from tests.sep.flows import NEW_LESSEE, call, import_forms, lease_vehicles

UNKNOWN_INN = "7710140679"  # checksummed, in no master data


def _change(number: str) -> SepLeaseChange:
    with session_scope() as session:
        return session.scalars(select(SepLeaseChange).where(SepLeaseChange.change_number == number)).one()


def _requests(operation: str) -> int:
    with session_scope() as session:
        return (
            session.scalar(
                select(func.count()).select_from(SepRequest).where(SepRequest.operation == operation)
            )
            or 0
        )


def _audit(action: str) -> list[tuple[str, str | None, str]]:
    with session_scope() as session:
        rows = session.scalars(
            select(ConsoleAudit).where(ConsoleAudit.action == action).order_by(ConsoleAudit.id)
        )
        return [(r.login, r.target, r.outcome) for r in rows]


def flashed(page: Any) -> str:
    return str(page.locator("p.flash").first.inner_text())


def test_a_termination_confirmed_with_the_lessees_code_and_a_counterparty_registered(
    console: Console, sep_box: Sandbox, master: None
) -> None:
    import_forms()
    lease_vehicles(sep_box)
    call("sep.submit_lease_change", change_number="РС-1", kind="Termination", epts=[EPTS])
    call("sep.submit_lease_change", change_number="РС-2", kind="LeaseEnd", epts=[EPTS], draft=True)
    run_due()
    number = _change("РС-1").application_number
    assert number is not None
    code = sep(sep_box).world.applications[number].codes["Lessee"]

    page = console.page("operator")
    page.goto("/console/sep/changes")
    counts = tab_counts(page)
    assert (counts["changes"], counts["counterparties"]) == (2, 0)
    row = page.locator('tr[data-change="РС-1"]')
    assert "Расторжение" in row.inner_text() and EPTS in row.inner_text()
    assert row.locator('[data-status="Зарегистрировано"]').inner_text() == "○ Зарегистрировано"
    assert f"лизингополучатель {LESSEE}: ещё не подтвердил" in row.inner_text()
    draft = page.locator('tr[data-change="РС-2"]')
    assert "Окончание лизинга" in draft.inner_text() and draft.get_by_role("button").count() == 0

    # A code that is no code: refused on the page, nothing sent.
    row.get_by_label("код лизингополучателя РС-1").fill("12ab")
    row.get_by_role("button", name="Подтвердить").click()
    assert (
        flashed(page) == "Изменение лизинга № РС-1 не подтверждено: код лизингополучателя — от 4 до 12 цифр"
    )
    assert _requests("ConfirmLeaseChange") == 0 and _change("РС-1").status == "Зарегистрировано"

    page.reload()
    row.get_by_label("код лизингополучателя РС-1").fill(code)
    screenshot(page, "sep-changes")
    row.get_by_role("button", name="Подтвердить").click()
    assert flashed(page) == "Подтверждение изменения лизинга № РС-1 отправлено в СЭП"
    assert _change("РС-1").status == "Подтверждается"
    run_due()
    page.goto("/console/sep/changes?status=Исполнен")
    done = page.locator('tr[data-change="РС-1"]')
    assert done.locator('[data-status="Исполнен"]').inner_text() == "✔ Исполнен"
    assert f"лизингополучатель {LESSEE}: подтвердил" in done.inner_text()
    assert page.locator('tr[data-change="РС-2"]').count() == 0  # filtered out
    assert _audit("sep.confirm_lease_change") == [
        ("operator", "sep_lease_changes:РС-1", "код лизингополучателя — от 4 до 12 цифр"),
        ("operator", "sep_lease_changes:РС-1", "ok"),
    ]

    # Контрагенты СЭП: bad ИНН, one missing from master data, one whose master data lacks the form.
    page.goto("/console/sep/counterparties")
    form = page.locator('[data-form="register_counterparty"]')
    for inn, words in (
        ("1234567890", "ИНН — 10 или 12 цифр с верной контрольной суммой"),
        (UNKNOWN_INN, f"контрагента с ИНН {UNKNOWN_INN} нет в справочнике из 1С"),
        (
            "500100732259",
            "в справочнике из 1С у контрагента нет ОГРН и адреса: добавьте в выгрузку 1С и повторите",
        ),
    ):
        form.get_by_label("ИНН контрагента").fill(inn)
        form.get_by_role("button", name="Зарегистрировать в СЭП").click()
        assert flashed(page) == f"Контрагент не зарегистрирован: {words}", inn
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(SepCounterparty)) == 0
    form.get_by_label("ИНН контрагента").fill(NEW_LESSEE)
    form.get_by_role("button", name="Зарегистрировать в СЭП").click()
    assert flashed(page) == f"Контрагент с ИНН {NEW_LESSEE}: запрос в СЭП отправлен («Проверяется»)"
    assert tab_counts(page)["counterparties"] == 1
    run_due()
    page.goto("/console/sep/counterparties")
    registered = page.locator(f'tr[data-inn="{NEW_LESSEE}"]')
    assert registered.locator('[data-status="Зарегистрирован"]').inner_text() == "✔ Зарегистрирован"
    assert "ООО «Новый лизингополучатель»" in registered.inner_text()
    assert tab_counts(page)["counterparties"] == 0
    screenshot(page, "sep-counterparties")

    # A viewer sees no forms, and the server refuses the posts all the same.
    viewer = console.page("viewer")
    viewer.goto("/console/sep/counterparties")
    assert viewer.locator('[data-form="register_counterparty"]').count() == 0
    token = viewer.locator('form.who input[name="csrf"]').get_attribute("value")
    for path, fields in (
        ("/console/sep/counterparties", {"inn": UNKNOWN_INN}),
        ("/console/sep/changes/confirm", {"change_number": "РС-1"}),
    ):
        refused = viewer.request.post(path, form={"csrf": token or "", **fields})
        assert refused.status == 403 and "Недостаточно прав" in refused.text(), path
    # A draft has no form; posted all the same, the register's refusal reads in Russian.
    operator_token = page.locator('form.who input[name="csrf"]').get_attribute("value") or ""
    draft_refused = page.request.post(
        "/console/sep/changes/confirm",
        form={"csrf": operator_token, "change_number": "РС-2", "code:Lessee": "123456"},
        headers={"referer": f"{console.gateway.url}/console/sep/changes"},
    )
    assert (
        "Изменение лизинга № РС-2 не подтверждено: оно в статусе «Черновик», "
        "подтверждается только «Зарегистрировано»"
    ) in draft_refused.text()
    assert _requests("ConfirmLeaseChange") == 1 and _change("РС-2").status == "Черновик"
    # A form without its token is refused too (before anything else is read).
    stale = page.request.post("/console/sep/counterparties", form={"inn": NEW_LESSEE})
    assert stale.status == 403 and "Форма устарела" in stale.text()
    assert len(_audit("sep.register_counterparty")) == 4  # three refused, one sent

    # A work list's later part says how much of it is shown.
    page.goto("/console/sep/changes?start=1")
    assert "Показаны 2–2 из 2" in page.locator("p.more").inner_text()


PEOPLE = [
    # inn, phone, line: a mobile delivered, one SMSC cannot deliver, a landline (never sent)
    ("7700000001", "+79160000001", "Л-7"),
    ("7700000002", "89160000002", "Л-7"),
    ("7700000003", "8 (843) 231-00-00", "Л-7"),
]
DEBTOR = "7700000009"


def test_a_held_disconnection_let_go_and_planned_works_reported_with_their_sms(
    console: Console, smsc: str
) -> None:
    with session_scope() as session:
        session.execute(
            insert(Subscriber),
            [{"inn": i, "name": f"Абонент {i}", "phone": p, "line": ln} for i, p, ln in PEOPLE]
            + [{"inn": DEBTOR, "name": "ООО «Должник»", "phone": "+79160000009"}],
        )
        session.add(SubscriberBalance(inn=DEBTOR, debt=Decimal("1500.00")))
    with session_scope() as session:
        submit_request.call(session, number="О-100", kind="disconnect", inn=DEBTOR, comment="переезд")
        starts = datetime.now(UTC) + timedelta(days=3)
        works_id = announce_works.call(
            session,
            number="РР-1",
            line="Л-7",
            starts_at=starts,
            ends_at=starts + timedelta(hours=4),
            text="Связи не будет.",
            by="диспетчер",
        )
    assert run_pending("billing.works.notify") == [Outcome.DONE]
    httpx.put(f"{smsc}/knobs", json={"extra": {"undeliverable": ["79160000002"]}})
    assert run_pending("sms.send") == [Outcome.DONE, Outcome.DONE]
    assert run_pending("sms.check_delivery") == [Outcome.DONE, Outcome.DONE]

    page = console.page("operator")
    page.goto("/console/")
    widget = page.locator('[data-widget="disconnections_held"]')
    assert widget.locator(".n").inner_text() == "1"
    widget.click()
    page.wait_for_url("**/console/billing/disconnections")
    row = page.locator('tr[data-number="О-100"]')
    assert "1\u202f500,00\u00a0₽" in row.inner_text() and "○ Ждёт оплаты" in row.inner_text()
    row.get_by_role("button", name="Разрешить").click()  # no reason: refused, nothing written
    assert flashed(page) == "Отключение по заявке О-100 не разрешено: укажите причину"
    with session_scope() as session:
        assert session.scalars(select(SubscriberRequest.status)).one() == "awaiting_payment"
    page.reload()
    assert "ООО «Должник»" in row.inner_text()  # the name from master data
    row.get_by_label("причина О-100").fill("абонент переезжает, долг погасит по новому адресу")
    screenshot(page, "billing-disconnections")
    row.get_by_role("button", name="Разрешить").click()
    assert flashed(page) == "Отключение по заявке О-100 разрешено несмотря на долг: причина записана"
    assert page.locator('tr[data-number="О-100"]').count() == 0  # no longer held
    with session_scope() as session:
        held = session.scalars(select(SubscriberRequest)).one()
        assert (held.status, held.override_by, held.override_reason) == (
            "new",
            "console:operator",
            "абонент переезжает, долг погасит по новому адресу",
        )
    page.goto("/console/billing/disconnections?status=all")
    assert "console:operator" in page.locator('tr[data-number="О-100"]').inner_text()
    assert _audit("billing.override_request") == [
        ("operator", "subscriber_requests:О-100", "укажите причину"),
        ("operator", "subscriber_requests:О-100", "ok"),
    ]
    # Let go already: a stale form is refused in words, not let go twice.
    token = page.locator('form.who input[name="csrf"]').get_attribute("value") or ""
    again = page.request.post(
        f"/console/billing/disconnections/{held.id}/override",
        form={"csrf": token, "reason": "ещё раз"},
        headers={"referer": f"{console.gateway.url}/console/billing/disconnections"},
    )
    assert "заявка уже не ждёт оплаты (статус «Новое»)" in again.text()
    viewer = console.page("viewer")
    viewer.goto("/console/billing/disconnections?status=all")
    assert viewer.get_by_role("button", name="Разрешить").count() == 0
    refused = viewer.request.post(
        f"/console/billing/disconnections/{held.id}/override", form={"csrf": token, "reason": "x"}
    )
    assert refused.status == 403

    # Плановые работы: the list, the report (delivered / failed with why), the mailing's SMS.
    page.goto("/console/billing/works")
    page.get_by_role("link", name="РР-1").click()
    page.wait_for_url(f"**/console/billing/works/{works_id}")
    notices = page.locator('[data-list="works_delivery"] tr[data-kind="Оповещение"]').inner_text()
    assert notices.split("\t") == ["Оповещение", "1", "2", "0"]
    failures = page.locator('[data-list="works_failures"]').inner_text()
    assert "невозможно доставить" in failures and "not a Russian mobile number" in failures
    screenshot(page, "billing-works")
    page.get_by_role("link", name="Все SMS рассылки").click()
    page.wait_for_url("**/console/sms?campaign=works*")
    rows = page.locator('[data-list="sms"] tbody tr')
    assert rows.count() == 3
    delivered = page.locator('[data-list="sms"] tbody tr', has_text="79160000001")
    assert "✔ Доставлено" in delivered.inner_text() and "Плановые работы" in delivered.inner_text()
    screenshot(page, "sms")
    page.goto("/console/sms?status=failed")
    assert page.locator('[data-list="sms"] tbody tr').count() == 2
    assert "✖ Не доставлено" in page.locator('[data-list="sms"] tbody tr').first.inner_text()
    export = page.request.get("/console/sms?format=csv")
    assert export.ok and export.text().startswith("\ufeff№;Кому;Абонент;Вид")

"""The console's EDO pages in Chromium: a customer's package sent through the Synerdocs emulator and
taken in by the company's cursor shows on the list of incoming documents; past its answer date it
counts on the start page and lists as overdue; its page shows the documents and the «XML» tab."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from models.base import utcnow
from models.db import session_scope
from models.edo import EdoDocument
from sandbox.harness import SandboxClock
from sandbox.server import Sandbox
from sandbox.synerdocs.emulator import SynerdocsEmulator
from tasks.edo import steps
from tasks.edo.incoming import fetch
from tasks.machinery.outbox import set_dispatch_mode
from tests.console.conftest import Console, screenshot
from tests.edo.flow import CUSTOMER_INN, CUSTOMER_NAME, edo_settings, master_data, package_in, submit


@pytest.fixture
def synerdocs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    set_dispatch_mode("off")  # the steps are run by hand here
    try:
        with Sandbox([SynerdocsEmulator(SandboxClock())]) as box, edo_settings(monkeypatch, box):
            master_data()
            yield box
    finally:
        set_dispatch_mode("inline")


def test_an_incoming_package_overdue_on_the_start_page_with_its_documents_and_xml(
    console: Console, synerdocs: Sandbox
) -> None:
    package_id = submit(package_in("console-edo"))
    steps.check_package.run(package_id)
    steps.send_package.run(package_id)
    assert fetch().outcomes == {"routed": 1}

    page = console.page("viewer")
    page.goto("/console/edo")
    row = page.locator('[data-list="edo_incoming"] tbody tr').first
    assert CUSTOMER_NAME in row.inner_text() and CUSTOMER_INN in row.inner_text()
    page.goto("/console/edo?overdue=1")
    assert page.locator('[data-list="edo_incoming"] tbody td.empty').count() == 1  # not due yet

    with session_scope() as session:
        session.execute(
            update(EdoDocument)
            .where(EdoDocument.package_id == package_id)
            .values(answer_due_at=utcnow() - timedelta(hours=1))
        )
    page.goto("/console/")
    widget = page.locator('[data-widget="overdue_answers"]')
    assert widget.locator(".n").inner_text() == "2"
    widget.click()
    page.wait_for_url("**/console/edo?overdue=1")
    overdue = page.locator('[data-list="edo_incoming"] tbody tr')
    assert overdue.count() == 2
    overdue.first.get_by_role("link").first.click()
    page.wait_for_url(f"**/console/edo/packages/{package_id}")
    assert page.locator('[data-list="edo_documents"] tbody tr').count() == 2
    xml = page.locator("details", has_text="SendMessage")
    assert "SendMessage" in xml.first.inner_text()
    screenshot(page, "edo")

"""Console test set-up: one Chromium for the console's tests (Debian's, driven by Playwright), the
gateway over real HTTP, a user of each role, one logged-in browser context per role, a screenshot of
the page when a test fails, and a check that no page asked anything of a host other than obmen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from models.console import ROLES, ConsoleUser
from models.db import session_scope
from tests.harness.browser import chromium_binary
from tests.harness.gateway import GatewayThread
from tests.sep.conftest import _sandbox, master, sep_box  # noqa: F401  (fixtures the SEP tests share)
from tests.sms.conftest import box, smsc  # noqa: F401  (the SMSC emulator the SMS tests share)

PASSWORD = "console-test-password"
# Fixed ids and password stamps: the users are written again after each test's truncation, and the
# session cookies of the contexts below stay valid across tests.
STAMP = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
FAILURES = ROOT / ".pytest-screenshots"
_hash = PasswordHasher().hash(PASSWORD)


@pytest.fixture(autouse=True)
def console_users() -> None:
    with session_scope() as session:
        for number, role in enumerate(ROLES, start=1):
            session.add(
                ConsoleUser(id=number, login=role, password_hash=_hash, role=role, password_changed_at=STAMP)
            )


@pytest.fixture(scope="session")
def gateway() -> Iterator[GatewayThread]:
    with GatewayThread() as running:
        yield running


# Package scope, not session: Playwright's sync API keeps an asyncio loop running on the main thread
# while it is started, and a later test's library that runs its own loop (fast-bitrix24) would find
# it. The console's tests run together, so this is still one Chromium per run.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    binary = chromium_binary()
    assert binary, "Chromium is missing: `python -m tests.services` installs it (as root)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        yield launched
        launched.close()


class Outside:
    """Requests a page made to any host but the gateway's (each is aborted and kept here)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.urls.append(route.request.url)
            route.abort()


def new_context(browser: Browser, gateway: GatewayThread, outside: Outside) -> BrowserContext:
    context = browser.new_context(
        base_url=gateway.url, locale="ru-RU", viewport={"width": 1400, "height": 900}
    )
    context.route("**/*", outside.route)
    return context


def log_in(page: Page, login: str, password: str = PASSWORD) -> None:
    page.goto("/console/login")
    page.get_by_label("Логин").fill(login)
    page.get_by_label("Пароль").fill(password)
    page.get_by_role("button", name="Войти").click()


@pytest.fixture(scope="package")
def _contexts(
    browser: Browser, gateway: GatewayThread
) -> Iterator[dict[str, tuple[BrowserContext, Outside]]]:
    contexts: dict[str, tuple[BrowserContext, Outside]] = {}
    yield contexts
    for context, _ in contexts.values():
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_failed] = report.failed
    return report


_failed = pytest.StashKey[bool]()


class Console:
    """Pages of the console as a role sees them: ``page`` is this test's tab in the role's context."""

    def __init__(
        self, request: pytest.FixtureRequest, browser: Browser, gateway: GatewayThread, contexts: Any
    ) -> None:
        self.request, self.browser, self.gateway, self.contexts = request, browser, gateway, contexts
        self.pages: list[Page] = []

    def page(self, role: str) -> Page:
        if role not in self.contexts:
            outside = Outside()
            context = new_context(self.browser, self.gateway, outside)
            page = context.new_page()
            log_in(page, role)
            page.wait_for_url("**/console/")
            page.close()
            self.contexts[role] = (context, outside)
        page = self.contexts[role][0].new_page()
        self.pages.append(page)
        return page

    def fresh(self) -> Page:
        """A page in a context of its own, logged in as nobody."""
        outside = Outside()
        context = new_context(self.browser, self.gateway, outside)
        self.contexts[f"fresh-{len(self.contexts)}"] = (context, outside)
        page = context.new_page()
        self.pages.append(page)
        return page

    def close(self) -> None:
        if self.request.node.stash.get(_failed, False):
            FAILURES.mkdir(exist_ok=True)
            for number, page in enumerate(self.pages):
                page.screenshot(path=str(FAILURES / f"{self.request.node.name}-{number}.png"), full_page=True)
        for page in self.pages:
            page.close()
        asked = [url for _, outside in self.contexts.values() for url in outside.urls]
        assert asked == [], f"pages asked hosts other than obmen: {asked}"


@pytest.fixture
def console(
    request: pytest.FixtureRequest, browser: Browser, gateway: GatewayThread, _contexts: Any
) -> Iterator[Console]:
    found = Console(request, browser, gateway, _contexts)
    yield found
    found.close()


def screenshot(page: Page, name: str) -> None:
    """A picture of the page for docs/console.md (docs/img/console-<name>.png)."""
    page.screenshot(path=str(ROOT / "docs" / "img" / f"console-{name}.png"), full_page=False)

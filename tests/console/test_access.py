"""Who may do what in the console: the login form, wrong passwords, the throttle, roles refused by the
server (not just hidden buttons), CSRF tokens, sessions that end with a password change."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import delete, func, select

from models.console import ConsoleAudit, ConsoleLoginFailure
from models.db import session_scope
from tests.console.conftest import PASSWORD, Console, log_in, screenshot
from tests.harness.gateway import GatewayThread
from workers.gateway.console.accounts import set_password


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def test_login_form_in_russian_wrong_password_then_each_role_sees_its_menu(console: Console) -> None:
    page = console.fresh()
    page.goto("/console/sep/letters")
    assert page.url.endswith("/console/login?next=/console/sep/letters")
    screenshot(page, "login")
    log_in(page, "operator", "not the password")
    assert page.get_by_role("alert").inner_text() == "Неверный логин или пароль"
    log_in(page, "operator")
    page.wait_for_url("**/console/")
    assert "Что требует внимания" in page.inner_text("h1")
    for role, sees_users in (("viewer", False), ("operator", False), ("admin", True)):
        menu = console.page(role).request.get("/console/").text()
        assert ('href="/console/users"' in menu) is sees_users
    with session_scope() as session:
        logins = dict(
            session.execute(
                select(ConsoleAudit.outcome, func.count())
                .where(ConsoleAudit.action == "console.login", ConsoleAudit.login == "operator")
                .group_by(ConsoleAudit.outcome)
            ).all()
        )
    assert logins["Неверный логин или пароль"] == 1 and logins["ok"] >= 1


def test_a_viewer_is_refused_by_the_server_and_a_form_without_its_token_too(console: Console) -> None:
    viewer = console.page("viewer")
    viewer.goto("/console/sep/ownership")
    assert viewer.get_by_role("button", name="Подтвердить").count() == 0
    token = _csrf(viewer.content())
    # The button is hidden; the server refuses the post all the same.
    answer = viewer.request.post(
        "/console/sep/ownership", form={"csrf": token, "selected": "2026-000001", "action": "confirm"}
    )
    assert answer.status == 403
    assert "Недостаточно прав" in answer.text()
    operator = console.page("operator")
    answer = operator.request.post("/console/sep/request", form={"organization": ""})
    assert answer.status == 403
    assert "Форма устарела" in answer.text()
    with session_scope() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(ConsoleAudit).where(ConsoleAudit.action.like("sep.%"))
            )
            == 0
        )


def test_refusals_on_console_pages_are_pages_and_the_apis_stay_json(
    console: Console, gateway: GatewayThread
) -> None:
    with httpx.Client(base_url=gateway.url) as anonymous:
        answer = anonymous.get("/console/ops")
        assert answer.status_code == 303 and answer.headers["location"] == "/console/login?next=/console/ops"
        answer = anonymous.post("/console/ops/canary", data={"csrf": "x"})
        assert answer.status_code == 401 and answer.headers["content-type"].startswith("text/html")
        assert "Войдите в систему" in answer.text
        answer = anonymous.get("/console/no-such-page")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
        api = anonymous.get("/ops/payments")
        assert api.status_code == 401 and "json" in api.headers["content-type"]
    viewer = console.page("viewer").request
    for path, status, words in (
        ("/console/users", 403, "Недостаточно прав"),
        ("/console/acts/abc", 422, "Неверные данные"),
        ("/console/acts/99999999999999999999", 422, "Неверные данные"),
        ("/console/payments?inn=%00", 422, "Неверные данные"),
        (f"/console/payments?inn={'9' * 201}", 422, "Неверные данные"),
        ("/console/invoices/987654321", 404, "Не найдено"),
        ("/console/no/such/page", 404, "Не найдено"),
    ):
        page = viewer.get(path)
        assert page.status == status, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert words in page.text(), path
    # A form's field that the register store could not hold is refused before the action.
    operator = console.page("operator").request
    token = _csrf(operator.get("/console/sep/request").text())
    refused = operator.post("/console/sep/request", form={"csrf": token, "organization": "ООО\x00"})
    assert refused.status == 422 and "Неверные данные" in refused.text()


def test_login_is_throttled_per_login_and_a_password_change_ends_sessions(gateway: GatewayThread) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        token = _csrf(client.get("/console/login").text)
        for _ in range(5):
            answer = client.post(
                "/console/login", data={"csrf": token, "login": "admin", "password": "wrong"}
            )
            assert answer.status_code == 401
        answer = client.post("/console/login", data={"csrf": token, "login": "admin", "password": PASSWORD})
        assert answer.status_code == 429
        assert "Слишком много неудачных попыток" in answer.text
        # Another login from the same address is throttled too (per address).
        answer = client.post("/console/login", data={"csrf": token, "login": "viewer", "password": PASSWORD})
        assert answer.status_code == 429
    with httpx.Client(base_url=gateway.url) as client:
        with session_scope() as session:
            session.execute(delete(ConsoleLoginFailure))
        token = _csrf(client.get("/console/login").text)
        answer = client.post("/console/login", data={"csrf": token, "login": "viewer", "password": PASSWORD})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert (
            "httponly" in cookie.lower()
            and "samesite=lax" in cookie.lower()
            and "path=/console" in cookie.lower()
        )
        assert client.get("/console/", follow_redirects=False).status_code == 200
        with session_scope() as session:
            set_password(session, "viewer", "another-password")
        assert (
            client.get("/console/", follow_redirects=False).headers["location"].startswith("/console/login")
        )

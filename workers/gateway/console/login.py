"""Logging in and out: «Логин», «Пароль», «Войти»; the throttle and the audit are in ``accounts``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from models.db import session_scope
from workers.gateway.access import Public
from workers.gateway.console.accounts import audit, authenticate
from workers.gateway.console.pages import Flow
from workers.gateway.console.web import (
    ConsoleRoute,
    Person,
    Posted,
    address_of,
    posted,
    render,
    start_session,
    viewer,
)
from workers.gateway.params import Text

router = APIRouter(route_class=ConsoleRoute)
LOGGING_IN = Public(
    "anyone: the console's login form and its post (CSRF token, throttle per login and address)"
)


def _next(value: str | None) -> str:
    # Only a path of the console itself (never another site).
    return value if value and value.startswith("/console/") and not value.startswith("//") else "/console/"


@router.get("/login", dependencies=[Depends(LOGGING_IN)])
def login_form(request: Request, next: Text | None = None) -> Response:
    return render(request, "login.html", None, next=_next(next))


@router.post("/login", dependencies=[Depends(LOGGING_IN)])
def login(request: Request, form: Posted = posted) -> Response:
    address = address_of(request)
    login_name = form.get("login", "")
    with session_scope() as session:
        result = authenticate(session, login_name, form.raw("password"), address)
        outcome = "ok" if result.user else (result.refusal or "refused")
        audit(session, login_name.strip()[:64] or "-", "console.login", None, None, outcome, address)
        if result.user is not None:
            start_session(request, result.user)
    if result.user is None:
        return render(
            request,
            "login.html",
            None,
            next=_next(form.get("next")),
            error=result.refusal,
            login=login_name,
            status_code=429 if result.throttled else 401,
        )
    return RedirectResponse(_next(form.get("next")), status_code=303)


@router.post("/logout")
def logout(request: Request, person: Person = viewer, form: Posted = posted) -> Response:
    with session_scope() as session:
        audit(session, person.login, "console.logout", address=address_of(request))
    request.session.clear()
    return RedirectResponse("/console/login", status_code=303)


FLOW = Flow(router)

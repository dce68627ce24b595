"""The console as an application mounted at ``/console`` by the gateway: its session cookie, its
error pages, its static files, and the flows whose pages it shows (``FLOWS``)."""

from __future__ import annotations

import secrets

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import get_settings
from workers.gateway.console import acts, audit, exchange, home, login, mail, ops, payments, sep, users
from workers.gateway.console.pages import Flow, install
from workers.gateway.console.web import HERE, CsrfRefused, Forbidden, LoginRequired, render

# Every flow's pages, in the order of the menu. A new flow adds its module's FLOW here.
FLOWS: list[Flow] = [
    login.FLOW,
    home.FLOW,
    sep.FLOW,
    payments.FLOW,
    acts.FLOW,
    mail.FLOW,
    exchange.FLOW,
    ops.FLOW,
    audit.FLOW,
    users.FLOW,
]

# Nothing from outside obmen: scripts, styles, images, forms and frames all from the console itself.
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def create_console() -> FastAPI:
    settings = get_settings()
    secret = settings.console_secret.get_secret_value() if settings.console_secret else ""
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install(FLOWS)
    for flow in FLOWS:
        console.include_router(flow.router)
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @console.exception_handler(LoginRequired)
    def _login(request: Request, exc: LoginRequired) -> Response:
        if request.method != "GET" or request.headers.get("x-console-fragment"):
            return render(request, "error.html", None, message="Войдите в систему", status_code=401)
        return RedirectResponse(f"/console/login?next={request.url.path}", status_code=303)

    @console.exception_handler(Forbidden)
    def _forbidden(request: Request, exc: Forbidden) -> Response:
        return render(
            request, "error.html", None, message="Недостаточно прав для этого действия", status_code=403
        )

    @console.exception_handler(CsrfRefused)
    def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return render(
            request,
            "error.html",
            None,
            message="Форма устарела: обновите страницу и повторите",
            status_code=403,
        )

    console.add_middleware(
        SessionMiddleware,
        secret_key=secret or secrets.token_urlsafe(32),
        session_cookie="obmen_console",
        max_age=int(settings.console_session_hours * 3600),
        path="/console",
        same_site="lax",
        https_only=settings.console_secure_cookies,
    )
    console.add_middleware(SecurityHeaders)
    return console

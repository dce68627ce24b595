"""The console's part of the gateway under ``/console``: its session cookie, its
headers, its two static files, and the flows whose pages it shows (``FLOWS``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, Response
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import get_settings
from workers.gateway.access import Public
from workers.gateway.console import (
    acts,
    audit,
    billing,
    edo,
    exchange,
    home,
    invoices,
    login,
    mail,
    ops,
    payments,
    sep,
    sep_changes,
    sms,
    users,
)
from workers.gateway.console.pages import Flow, install
from workers.gateway.console.web import HERE, ConsoleRoute, Person, viewer
from workers.gateway.params import Text

PREFIX = "/console"
# Every flow's pages, in the order of the menu. A new flow adds its module's FLOW here.
FLOWS: list[Flow] = [
    login.FLOW,
    home.FLOW,
    sep.FLOW,
    sep_changes.FLOW,
    payments.FLOW,
    billing.FLOW,
    sms.FLOW,
    acts.FLOW,
    invoices.FLOW,
    edo.FLOW,
    mail.FLOW,
    exchange.FLOW,
    ops.FLOW,
    audit.FLOW,
    users.FLOW,
]
install(FLOWS)

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
# The API's pages (Swagger UI, ReDoc) start with an inline script and ReDoc runs a worker from a blob;
# nothing may come from another host (ReDoc's footer logo would: it is not fetched).
DOCS_PATHS = ("/docs", "/redoc")
DOCS_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
]


class SecurityHeaders:
    """The browser-facing pages' headers: the console's, and the API description's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = None
        if scope["type"] == "http":
            extra = HEADERS if _is_console(scope) else DOCS_HEADERS if scope["path"] in DOCS_PATHS else None
        if extra is None:
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, with_headers)


class SessionCookie(SessionMiddleware):
    """The console's signed session cookie, read and written on the console's paths only."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_console(scope):
            await super().__call__(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _is_console(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    return path == PREFIX or path.startswith(PREFIX + "/")


# The stylesheet and the script hold no data: the login page needs them before anyone has logged in.
ASSETS = Public("anyone: the console's stylesheet and script, which hold no data")
static = APIRouter(route_class=ConsoleRoute, dependencies=[Depends(ASSETS)])
MEDIA = {".css": "text/css", ".js": "text/javascript"}


def _static(path: Path) -> Callable[[], Response]:
    def static_file() -> Response:
        return FileResponse(path, media_type=MEDIA[path.suffix], headers={"cache-control": "max-age=3600"})

    return static_file


# One route per file (no path parameter: nothing else in the folder can be asked for).
for _path in sorted((HERE / "static").iterdir()):
    if _path.suffix in MEDIA:
        static.add_api_route(f"/static/{_path.name}", _static(_path), methods=["GET"], name=_path.name)


# Last of all: any other console address is the console's own «Не найдено» page, not the API's
# JSON 404 (asked without a session, it leads to the login page like every page).
missing = APIRouter(route_class=ConsoleRoute)


@missing.get("/{address:path}")
def not_found(address: Text, person: Person = viewer) -> Response:
    raise HTTPException(404)


def routers() -> list[APIRouter]:
    """The console's routers (every route a ``ConsoleRoute``), to include under ``PREFIX``."""
    return [static, *(flow.router for flow in FLOWS), missing]


def install_console(api: FastAPI) -> None:
    """The console's session cookie and headers on the gateway ``api`` (its routes are in ``routers()``)."""
    settings = get_settings()
    secret = settings.console_secret.get_secret_value() if settings.console_secret else ""
    api.add_middleware(
        SessionCookie,
        secret_key=secret or secrets.token_urlsafe(32),
        session_cookie="obmen_console",
        max_age=int(settings.console_session_hours * 3600),
        path=PREFIX,
        same_site="lax",
        https_only=settings.console_secure_cookies,
    )
    api.add_middleware(SecurityHeaders)

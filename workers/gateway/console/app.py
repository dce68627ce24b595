"""The console's part of the gateway under ``/console``: its session cookie, its error pages, its
headers, its two static files, and the flows whose pages it shows (``FLOWS``)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import get_settings
from workers.gateway.console import acts, audit, exchange, home, login, mail, ops, payments, sep, users
from workers.gateway.console.pages import Flow, install
from workers.gateway.console.web import HERE, CsrfRefused, Forbidden, LoginRequired, render

PREFIX = "/console"
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


class ConsoleSession(SessionMiddleware):
    """The console's signed session cookie, read and written on the console's paths only."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_console(scope):
            await super().__call__(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _is_console(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    return path == PREFIX or path.startswith(PREFIX + "/")


static = APIRouter()
STATIC_FILES = {p.name: p for p in (HERE / "static").iterdir() if p.suffix in (".css", ".js")}
MEDIA = {".css": "text/css", ".js": "text/javascript"}


@static.get("/static/{name}")
def static_file(name: str) -> Response:
    """The console's own stylesheet and script (nothing else is served from the folder)."""
    found = STATIC_FILES.get(name)
    if found is None:
        return Response(status_code=404)
    return FileResponse(found, media_type=MEDIA[found.suffix], headers={"cache-control": "max-age=3600"})


def install_console(api: FastAPI) -> None:
    """Add the console's routes, session cookie, error pages and headers to the gateway ``api``."""
    settings = get_settings()
    secret = settings.console_secret.get_secret_value() if settings.console_secret else ""
    install(FLOWS)
    api.include_router(static, prefix=PREFIX, include_in_schema=False)
    for flow in FLOWS:
        api.include_router(flow.router, prefix=PREFIX, include_in_schema=False)

    @api.exception_handler(LoginRequired)
    def _login(request: Request, exc: LoginRequired) -> Response:
        if request.method != "GET" or request.headers.get("x-console-fragment"):
            return render(request, "error.html", None, message="Войдите в систему", status_code=401)
        return RedirectResponse(f"{PREFIX}/login?next={request.url.path}", status_code=303)

    @api.exception_handler(Forbidden)
    def _forbidden(request: Request, exc: Forbidden) -> Response:
        return render(
            request, "error.html", None, message="Недостаточно прав для этого действия", status_code=403
        )

    @api.exception_handler(CsrfRefused)
    def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return render(
            request,
            "error.html",
            None,
            message="Форма устарела: обновите страницу и повторите",
            status_code=403,
        )

    api.add_middleware(
        ConsoleSession,
        secret_key=secret or secrets.token_urlsafe(32),
        session_cookie="obmen_console",
        max_age=int(settings.console_session_hours * 3600),
        path=PREFIX,
        same_site="lax",
        https_only=settings.console_secure_cookies,
    )
    api.add_middleware(SecurityHeaders)

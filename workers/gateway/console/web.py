"""What every console page shares: templates with Russian formats, the signed session, who is logged
in and what their role allows, CSRF tokens, flash messages, and lists that page with keyset cursors
and export as CSV."""

from __future__ import annotations

import csv
import hmac
import io
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from config.settings import get_settings
from models.console import ADMIN, OPERATOR, VIEWER, ConsoleUser, role_allows
from models.db import session_scope
from workers.gateway.access import Access, Refused
from workers.gateway.edge import EdgeRoute
from workers.gateway.params import Note, Text

HERE = Path(__file__).parent
MOSCOW = ZoneInfo("Europe/Moscow")
SESSION_USER = "uid"
SESSION_STAMP = "pwd"
SESSION_CSRF = "csrf"
SESSION_FLASH = "flash"
CSV_MAX_ROWS = 100_000


# --- Russian formats ----------------------------------------------------------------------------------
def ru_datetime(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        local = value.astimezone(MOSCOW) if value.tzinfo else value
        return local.strftime("%d.%m.%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    return str(value)


def ru_date(value: Any) -> str:
    if isinstance(value, str) and len(value) == 10:
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value.astimezone(MOSCOW).date() if value.tzinfo else value.date()
    return value.strftime("%d.%m.%Y") if isinstance(value, date) else ("" if value is None else str(value))


def ru_money(value: Any) -> str:
    """1 234 567,89 ₽ (narrow no-break spaces between thousands, a comma before kopecks)."""
    if value is None or value == "":
        return ""
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    whole, _, cents = f"{abs(amount):,.2f}".partition(".")
    sign = "−" if amount < 0 else ""
    return sign + whole.replace(",", "\u202f") + "," + cents + "\u00a0₽"


def ru_number(value: Any) -> str:
    return f"{int(value):,}".replace(",", "\u202f") if value is not None else ""


# Statuses as people read them: the words and a colour class; the word itself is the text cue.
STATUS_STYLE: dict[str, str] = {
    # The seed's request statuses and colours.
    "Ошибка чтения XML": "bad",
    "Ошибка запроса": "bad",
    "Получен номер очереди": "wait",
    "Получен ответ": "good",
}
STATUS_WORDS: dict[str, tuple[str, str]] = {
    "new": ("Новое", "wait"),
    "error": ("Ошибка", "bad"),
    "processed": ("Обработано", "good"),
    "pending": ("Ожидает", "wait"),
    "uncertain": ("Неизвестно, повторяется", "wait"),
    "queued": ("В очереди СЭП", "wait"),
    "done": ("Готово", "good"),
    "applied": ("Применено", "good"),
    "received": ("Получен", "wait"),
    "posted": ("Разнесён", "good"),
    "unallocated": ("Не разнесён", "bad"),
    "unpaid": ("Не оплачено", "bad"),
    "paid": ("Оплачено", "good"),
    "partly_paid": ("Оплачено частично", "wait"),
    "matched": ("Засчитано", "good"),
    "ambiguous": ("Неоднозначно", "bad"),
    "unmatched": ("Счёт не найден", "bad"),
    "waiting": ("Ждёт срока", "wait"),
    "due": ("Срок наступил", "bad"),
    "cancelled": ("Отменено", "muted"),
    "sent": ("Отправлено", "good"),
    "parked": ("Остановлено", "bad"),
    "Исполнен": ("Исполнен", "good"),
    "Ожидает подтверждения": ("Ожидает подтверждения", "wait"),
    "Отклонено": ("Отклонено", "bad"),
    "Ошибка": ("Ошибка", "bad"),
    # SEP's lease changes and counterparties (issue 14).
    "Черновик": ("Черновик", "muted"),
    "Отправляется": ("Отправляется", "wait"),
    "Зарегистрировано": ("Зарегистрировано", "wait"),
    "Подтверждается": ("Подтверждается", "wait"),
    "Проверяется": ("Проверяется", "wait"),
    "Регистрируется": ("Регистрируется", "wait"),
    "Есть в СЭП": ("Есть в СЭП", "good"),
    "Зарегистрирован": ("Зарегистрирован", "good"),
    # Billing's requests and SMS (issue 14).
    "awaiting_payment": ("Ждёт оплаты", "wait"),
    "process_started": ("Процесс запущен", "good"),
    "closed": ("Закрыта", "muted"),
    "delivered": ("Доставлено", "good"),
    "failed": ("Не доставлено", "bad"),
    "notified": ("Оповещены", "good"),
}
STATUS_MARK = {"bad": "✖", "wait": "○", "good": "✔", "muted": "–"}


def status_badge(value: Any) -> Markup:
    if value is None or value == "":
        return Markup("")
    text = str(value)
    style = STATUS_STYLE.get(text)
    words = text
    if style is None:
        words, style = STATUS_WORDS.get(text, (text, "plain"))
    mark = STATUS_MARK.get(style, "")
    return Markup('<span class="st st-{}" data-status="{}">{}{}</span>').format(
        style, text, f"{mark} " if mark else "", words
    )


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(dt=ru_datetime, d=ru_date, money=ru_money, num=ru_number, status=status_badge)


# --- who is there ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    id: int
    login: str
    role: str

    def may(self, role: str) -> bool:
        return role_allows(self.role, role)


def address_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _stamp(user: ConsoleUser) -> str:
    return user.password_changed_at.isoformat()


def start_session(request: Request, user: ConsoleUser) -> None:
    request.session.clear()
    request.session.update(
        {SESSION_USER: user.id, SESSION_STAMP: _stamp(user), SESSION_CSRF: secrets.token_urlsafe(24)}
    )


def csrf_token(request: Request) -> str:
    token = request.session.get(SESSION_CSRF)
    if not token:
        token = request.session[SESSION_CSRF] = secrets.token_urlsafe(24)
    return str(token)


def _person(request: Request) -> Person | None:
    uid = request.session.get(SESSION_USER)
    if not isinstance(uid, int):
        return None
    with session_scope() as session:
        user = session.get(ConsoleUser, uid)
        # A disabled user, or a session from before the last password change, is logged out.
        if user is None or user.disabled_at is not None or request.session.get(SESSION_STAMP) != _stamp(user):
            request.session.clear()
            return None
        return Person(user.id, user.login, user.role)


_PERSON = "obmen.console_person"


class ConsoleSession(Access):
    """A person logged in to the console (the signed session cookie) whose role allows ``role``.

    As a dependency it gives the route the :class:`Person`. Its refusals (401 no session, 403 role)
    become the console's pages, not JSON (:class:`ConsoleRoute`).
    """

    kind = "console_session"

    def __init__(self, role: str) -> None:
        super().__init__(f"a person logged in to the console with a role allowing {role!r}")
        self.role = role

    def openapi(self) -> dict[str, Any]:
        extra = super().openapi()
        extra["x-obmen-access"]["role"] = self.role
        return extra

    async def check(self, request: Request) -> None:
        # The user's row is read each time: a disabled user or a changed password ends the session.
        person = await run_in_threadpool(_person, request)
        if person is None:
            raise Refused(401, "no console session", "log in to the console")
        if not person.may(self.role):
            raise Refused(403, f"role {person.role} lacks {self.role}", f"the role {self.role!r} is needed")
        request.scope[_PERSON] = person

    async def __call__(self, request: Request) -> Person:  # type: ignore[override]
        await self.admit(request)
        person = request.scope[_PERSON]
        assert isinstance(person, Person)
        return person


viewer = Depends(ConsoleSession(VIEWER))
operator = Depends(ConsoleSession(OPERATOR))
admin = Depends(ConsoleSession(ADMIN))


class CsrfRefused(Exception):
    pass


_TEXT: TypeAdapter[str] = TypeAdapter(Text)
_NOTE: TypeAdapter[str] = TypeAdapter(Note)
# What a refusal says to a person (the API's callers get the gateway's JSON instead).
REFUSALS = {
    403: "Недостаточно прав для этого действия",
    404: "Не найдено",
    422: "Неверные данные в адресе или форме: проверьте их и повторите",
}


class ConsoleRoute(EdgeRoute):
    """A console page: the edge's one rule and edge types like every route, and every query value a
    ``Text`` (the lists read their filters from the query); its refusals are the console's own HTML
    pages — the login page, «Недостаточно прав» — never JSON. Only the console's routes answer so:
    the gateway's error answers elsewhere are not touched. Pages are not API operations: none is in
    the OpenAPI text."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **{**kwargs, "include_in_schema": False})

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def pages(request: Request) -> Response:
            try:
                await self.access.admit(request)
                for name, value in request.query_params.multi_items():
                    bounded(_TEXT, name, "query")
                    bounded(_TEXT, value, "query", name)
                return await handler(request)
            except HTTPException as exc:
                return refusal_page(request, exc.status_code, str(exc.detail))
            except RequestValidationError:
                return refusal_page(request, 422)
            except CsrfRefused:
                return render(
                    request,
                    "error.html",
                    None,
                    message="Форма устарела: обновите страницу и повторите",
                    status_code=403,
                )

        return pages


def bounded(adapter: TypeAdapter[str], value: str, *where: str) -> None:
    """``value`` as the edge type of ``adapter`` would take it; a 422 (``RequestValidationError``) if not."""
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": where} for error in exc.errors(include_url=False, include_input=False)]
        ) from exc


def refusal_page(request: Request, status: int, detail: str = "") -> Response:
    if status == 401:
        if request.method == "GET" and not request.headers.get("x-console-fragment"):
            return RedirectResponse(f"/console/login?next={quote(request.url.path)}", status_code=303)
        return render(request, "error.html", None, message="Войдите в систему", status_code=401)
    message = REFUSALS.get(status) or detail or "Ошибка"
    return render(request, "error.html", None, message=message, status_code=status)


class Posted:
    """A posted form whose CSRF token matched the session's."""

    def __init__(self, form: FormData) -> None:
        self.form = form

    def get(self, name: str, default: str = "") -> str:
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else default

    def raw(self, name: str) -> str:
        value = self.form.get(name)
        return value if isinstance(value, str) else ""

    def all(self, name: str) -> list[str]:
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str) and v.strip()]

    def file(self, name: str) -> UploadFile | None:
        value = self.form.get(name)
        return value if isinstance(value, UploadFile) and value.filename else None


async def form_of(request: Request) -> Posted:
    form = await request.form()
    sent = form.get("csrf")
    expected = str(request.session.get(SESSION_CSRF, ""))
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRefused()
    # A form's text is a person's note at most (what the register store can hold), a file's name too.
    for name, value in form.multi_items():
        bounded(_NOTE, value if isinstance(value, str) else value.filename or "", "form", name)
    return Posted(form)


posted = Depends(form_of)


# --- answers ------------------------------------------------------------------------------------------
def flash(request: Request, text: str, kind: str = "good") -> None:
    request.session.setdefault(SESSION_FLASH, []).append([kind, text])


def back(request: Request, fallback: str = "/console/") -> RedirectResponse:
    """After a form: back where the person was (same origin only)."""
    target = request.headers.get("referer", "")
    base = str(request.base_url).rstrip("/")
    path = target[len(base) :] if target.startswith(base + "/") else fallback
    # A confirmation page is the answer to a post: going back to it would be a GET of a form's target.
    if path.partition("?")[0] == request.url.path:
        path = fallback
    return RedirectResponse(path, status_code=303)


def render(
    request: Request, template: str, person: Person | None, *, fragment: bool = False, **context: Any
) -> HTMLResponse:
    """A page (or, ``fragment``, a piece of one that leaves the flash messages for the page)."""
    from workers.gateway.console.charts import chart_for
    from workers.gateway.console.pages import navigation

    messages = request.session.pop(SESSION_FLASH, []) if person and not fragment else []
    nav = navigation(person) if person else []
    page = templates.get_template(template).render(
        request=request,
        user=person,
        nav=nav,
        active=_active(nav, request.url.path),
        csrf=csrf_token(request),
        messages=messages,
        path=request.url.path,
        query=dict(request.query_params),
        chart=chart_for(request.url.path) if person and not fragment and "charts" not in context else None,
        **context,
    )
    return HTMLResponse(page, status_code=context.get("status_code", 200))


def _active(nav: list[Any], path: str) -> str | None:
    """The menu entry a page belongs to: the longest one whose path leads to it (/console/billing/works
    is «Плановые работы», not «Начисления» at /console/billing)."""
    leading = [
        p.path for p in nav if path == p.path or (p.path != "/console/" and path.startswith(p.path + "/"))
    ]
    return max(leading, key=len, default=None)


def url_with(request: Request, **changes: Any) -> str:
    params = {k: v for k, v in request.query_params.items() if k not in changes}
    params.update({k: v for k, v in changes.items() if v not in (None, "")})
    return request.url.path + ("?" + urlencode(params) if params else "")


templates.globals["url_with"] = url_with


# --- lists ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    key: str
    title: str
    # text, dt, d, money, num, status, code, pre
    kind: str = "text"
    link: str | None = None  # a format string over the row, e.g. "/console/acts/{id}"


Fetch = Callable[[Session, Mapping[str, str], Any, int], list[dict[str, Any]]]


@dataclass(frozen=True)
class Listing:
    """A list: its columns, and how to fetch one page of rows after a cursor (``None``: the first)."""

    name: str
    columns: tuple[Column, ...]
    fetch: Fetch
    # The row value the next page starts after (the keyset cursor).
    cursor: str = "id"
    filters: tuple[str, ...] = field(default_factory=tuple)

    def page(self, session: Session, query: Mapping[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        size = get_settings().console_page_size
        after = query.get("after") or None
        rows = self.fetch(session, self.chosen(query), after, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        return rows, (str(rows[-1][self.cursor]) if more and rows else None)

    def chosen(self, query: Mapping[str, str]) -> dict[str, str]:
        return {k: query[k].strip() for k in self.filters if query.get(k, "").strip()}

    def csv(self, query: Mapping[str, str]) -> StreamingResponse:
        """Every row of the filtered list as CSV (UTF-8 with BOM, «;» as Russian Excel expects)."""
        chosen = self.chosen(query)

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer, delimiter=";")
            writer.writerow([c.title for c in self.columns])
            yield "\ufeff" + buffer.getvalue()
            after: Any = None
            sent = 0
            while sent < CSV_MAX_ROWS:
                with session_scope() as session:
                    rows = self.fetch(session, chosen, after, 1000)
                if not rows:
                    return
                buffer.seek(0)
                buffer.truncate()
                for row in rows:
                    writer.writerow([_csv_value(row.get(c.key)) for c in self.columns])
                yield buffer.getvalue()
                sent += len(rows)
                after = rows[-1][self.cursor]

        return StreamingResponse(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{self.name}.csv"'},
        )


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return ru_datetime(value)
    if isinstance(value, date):
        return ru_date(value)
    if isinstance(value, Decimal):
        return str(value).replace(".", ",")
    if isinstance(value, list | dict):
        return str(value)
    return value


def list_page(
    request: Request, person: Person, listing: Listing, template: str = "list.html", **context: Any
) -> Response:
    """One page of ``listing`` with the request's filters, or all of it as CSV (``?format=csv``)."""
    query = request.query_params
    if query.get("format") == "csv":
        return listing.csv(query)
    with session_scope() as session:
        rows, after = listing.page(session, query)
    return render(
        request,
        template,
        person,
        listing=listing,
        rows=rows,
        next_url=url_with(request, after=after) if after else None,
        first_url=url_with(request, after=None) if query.get("after") else None,
        csv_url=url_with(request, format="csv", after=None),
        **context,
    )


# --- counts -------------------------------------------------------------------------------------------
_counts: dict[str, tuple[float, Any]] = {}


def cached(key: str, compute: Callable[[], Any], ttl: float | None = None) -> Any:
    """``compute()`` at most once per ``ttl`` (``OBMEN_CONSOLE_COUNT_CACHE_S``) in this process."""
    ttl = get_settings().console_count_cache_s if ttl is None else ttl
    now = time.monotonic()
    hit = _counts.get(key)
    if ttl > 0 and hit is not None and now - hit[0] < ttl:
        return hit[1]
    value = compute()
    _counts[key] = (now, value)
    return value

"""The client of 1C's HTTP service for invoices (счета на оплату); the contract is in docs/invoices.md.

* ``POST <url>/invoices`` with ``{"ИдЗапроса", "Заказ", "Сумма", "ИНН"}``: the invoice for that
  order and amount (1C finds it or makes it); the answer must be for what was asked.
* ``GET <url>/invoices/<Ид>``: the invoice as 1C holds it now.
* ``GET <url>/changes?after=<cursor>&limit=<n>``: the change list after a cursor.

``<url>`` is the HTTP service's root (``http(s)://host/<publication>/hs/<root>``). Authentication is
HTTP Basic as a 1C user, UTF-8 encoded (1C users are often named in Russian). Every call holds one of
the ``OBMEN_ONEC_MAX_SESSIONS`` leases (:mod:`integrations.onec.sessions`) for its duration, and
runs under one deadline with a response size cap (:mod:`integrations.bounded_http`).

1C out of licences answers 500 (or 503) with a text about licences or sessions, often an HTML page:
:class:`OnecLicencesExhausted`, "try later", like every other 5xx. Every exchange goes to the
recorder with the password masked and base64 files clipped to their first characters.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from integrations import jsonsafe
from integrations.bounded_http import Answer, BoundedClient
from integrations.errors import RateLimited
from integrations.exchange import Exchange, Recorder, discard
from integrations.onec.errors import (
    OnecAuthRefused,
    OnecLicencesExhausted,
    OnecNotFound,
    OnecRefused,
    OnecUnavailable,
)
from integrations.onec.invoices import (
    ChangesPage,
    Invoice,
    check_matches,
    invoice_request,
    load_json,
    parse_changes,
    parse_invoice,
)
from integrations.onec.sessions import SessionSlots, hold

SYSTEM = "onec"
# A lease outlives its call's deadline by this much (clock drift between us and Redis, scheduling).
LEASE_MARGIN_S = 5.0
# Room in an answer beyond the file itself (base64 grows it by 4/3, 1C breaks it into lines).
ANSWER_OVERHEAD_BYTES = 1_000_000
# How 1C (and the web server in front of it) words "no free licence" or "too many sessions".
# Bounded quantifiers only: the text is the server's, up to the answer cap.
_LICENCE_WORDS = re.compile(
    r"лиценз|licen[cs]e|сеанс\w{0,12}[^.]{0,60}превыш|превыш\w{0,12}[^.]{0,60}(?:сеанс|соединен)",
    re.IGNORECASE,
)
# Where an error page says why: its beginning.
_ERROR_TEXT_SCANNED = 65_536
_REALM = re.compile(r'realm="([^"]*)"', re.IGNORECASE)
# A long base64 run inside a JSON string (1C's line breaks appear escaped as \r\n).
_BASE64_RUN = re.compile(r'"((?:[A-Za-z0-9+/=]|\\[rn]){256,})')
_BASE64_KEEP = 32


def answer_cap(max_file_bytes: int) -> int:
    """The largest answer read: one file in base64 with 1C's line breaks, plus the rest of the JSON."""
    return max_file_bytes * 14 // 10 + ANSWER_OVERHEAD_BYTES


class OnecClient:
    """One per process; safe to use from several threads."""

    def __init__(
        self,
        url: str,
        user: str,
        password: SecretStr,
        *,
        sessions: SessionSlots,
        max_file_bytes: int,
        recorder: Recorder = discard,
        deadline_s: float = 30.0,
        max_wait_s: float = 0.1,
        busy_retry_s: float = 5.0,
        verify: bool | str = True,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("OBMEN_ONEC_URL is the HTTP service's root, http(s)://host/<base>/hs/<root>")
        self.url = url.rstrip("/")
        self.user = user
        self._authorization = "Basic " + base64.b64encode(
            f"{user}:{password.get_secret_value()}".encode()
        ).decode("ascii")
        self.sessions = sessions
        self.max_file_bytes = max_file_bytes
        self.recorder = recorder
        self.deadline_s = deadline_s
        self.max_wait_s = max_wait_s
        self.busy_retry_s = busy_retry_s
        self._http = BoundedClient(deadline_s=deadline_s, max_bytes=answer_cap(max_file_bytes), verify=verify)

    def close(self) -> None:
        self._http.close()

    # --- the service's methods -------------------------------------------------------------------
    def request_invoice(
        self, *, order_id: str, amount: Decimal, customer_inn: str, request_key: str
    ) -> Invoice:
        """The invoice for ``order_id`` and ``amount``; :class:`InvoiceMismatch` when 1C answers another."""
        body = invoice_request(order_id, amount, customer_inn, request_key)
        raw = self._call(
            "POST", "/invoices", operation="СчетНаОплату", json_body=body, business_key=request_key
        )
        invoice = parse_invoice(raw, max_file_bytes=self.max_file_bytes)
        check_matches(invoice, order_id=order_id, amount=amount, customer_inn=customer_inn)
        return invoice

    def get_invoice(self, onec_id: str) -> Invoice:
        raw = self._call("GET", f"/invoices/{onec_id}", operation="ПолучитьСчет", business_key=onec_id)
        return parse_invoice(raw, max_file_bytes=self.max_file_bytes)

    def changes(self, cursor: str | None, *, limit: int) -> ChangesPage:
        """The change list after ``cursor`` (from the start with ``None``), at most ``limit`` entries."""
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["after"] = cursor
        raw = self._call("GET", "/changes", operation="СписокИзменений", params=params, business_key=cursor)
        return parse_changes(raw)

    # --- the transport --------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: dict[str, str | int] | None = None,
        json_body: dict[str, str] | None = None,
        business_key: str | None = None,
    ) -> Any:
        headers = {"Authorization": self._authorization, "Accept": "application/json"}
        content = None
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
        request = self._http.build_request(
            method, self.url + path, params=params, content=content, headers=headers
        )
        ttl_s = self.deadline_s + LEASE_MARGIN_S
        with hold(self.sessions, ttl_s=ttl_s, max_wait_s=self.max_wait_s, retry_after_s=self.busy_retry_s):
            answer = self._http.send(
                request,
                recorder=self.recorder,
                system=SYSTEM,
                operation=operation,
                business_key=business_key,
                shape=_clip_files,
            )
        self._check(answer, operation)
        return load_json(answer.content)

    def _check(self, answer: Answer, operation: str) -> None:
        status = answer.status_code
        if status in (200, 201):
            return
        text = _text(answer.content)
        said = _said(text)
        if status == 401:
            match = _REALM.search(answer.headers.get("www-authenticate", ""))
            realm = match.group(1) if match else None
            raise OnecAuthRefused(
                f"1C {operation}: user {self.user!r} refused (HTTP 401, realm {realm!r}); check "
                "OBMEN_ONEC_USER and OBMEN_ONEC_PASSWORD",
                realm,
            )
        if status >= 500 and _LICENCE_WORDS.search(text[:_ERROR_TEXT_SCANNED]):
            raise OnecLicencesExhausted(
                f"1C {operation}: no free licence or session (HTTP {status}: {said})",
                retry_after_s=_retry_after(answer) or self.busy_retry_s,
            )
        if status == 429:
            raise RateLimited(
                f"1C {operation}: HTTP 429", retry_after_s=_retry_after(answer) or self.busy_retry_s
            )
        if status >= 500:
            raise OnecUnavailable(f"1C {operation}: HTTP {status}: {said}")
        if status == 404:
            raise OnecNotFound(f"1C {operation}: not found (HTTP 404: {said})", status)
        raise OnecRefused(f"1C {operation}: HTTP {status}: {said}", status)


def _text(content: bytes) -> str:
    """An error body as text: UTF-8, else windows-1251 (IIS pages of Russian Windows)."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1251", errors="replace")


def _said(text: str) -> str:
    """What an error answer says, in one short line: 1C's JSON message if there is one."""
    try:
        body = jsonsafe.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("Ошибка", "Сообщение", "Описание", "error", "message"):
            if isinstance(body.get(key), str):
                return body[key][:300]
    return " ".join(text.split())[:300]


def _retry_after(answer: Answer) -> float | None:
    value = answer.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


def _clip_files(exchange: Exchange) -> Exchange:
    return replace(
        exchange,
        request_body=_clip_base64(exchange.request_body),
        response_body=_clip_base64(exchange.response_body),
    )


def _clip_base64(body: str | None) -> str | None:
    if body is None:
        return None
    return _BASE64_RUN.sub(
        lambda m: f'"{m.group(1)[:_BASE64_KEEP]}…[{len(m.group(1))} base64 chars clipped]', body
    )

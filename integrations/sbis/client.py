"""The СБИС JSON-RPC 2.0 client: authenticate, write a document, prepare and execute an action, read
a document, follow the change feed.

* ``POST <base>/auth/service/`` with ``СБИС.Аутентифицировать`` gives a session id; every other call
  goes to ``POST <base>/service/?srv=1`` with the ``X-SBISSessionID`` header.
* An expired session answers HTTP 401: the client logs in again and repeats the call once.
  Sessions are shared by every client of one process and login (СБИС allows 300 logins a minute).
* Errors come as JSON-RPC error objects. Request errors (-32600 … -32602, -32700) cannot succeed on
  a retry: :class:`SbisRequestError` (permanent). Others, HTTP 429 and 5xx, and the network are
  transient. A document that does not exist is :class:`DocumentNotFound`.
* Every request is reported to the recorder; the password and the session id never are.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from integrations import jsonsafe
from integrations.bounded_http import Answer, BoundedClient
from integrations.errors import PermanentError, TransientError
from integrations.exchange import Exchange, Recorder
from integrations.sbis.wire import event_kind, format_datetime, parse_datetime

SYSTEM = "sbis"
CONTENT_TYPE = "application/json-rpc;charset=utf-8"
SESSION_HEADER = "X-SBISSessionID"
REQUEST_ERROR_CODES = frozenset({-32700, -32600, -32601, -32602})
# A change-list page of 200 documents with their events is a few megabytes at most.
MAX_ANSWER_BYTES = 20_000_000
_ids = itertools.count(1)

_sessions: dict[tuple[str, str], str] = {}
_sessions_lock = threading.Lock()


class SbisTransientError(TransientError):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SbisRequestError(PermanentError):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class DocumentNotFound(SbisRequestError):
    pass


@dataclass(frozen=True)
class FeedEvent:
    event_id: str
    document_id: str
    document_number: str | None
    name: str
    kind: str
    happened_at: datetime
    state_code: str | None


@dataclass(frozen=True)
class ChangesPage:
    events: list[FeedEvent]
    has_more: bool


class SbisClient:
    def __init__(
        self,
        base_url: str,
        login: str,
        password: str,
        *,
        recorder: Recorder,
        timeout: float = 30.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.login = login
        self._password = password
        self.recorder = recorder
        # ``timeout`` is the deadline of each request: connect, headers and body together.
        self.http = BoundedClient(deadline_s=timeout, max_bytes=max_answer_bytes)

    # --- sessions -------------------------------------------------------------------------------
    @property
    def _key(self) -> tuple[str, str]:
        return (self.base_url, self.login)

    def authenticate(self) -> str:
        """Log in; the session id is kept for every client of this process and login."""
        body = _envelope(
            "СБИС.Аутентифицировать", {"Параметр": {"Логин": self.login, "Пароль": self._password}}
        )
        request = self.http.build_request(
            "POST", f"{self.base_url}/auth/service/", content=body, headers={"Content-Type": CONTENT_TYPE}
        )
        response = self.http.send(
            request, recorder=self._redacting_recorder, system=SYSTEM, operation="СБИС.Аутентифицировать"
        )
        if response.status_code >= 500 or response.status_code == 429:
            raise SbisTransientError(f"СБИС login: HTTP {response.status_code}")
        try:
            result = _result(response, "СБИС.Аутентифицировать")
        except (SbisTransientError, SbisRequestError) as exc:
            # Refused credentials do not get better by trying again.
            raise PermanentError(f"СБИС refused the login of {self.login!r}: {exc}") from exc
        if not isinstance(result, str) or not result:
            raise PermanentError("СБИС login answered without a session id")
        with _sessions_lock:
            _sessions[self._key] = result
        return result

    def _redacting_recorder(self, exchange: Exchange) -> None:
        self.recorder(
            replace(
                exchange,
                request_body=(exchange.request_body or "").replace(
                    json.dumps(self._password, ensure_ascii=False), '"***"'
                ),
                response_body="***" if exchange.response_status == 200 else exchange.response_body,
            )
        )

    def _session(self) -> str:
        with _sessions_lock:
            sid = _sessions.get(self._key)
        return sid or self.authenticate()

    def _forget(self, sid: str) -> None:
        with _sessions_lock:
            if _sessions.get(self._key) == sid:
                del _sessions[self._key]

    # --- calls ----------------------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any], *, business_key: str | None = None) -> Any:
        sid = self._session()
        response = self._post(method, params, sid, business_key)
        if response.status_code == 401:
            self._forget(sid)
            response = self._post(method, params, self.authenticate(), business_key)
            if response.status_code == 401:
                raise SbisTransientError(f"{method}: СБИС refused a fresh session (HTTP 401)")
        return _result(response, method)

    def _post(self, method: str, params: dict[str, Any], sid: str, business_key: str | None) -> Answer:
        request = self.http.build_request(
            "POST",
            f"{self.base_url}/service/",
            params={"srv": "1"},
            content=_envelope(method, params),
            headers={"Content-Type": CONTENT_TYPE, SESSION_HEADER: sid},
        )
        return self.http.send(
            request, recorder=self.recorder, system=SYSTEM, operation=method, business_key=business_key
        )

    # --- the methods the acts flow uses -----------------------------------------------------------
    def write_document(self, document: dict[str, Any], *, business_key: str | None = None) -> dict[str, Any]:
        """``СБИС.ЗаписатьДокумент``: create (with our own Идентификатор) or update a draft."""
        return dict(self.call("СБИС.ЗаписатьДокумент", {"Документ": document}, business_key=business_key))

    def read_document(self, document_id: str, *, business_key: str | None = None) -> dict[str, Any]:
        return dict(
            self.call(
                "СБИС.ПрочитатьДокумент",
                {"Документ": {"Идентификатор": document_id}},
                business_key=business_key,
            )
        )

    def prepare_action(
        self, document_id: str, stage: str, action: str, *, business_key: str | None = None
    ) -> dict[str, Any]:
        return dict(
            self.call(
                "СБИС.ПодготовитьДействие", _action(document_id, stage, action), business_key=business_key
            )
        )

    def execute_action(
        self,
        document_id: str,
        stage: str,
        action: str,
        *,
        comment: str | None = None,
        business_key: str | None = None,
    ) -> dict[str, Any]:
        params = _action(document_id, stage, action)
        if comment:
            params["Документ"]["Этап"]["Действие"]["Комментарий"] = comment
        return dict(self.call("СБИС.ВыполнитьДействие", params, business_key=business_key))

    def list_changes(
        self, *, cursor: str | None, since: datetime | None, page_size: int, page: int = 0
    ) -> ChangesPage:
        """One page of ``СБИС.СписокИзменений``: after the event ``cursor``, else from ``since``."""
        flt: dict[str, Any] = {
            "Навигация": {"РазмерСтраницы": str(page_size), "Страница": str(page)},
            "ПолныйСертификатЭП": "Нет",
        }
        if cursor:
            flt["ИдентификаторСобытия"] = cursor
        elif since is not None:
            flt["ДатаВремяС"] = format_datetime(since)
        result = self.call("СБИС.СписокИзменений", {"Фильтр": flt})
        try:
            events = list(_events(result))
            more = str((result.get("Навигация") or {}).get("ЕстьЕще", "Нет")) == "Да"
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise SbisRequestError(f"СБИС.СписокИзменений answered a shape obmen cannot read: {exc}") from exc
        return ChangesPage(events, more)


def _action(document_id: str, stage: str, action: str) -> dict[str, Any]:
    return {
        "Документ": {
            "Идентификатор": document_id,
            "Этап": {"Название": stage, "Действие": {"Название": action}},
        }
    }


def _events(result: dict[str, Any]) -> Iterator[FeedEvent]:
    for document in result.get("Документ") or []:
        state = document.get("Состояние") or {}
        for event in document.get("Событие") or []:
            name = str(event["Название"])
            yield FeedEvent(
                event_id=str(event["Идентификатор"]),
                document_id=str(document["Идентификатор"]),
                document_number=document.get("Номер"),
                name=name,
                kind=event_kind(name),
                happened_at=parse_datetime(event["ДатаВремя"]),
                state_code=state.get("Код"),
            )


def _envelope(method: str, params: dict[str, Any]) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "method": method, "params": params, "id": next(_ids)}, ensure_ascii=False
    ).encode()


def _result(response: Answer, method: str) -> Any:
    status = response.status_code
    if status == 429 or status >= 500:
        raise SbisTransientError(f"{method}: HTTP {status}")
    try:
        body = jsonsafe.loads(response.content)
    except ValueError as exc:
        if status >= 400:
            raise SbisRequestError(f"{method}: HTTP {status}, not a JSON-RPC answer", status) from exc
        text = response.content[:200].decode("utf-8", errors="replace")
        raise SbisTransientError(f"{method}: the answer is not JSON ({text!r})") from exc
    error = body.get("error") if isinstance(body, dict) else None
    if error:
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        details = error.get("details") if isinstance(error, dict) else None
        text = f"{method}: СБИС error {code}: {message}" + (f" ({details})" if details else "")
        if "не найден" in f"{message} {details}".lower():
            raise DocumentNotFound(text, code)
        if (isinstance(code, int) and code in REQUEST_ERROR_CODES) or (400 <= status < 500):
            raise SbisRequestError(text, code)
        raise SbisTransientError(text, code)
    if status >= 400:
        raise SbisRequestError(f"{method}: HTTP {status}", status)
    if not isinstance(body, dict) or "result" not in body:
        raise SbisTransientError(f"{method}: a JSON-RPC answer without result or error")
    return body["result"]

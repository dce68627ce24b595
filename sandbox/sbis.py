"""СБИС (Saby) EDO emulator: JSON-RPC 2.0 under ``/sbis/auth/service/`` and ``/sbis/service/``.

Methods: ``СБИС.Аутентифицировать``, ``СБИС.ЗаписатьДокумент``, ``СБИС.ПрочитатьДокумент``,
``СБИС.ПодготовитьДействие``, ``СБИС.ВыполнитьДействие``, ``СБИС.СписокИзменений`` (after an event
id, or from a ``ДД.ММ.ГГГГ ЧЧ.ММ.СС`` date, in pages). Sessions expire after ``session_ttl_s`` idle
seconds of sandbox time (or at once through the control endpoint) and then answer HTTP 401.

Scenario endpoints under ``/_sandbox/sbis/``:

* ``POST scenario`` ``{"document": id | "number": n | "documents": [ids], "action": "sign" | "refuse",
  "after_s": 5}``: the counterparty signs or refuses that long (sandbox time) after now;
* ``POST sessions/expire``: every session is gone (the next call gets 401);
* ``POST events`` ``{"document": id, "name": "...", "at": iso}``: append a raw event, at any time
  (an event that arrives late, with a time older than events already in the feed);
* ``POST documents`` ``{"documents": [{"id", "number", "counterparty_inn"}], "state": "sent"}``:
  documents created in bulk, as if sent (benchmarks);
* ``GET documents``: every document with its state and events.

Knobs (``extra``): ``session_ttl_s``; ``auto`` (``"sign"`` / ``"refuse"``) and ``auto_after_s``,
applied to every document sent; ``delivery_after_s``; ``feed_repeat`` (each feed answer also repeats
that many events before the cursor); ``feed_shuffle`` (events of a page come in random order).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import re
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.harness import Emulator, SandboxClock

MSK = ZoneInfo("Europe/Moscow")
LOGIN = "obmen"
PASSWORD = "sandbox-sbis-password"
OUR_INN = "7707083893"
OUR_KPP = "773601001"

# Emulator-defined state codes; only «7» is documented by Saby (completed: signed).
DRAFT = ("1", "Черновик")
SENT = ("2", "Отправлен")
DELIVERED = ("3", "Доставлен")
SIGNED = ("7", "Выполнение завершено успешно")
REFUSED = ("6", "Отклонен")

EV_SENT = "Отправка документа"
EV_DELIVERED = "Доставка документа"
EV_SIGNED = "Утверждение документа"
EV_REFUSED = "Отклонение документа"

STAGE = "Отправка"
ACTION = "Отправить"


class RpcError(Exception):
    def __init__(self, code: int, message: str, details: str | None = None, http_status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.http_status = http_status


@dataclass
class Event:
    seq: int
    id: str
    document_id: str
    name: str
    at: datetime


@dataclass
class Document:
    id: str
    number: str
    date: str
    type: str
    counterparty: dict[str, Any]
    our: dict[str, Any]
    attachments: list[dict[str, Any]]
    state: tuple[str, str] = DRAFT
    prepared: bool = False
    events: list[Event] = field(default_factory=list)

    def as_json(self, base: str) -> dict[str, Any]:
        return {
            "Идентификатор": self.id,
            "Номер": self.number,
            "Дата": self.date,
            "Тип": self.type,
            "Направление": "Исходящий",
            "Состояние": {"Код": self.state[0], "Название": self.state[1]},
            "НашаОрганизация": self.our,
            "Контрагент": self.counterparty,
            "Этап": [{"Название": STAGE, "Действие": [{"Название": ACTION}]}] if self.state == DRAFT else [],
            "Вложение": self.attachments,
            "Событие": [_event_json(e) for e in self.events],
            "СсылкаДляНашаОрганизация": f"{base}/doc/{self.id}",
        }


def _fmt(moment: datetime) -> str:
    return moment.astimezone(MSK).strftime("%d.%m.%Y %H.%M.%S")


def _parse(text: Any, what: str) -> datetime:
    try:
        return datetime.strptime(str(text), "%d.%m.%Y %H.%M.%S").replace(tzinfo=MSK).astimezone(UTC)
    except ValueError as exc:
        raise RpcError(
            -32602, "Неверный формат даты", f"{what}: ожидается ДД.ММ.ГГГГ ЧЧ.ММ.СС, получено {text!r}"
        ) from exc


def _event_json(event: Event) -> dict[str, Any]:
    return {"Идентификатор": event.id, "Название": event.name, "ДатаВремя": _fmt(event.at)}


class SbisEmulator(Emulator):
    system = "sbis"
    prefix = "/sbis"

    def __init__(self, clock: SandboxClock, mailroom: Any = None) -> None:
        super().__init__(clock, mailroom)
        self._lock = threading.RLock()
        self.accounts = {LOGIN: PASSWORD}
        self._fresh_state()

    def _fresh_state(self) -> None:
        self.sessions: dict[str, datetime] = {}
        self.documents: dict[str, Document] = {}
        self.feed: list[Event] = []
        self._by_id: dict[str, Event] = {}
        # (due, document id, action) the counterparty will take.
        self.scheduled: list[tuple[datetime, str, str]] = []
        self.logins = 0

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._fresh_state()

    def client_settings(self, base_url: str) -> dict[str, str]:
        return {
            "OBMEN_SBIS_URL": base_url + self.prefix,
            "OBMEN_SBIS_LOGIN": LOGIN,
            "OBMEN_SBIS_PASSWORD": PASSWORD,
            "OBMEN_SBIS_ORGANIZATION_INN": OUR_INN,
            "OBMEN_SBIS_ORGANIZATION_KPP": OUR_KPP,
        }

    def fault_response(self, kind: str, request: Request) -> Response:
        if kind == "rpc_error":
            return JSONResponse(
                {
                    "jsonrpc": "2.0",
                    "error": {"code": -32000, "message": "Сервис временно недоступен"},
                    "id": None,
                },
                status_code=500,
            )
        if kind == "session_401":
            return JSONResponse(
                {"jsonrpc": "2.0", "error": {"code": -32000, "message": "Сессия истекла"}, "id": None},
                status_code=401,
            )
        return super().fault_response(kind, request)

    # --- the wire ---------------------------------------------------------------------------------
    def routes(self) -> Iterable[BaseRoute]:
        return [
            Route("/auth/service/", self._auth, methods=["POST"]),
            Route("/service/", self._service, methods=["POST"]),
        ]

    async def _auth(self, request: Request) -> Response:
        return await self._rpc(request, authenticated=False)

    async def _service(self, request: Request) -> Response:
        return await self._rpc(request, authenticated=True)

    async def _rpc(self, request: Request, authenticated: bool) -> Response:
        rpc_id: Any = None
        try:
            try:
                envelope = json.loads(await request.body())
            except ValueError as exc:
                raise RpcError(-32700, "Parse error", str(exc)) from exc
            if not isinstance(envelope, dict) or envelope.get("jsonrpc") != "2.0" or "method" not in envelope:
                raise RpcError(-32600, "Invalid Request", "ожидается объект JSON-RPC 2.0 с method")
            rpc_id = envelope.get("id")
            params = envelope.get("params") or {}
            if not isinstance(params, dict):
                raise RpcError(-32602, "Invalid params", "params должен быть объектом")
            method = envelope["method"]
            with self._lock:
                self._materialize()
                if not authenticated:
                    if method != "СБИС.Аутентифицировать":
                        raise RpcError(-32601, "Method not found", f"{method} вызывается на /service/")
                    result: Any = self._authenticate(params)
                else:
                    self._check_session(request.headers.get("x-sbissessionid"))
                    handler = self._methods().get(method)
                    if handler is None:
                        raise RpcError(-32601, "Method not found", f"Метод {method} не найден")
                    result = handler(params, str(request.base_url).rstrip("/"))
        except RpcError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.details:
                error["details"] = exc.details
            return JSONResponse({"jsonrpc": "2.0", "error": error, "id": rpc_id}, status_code=exc.http_status)
        return JSONResponse({"jsonrpc": "2.0", "result": result, "id": rpc_id})

    def _methods(self) -> dict[str, Any]:
        return {
            "СБИС.ЗаписатьДокумент": self._write,
            "СБИС.ПрочитатьДокумент": self._read,
            "СБИС.ПодготовитьДействие": self._prepare,
            "СБИС.ВыполнитьДействие": self._execute,
            "СБИС.СписокИзменений": self._changes,
        }

    # --- sessions -----------------------------------------------------------------------------------
    def _authenticate(self, params: dict[str, Any]) -> str:
        creds = params.get("Параметр") or {}
        if self.accounts.get(str(creds.get("Логин"))) != creds.get("Пароль"):
            raise RpcError(-32000, "Неверный логин или пароль", http_status=401)
        sid = secrets.token_hex(16)
        self.sessions[sid] = self.clock.now()
        self.logins += 1
        return sid

    def _check_session(self, sid: str | None) -> None:
        ttl = float(self.knobs.extra.get("session_ttl_s", 86400))
        last = self.sessions.get(sid or "")
        now = self.clock.now()
        if last is None or (now - last).total_seconds() > ttl:
            self.sessions.pop(sid or "", None)
            raise RpcError(-32000, "Сессия истекла или не существует", "войдите снова", http_status=401)
        self.sessions[sid or ""] = now

    # --- documents ----------------------------------------------------------------------------------
    def _document(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = params.get("Документ")
        if not isinstance(doc, dict):
            raise RpcError(-32602, "Invalid params", "нет объекта Документ")
        return doc

    def _find(self, doc: dict[str, Any]) -> Document:
        found = self.documents.get(str(doc.get("Идентификатор")))
        if found is None:
            raise RpcError(-32602, "Документ не найден", f"Идентификатор {doc.get('Идентификатор')!r}")
        return found

    def _write(self, params: dict[str, Any], base: str) -> dict[str, Any]:
        doc = self._document(params)
        doc_id = str(doc.get("Идентификатор") or uuid.uuid4())
        existing = self.documents.get(doc_id)
        if existing is not None and existing.state != DRAFT:
            raise RpcError(-32000, "Документ уже отправлен", "изменить можно только черновик")
        for key in ("Номер", "Дата", "Тип"):
            if not doc.get(key):
                raise RpcError(-32602, "Не заполнено обязательное поле", key)
        if not re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", str(doc["Дата"])):
            raise RpcError(
                -32602, "Неверный формат даты", f"Дата: ожидается ДД.ММ.ГГГГ, получено {doc['Дата']!r}"
            )
        counterparty = doc.get("Контрагент") or {}
        party = counterparty.get("СвЮЛ") or counterparty.get("СвФЛ") or {}
        if not re.fullmatch(r"\d{10}|\d{12}", str(party.get("ИНН", ""))):
            raise RpcError(-32602, "Не заполнено обязательное поле", "Контрагент.СвЮЛ|СвФЛ.ИНН")
        if not ((doc.get("НашаОрганизация") or {}).get("СвЮЛ") or {}).get("ИНН"):
            raise RpcError(-32602, "Не заполнено обязательное поле", "НашаОрганизация.СвЮЛ.ИНН")
        attachments = []
        for i, item in enumerate(doc.get("Вложение") or []):
            file = (item or {}).get("Файл") or {}
            try:
                content = base64.b64decode(file.get("ДвоичныеДанные") or "", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RpcError(
                    -32602, "Неверные данные вложения", f"Вложение[{i}].Файл.ДвоичныеДанные"
                ) from exc
            if not file.get("Имя") or not content:
                raise RpcError(
                    -32602, "Не заполнено обязательное поле", f"Вложение[{i}].Файл.Имя|ДвоичныеДанные"
                )
            attachments.append(
                {
                    "Идентификатор": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{doc_id}/{i}")),
                    "Файл": {
                        "Имя": file["Имя"],
                        "Хеш": hashlib.sha256(content).hexdigest(),
                        "Размер": str(len(content)),
                    },
                }
            )
        if not attachments:
            raise RpcError(-32602, "Не заполнено обязательное поле", "Вложение")
        stored = Document(
            id=doc_id,
            number=str(doc["Номер"]),
            date=str(doc["Дата"]),
            type=str(doc["Тип"]),
            counterparty=counterparty,
            our=doc["НашаОрганизация"],
            attachments=attachments,
        )
        self.documents[doc_id] = stored
        return stored.as_json(base)

    def _read(self, params: dict[str, Any], base: str) -> dict[str, Any]:
        return self._find(self._document(params)).as_json(base)

    def _stage_action(self, doc: dict[str, Any]) -> tuple[str, str]:
        stage = doc.get("Этап") or {}
        action = stage.get("Действие") or {}
        return str(stage.get("Название")), str(action.get("Название"))

    def _prepare(self, params: dict[str, Any], base: str) -> dict[str, Any]:
        doc = self._document(params)
        stored = self._find(doc)
        if stored.state != DRAFT:
            raise RpcError(-32000, "Этап уже пройден", f"документ в состоянии «{stored.state[1]}»")
        if self._stage_action(doc) != (STAGE, ACTION):
            raise RpcError(
                -32602, "Действие недоступно", f"на этапе черновика доступно только {STAGE}/{ACTION}"
            )
        stored.prepared = True
        answer = stored.as_json(base)
        answer["Этап"] = [
            {
                "Название": STAGE,
                "Действие": [{"Название": ACTION}],
                "Вложение": [
                    {
                        "Идентификатор": a["Идентификатор"],
                        "Файл": {**a["Файл"], "Ссылка": f"{base}/file/{a['Идентификатор']}"},
                    }
                    for a in stored.attachments
                ],
            }
        ]
        return answer

    def _execute(self, params: dict[str, Any], base: str) -> dict[str, Any]:
        doc = self._document(params)
        stored = self._find(doc)
        if stored.state != DRAFT:
            raise RpcError(-32000, "Этап уже пройден", f"документ в состоянии «{stored.state[1]}»")
        if self._stage_action(doc) != (STAGE, ACTION):
            raise RpcError(
                -32602, "Действие недоступно", f"на этапе черновика доступно только {STAGE}/{ACTION}"
            )
        if not stored.prepared:
            raise RpcError(-32000, "Действие не подготовлено", "сначала СБИС.ПодготовитьДействие")
        now = self.clock.now()
        stored.state = SENT
        self._append(stored.id, EV_SENT, now)
        self.scheduled.append(
            (
                now + timedelta(seconds=float(self.knobs.extra.get("delivery_after_s", 1))),
                stored.id,
                "deliver",
            )
        )
        auto = self.knobs.extra.get("auto")
        if auto in ("sign", "refuse"):
            after = float(self.knobs.extra.get("auto_after_s", 2))
            self.scheduled.append((now + timedelta(seconds=after), stored.id, auto))
        return stored.as_json(base)

    # --- the change feed ------------------------------------------------------------------------------
    def _append(self, document_id: str, name: str, at: datetime) -> Event:
        event = Event(len(self.feed) + 1, str(uuid.uuid4()), document_id, name, at)
        self.feed.append(event)
        self._by_id[event.id] = event
        self.documents[document_id].events.append(event)
        return event

    def _materialize(self) -> None:
        """The counterparty's scheduled actions that are due become events, dated when they were due."""
        now = self.clock.now()
        due = sorted((s for s in self.scheduled if s[0] <= now), key=lambda s: s[0])
        self.scheduled = [s for s in self.scheduled if s[0] > now]
        for at, doc_id, action in due:
            doc = self.documents[doc_id]
            if action == "deliver":
                if doc.state == SENT:
                    doc.state = DELIVERED
                self._append(doc_id, EV_DELIVERED, at)
            elif doc.state in (SENT, DELIVERED):
                doc.state = SIGNED if action == "sign" else REFUSED
                self._append(doc_id, EV_SIGNED if action == "sign" else EV_REFUSED, at)

    def _changes(self, params: dict[str, Any], base: str) -> dict[str, Any]:
        flt = params.get("Фильтр") or {}
        nav = flt.get("Навигация") or {}
        try:
            size = int(nav.get("РазмерСтраницы", 25))
            page = int(nav.get("Страница", 0))
        except (TypeError, ValueError) as exc:
            raise RpcError(-32602, "Неверная навигация", "РазмерСтраницы и Страница — числа строкой") from exc
        if not 1 <= size <= 200 or page < 0:
            raise RpcError(-32602, "Неверная навигация", "РазмерСтраницы 1..200, Страница от 0")
        events = self.feed
        cursor = flt.get("ИдентификаторСобытия")
        if cursor:
            found = self._by_id.get(str(cursor))
            if found is None:
                raise RpcError(-32602, "Неизвестный идентификатор события", str(cursor))
            start = found.seq
            repeat = int(self.knobs.extra.get("feed_repeat", 0))
            events = self.feed[max(0, start - repeat) :]
        if flt.get("ДатаВремяС"):
            since = _parse(flt["ДатаВремяС"], "ДатаВремяС")
            events = [e for e in events if e.at >= since]
        if flt.get("ДатаВремяПо"):
            until = _parse(flt["ДатаВремяПо"], "ДатаВремяПо")
            events = [e for e in events if e.at <= until]
        chunk = events[page * size : (page + 1) * size]
        more = len(events) > (page + 1) * size
        if self.knobs.extra.get("feed_shuffle"):
            chunk = random.sample(chunk, len(chunk))
        documents: list[dict[str, Any]] = []
        for event in chunk:
            # Consecutive events of one document share its entry; the order of events is kept.
            if documents and documents[-1]["Идентификатор"] == event.document_id:
                documents[-1]["Событие"].append(_event_json(event))
                continue
            doc = self.documents[event.document_id]
            documents.append(
                {
                    "Идентификатор": doc.id,
                    "Номер": doc.number,
                    "Дата": doc.date,
                    "Состояние": {"Код": doc.state[0], "Название": doc.state[1]},
                    "Событие": [_event_json(event)],
                }
            )
        return {
            "Документ": documents,
            "Навигация": {
                "ЕстьЕще": "Да" if more else "Нет",
                "РазмерСтраницы": str(size),
                "Страница": str(page),
            },
        }

    # --- scenario endpoints ----------------------------------------------------------------------------
    def control_routes(self) -> Iterable[BaseRoute]:
        async def scenario(request: Request) -> JSONResponse:
            body = await request.json()
            action = body.get("action")
            if action not in ("sign", "refuse"):
                return JSONResponse({"error": "action is 'sign' or 'refuse'"}, status_code=400)
            with self._lock:
                many = body.get("documents")
                docs = [self.documents.get(str(d)) for d in many] if many else [self._lookup(body)]
                if not docs or any(d is None for d in docs):
                    return JSONResponse({"error": "no such document"}, status_code=404)
                due = self.clock.now() + timedelta(seconds=float(body.get("after_s", 0)))
                self.scheduled += [(due, d.id, action) for d in docs if d is not None]
            return JSONResponse({"documents": len(docs), "action": action, "due": due.isoformat()})

        async def expire(request: Request) -> JSONResponse:
            with self._lock:
                count = len(self.sessions)
                self.sessions.clear()
            return JSONResponse({"expired": count})

        async def raw_event(request: Request) -> JSONResponse:
            body = await request.json()
            with self._lock:
                doc = self._lookup(body)
                if doc is None:
                    return JSONResponse({"error": "no such document"}, status_code=404)
                at = datetime.fromisoformat(body["at"]) if body.get("at") else self.clock.now()
                event = self._append(doc.id, str(body["name"]), at)
            return JSONResponse({"event": event.id, "seq": event.seq})

        async def documents(request: Request) -> JSONResponse:
            if request.method == "GET":
                with self._lock:
                    return JSONResponse(
                        [
                            {
                                "id": d.id,
                                "number": d.number,
                                "state": d.state[1],
                                "events": [e.name for e in d.events],
                            }
                            for d in self.documents.values()
                        ]
                    )
            body = await request.json()
            with self._lock:
                for item in body.get("documents", []):
                    self.documents[item["id"]] = Document(
                        id=item["id"],
                        number=item["number"],
                        date=self.clock.now().astimezone(MSK).strftime("%d.%m.%Y"),
                        type="АктВР",
                        counterparty={"СвЮЛ": {"ИНН": item.get("counterparty_inn", "7728168971")}},
                        our={"СвЮЛ": {"ИНН": OUR_INN, "КПП": OUR_KPP}},
                        attachments=[],
                        state=SENT if body.get("state", "sent") == "sent" else DRAFT,
                    )
            return JSONResponse({"documents": len(body.get("documents", []))})

        return [
            Route("/scenario", scenario, methods=["POST"]),
            Route("/sessions/expire", expire, methods=["POST"]),
            Route("/events", raw_event, methods=["POST"]),
            Route("/documents", documents, methods=["GET", "POST"]),
        ]

    def _lookup(self, body: dict[str, Any]) -> Document | None:
        if body.get("document"):
            return self.documents.get(str(body["document"]))
        number = body.get("number")
        return next((d for d in self.documents.values() if d.number == number), None)

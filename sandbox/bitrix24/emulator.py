"""Bitrix24 REST emulator: inbound webhooks, the envelope, paging, batch, the leaky bucket, errors.

``/bitrix24/rest/<user>/<code>/<method>[.json]``, GET or POST (JSON or form-encoded), as the
vendor documents it (protocols.md §3): success is ``{"result": …, "time": {…}}`` (list methods add
``total`` and ``next``, 50 to a page); errors are ``{"error", "error_description"}``; ``batch`` runs
at most 50 commands with ``$result[…]`` references and puts failures in ``result_error``; every
executed method counts against a leaky bucket (50, draining 2/s) that answers 503
``QUERY_LIMIT_EXCEEDED`` when full. Deals, their stage history, tasks, workflows and notifications
live in memory, and smart processes with their items and the deals' product rows (``items.py``);
tests read them under ``/_sandbox/bitrix24/``. Knobs ``extra.hold_method``/``hold_s``/``hold_next``:
the method is done, its answer held, so a worker can be killed between the portal's work and its
own commit.

Written from the protocol, not from obmen's client: a misreading on either side fails a test.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.bitrix24.events import APPLICATION_TOKEN, OutboundEvents
from sandbox.bitrix24.items import SmartProcesses
from sandbox.harness import Emulator

WEBHOOK_USER = "1"
WEBHOOK_CODE = "sandbox-webhook-code"
PAGE = 50
BATCH_LIMIT = 50
DEFAULT_STAGES = {
    "NEW": "Новая",
    "PREPARATION": "Подготовка документов",
    "UC_AWAIT": "Ожидает оплаты",
    "UC_PAID": "Оплачено",
    "EXECUTING": "В работе",
    "FINAL_INVOICE": "Финальный счёт",
    "WON": "Сделка успешна",
    "LOSE": "Сделка провалена",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


def not_found() -> ApiError:
    return ApiError(400, "", "Not found")


# --- PHP-style query strings ----------------------------------------------------------------------
_NAME = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and list(value) == [str(i) for i in range(len(value))]:
            return list(value.values())
    return value


def parse_php_query(query: str) -> dict[str, Any]:
    """``a[b][0]=x&a[b][1]=y&c=1`` → ``{"a": {"b": ["x", "y"]}, "c": "1"}`` (PHP's parse_str)."""
    out: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        match = _NAME.match(name)
        keys = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))] if match else [name]
        node = out
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            if key == "":
                key = str(len(node))
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    break
    return dict(_listify(out))


# --- the portal's state ---------------------------------------------------------------------------
class Portal:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.deals: dict[int, dict[str, Any]] = {}
        self.stage_history: list[dict[str, Any]] = []
        self.tasks: dict[int, dict[str, Any]] = {}
        self.companies: dict[int, dict[str, Any]] = {}
        self.workflows: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.stages: dict[str, str] = dict(DEFAULT_STAGES)
        self.templates: dict[int, str] = {}
        self._ids = {"deal": 0, "task": 0, "notify": 0, "company": 0}

    def next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]


class LeakyBucket:
    """The portal's counter: each executed method adds one, it drains ``drain_per_s``; full → 503."""

    def __init__(self, size: float = 50, drain_per_s: float = 2.0) -> None:
        self.size = size
        self.drain_per_s = drain_per_s
        self.level = 0.0
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def _drain(self) -> None:
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self._at) * self.drain_per_s)
        self._at = now

    def take(self, cost: int) -> bool:
        with self._lock:
            self._drain()
            if self.level + cost > self.size:
                return False
            self.level += cost
            return True

    def state(self) -> dict[str, float]:
        with self._lock:
            self._drain()
            return {"bucket_size": self.size, "drain_per_s": self.drain_per_s, "level": round(self.level, 3)}


def _now_text() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _text(value: Any) -> Any:
    """Bitrix24 answers scalar fields as strings."""
    if value is None or isinstance(value, list | dict | str):
        return value
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def _when(value: Any) -> datetime | None:
    """A date-time the portal would parse (``2026-11-25T12:00:00+03:00``), else None."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None and "T" in str(value) else None


def _compare(op: str, have: Any, want: Any) -> bool:
    if isinstance(want, list):
        found = any(_compare("=", have, w) for w in want)
        return not found if op == "!" else found
    if op == "%":
        return str(want).lower() in str(have or "").lower()
    a: Any
    b: Any
    try:
        a, b = float(have), float(want)
    except (TypeError, ValueError):
        a, b = _when(have), _when(want)
        if a is None or b is None:
            a, b = str(have if have is not None else ""), str(want)
    return {
        "=": a == b,
        "!": a != b,
        ">": a > b,
        "<": a < b,
        ">=": a >= b,
        "<=": a <= b,
    }[op]


def _sort_key(field: str, item: dict[str, Any]) -> tuple[int, float, str]:
    text = str(item.get(field) or "")
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _matches(item: dict[str, Any], flt: dict[str, Any]) -> bool:
    for raw_key, want in flt.items():
        match = re.match(r"^(>=|<=|!=|!|>|<|=|%)?(.+)$", raw_key)
        assert match is not None
        op = match.group(1) or "="
        op = "!" if op == "!=" else op
        if not _compare(op, item.get(match.group(2)), want):
            return False
    return True


Handler = Callable[[dict[str, Any]], dict[str, Any]]


class Bitrix24Emulator(Emulator):
    system = "bitrix24"
    prefix = "/bitrix24"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.portal = Portal()
        self.bucket = LeakyBucket()
        self.events = OutboundEvents()
        self.smart = self._smart_processes()
        super().__init__(*args, **kwargs)

    def _smart_processes(self) -> SmartProcesses:
        return SmartProcesses(
            lambda event, object_id, fields: self.events.fire(event, object_id, fields),
            ApiError,
            _now_text,
            lambda deal_id: deal_id in self.portal.deals,
            self.events.base_url,
        )

    # --- wire ------------------------------------------------------------------------------------
    def routes(self) -> Iterable[BaseRoute]:
        return [Route("/rest/{user}/{code}/{method}", self._rest, methods=["GET", "POST"])]

    def client_settings(self, base_url: str) -> dict[str, str]:
        self.events.base_url = base_url
        self.smart.file_url = base_url
        return {
            "OBMEN_BITRIX24_WEBHOOK_URL": f"{base_url}{self.prefix}/rest/{WEBHOOK_USER}/{WEBHOOK_CODE}/",
            "OBMEN_BITRIX24_APPLICATION_TOKEN": APPLICATION_TOKEN,
        }

    def reset(self) -> None:
        super().reset()
        self.portal = Portal()
        self.bucket = LeakyBucket()
        self.events.stop()
        self.events = OutboundEvents(self.events.base_url)
        self.smart = self._smart_processes()

    def stop(self) -> None:
        self.events.stop()

    def fault_response(self, kind: str, request: Request) -> Response:
        faults = {
            "query_limit": (503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
            "operation_time_limit": (
                429,
                "OPERATION_TIME_LIMIT",
                "Method is blocked due to operation time limit.",
            ),
            "internal_error": (500, "INTERNAL_SERVER_ERROR", "Internal server error"),
            "overload": (503, "OVERLOAD_LIMIT", "REST API is blocked due to overload."),
        }
        if kind == "wrong_shape":  # a 200 envelope whose result is not what the method answers
            return JSONResponse({"result": {"unexpected": True}, "time": {}})
        if kind in faults:
            status, code, text = faults[kind]
            return JSONResponse({"error": code, "error_description": text}, status_code=status)
        return super().fault_response(kind, request)

    async def _params(self, request: Request) -> dict[str, Any]:
        params = parse_php_query(request.url.query)
        if request.method == "POST":
            raw = await request.body()
            kind = request.headers.get("content-type", "")
            if raw and "json" in kind:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise ApiError(400, "INVALID_REQUEST", f"Invalid JSON: {exc}") from exc
                if not isinstance(body, dict):
                    raise ApiError(400, "INVALID_REQUEST", "The body must be a JSON object")
                params.update(body)
            elif raw:
                params.update(parse_php_query(raw.decode("utf-8", errors="replace")))
        return params

    async def _rest(self, request: Request) -> Response:
        started = time.time()
        method = request.path_params["method"].lower().removesuffix(".json")
        try:
            if (request.path_params["user"], request.path_params["code"]) != (WEBHOOK_USER, WEBHOOK_CODE):
                raise ApiError(401, "INVALID_CREDENTIALS", "Invalid request credentials")
            params = await self._params(request)
            if method == "batch":
                cmd = params.get("cmd") or {}
                if len(cmd) > BATCH_LIMIT:
                    raise ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
                self._charge(max(1, len(cmd)))
                envelope = self._batch(params, cmd)
            else:
                handler = self._handler(method)
                self._charge(1)
                with self.portal.lock:
                    envelope = handler(params)
                await self._hold(method)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        envelope["time"] = self._time(started)
        return JSONResponse(envelope)

    async def _hold(self, method: str) -> None:
        """Knobs ``hold_method``/``hold_s``/``hold_next``: hold the answer of a method already done until
        ``hold_s`` passed or the knob is taken back (a held answer would keep the sandbox from stopping)."""
        extra = self.knobs.extra
        if extra.get("hold_method") != method or int(extra.get("hold_next", 0)) <= 0:
            return
        extra["hold_next"] = int(extra["hold_next"]) - 1
        loop = asyncio.get_running_loop()
        until = loop.time() + float(extra.get("hold_s", 30.0))
        while loop.time() < until and self.knobs.extra.get("hold_method") == method:
            await asyncio.sleep(0.05)

    def _charge(self, cost: int) -> None:
        if not self.bucket.take(cost):
            raise ApiError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")

    @staticmethod
    def _time(started: float) -> dict[str, Any]:
        finished = time.time()
        return {
            "start": started,
            "finish": finished,
            "duration": finished - started,
            "processing": finished - started,
            "date_start": datetime.fromtimestamp(started, UTC).astimezone().isoformat(timespec="seconds"),
            "date_finish": datetime.fromtimestamp(finished, UTC).astimezone().isoformat(timespec="seconds"),
            "operating_reset_at": int(started) + 600,
            "operating": 0,
        }

    def _handler(self, method: str) -> Handler:
        handlers: dict[str, Handler] = {
            "crm.deal.add": self._deal_add,
            "crm.deal.get": self._deal_get,
            "crm.deal.list": self._deal_list,
            "crm.deal.update": self._deal_update,
            "crm.status.list": self._status_list,
            "tasks.task.add": self._task_add,
            "tasks.task.get": self._task_get,
            "tasks.task.list": self._task_list,
            "crm.company.add": self._company_add,
            "crm.company.get": self._company_get,
            "bizproc.workflow.start": self._workflow_start,
            "im.notify.system.add": self._notify,
            "im.notify.personal.add": self._notify,
            **self.smart.handlers(),
        }
        if method not in handlers:
            raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        return handlers[method]

    # --- batch -----------------------------------------------------------------------------------
    def _batch(self, params: dict[str, Any], cmd: dict[str, Any] | list[Any]) -> dict[str, Any]:
        commands = cmd if isinstance(cmd, dict) else {str(i): c for i, c in enumerate(cmd)}
        halt = str(params.get("halt", "0")) in ("1", "true", "Y")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        nexts: dict[str, Any] = {}
        times: dict[str, Any] = {}
        for name, text in commands.items():
            started = time.time()
            method, _, query = self._substitute(str(text), results).partition("?")
            try:
                if method.lower() == "batch":
                    raise ApiError(
                        400, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
                    )
                handler = self._handler(method.lower())
                with self.portal.lock:
                    envelope = handler(parse_php_query(query))
            except ApiError as exc:
                errors[name] = exc.body()
                if halt:
                    break
                continue
            results[name] = envelope["result"]
            if "total" in envelope:
                totals[name] = envelope["total"]
            if "next" in envelope:
                nexts[name] = envelope["next"]
            times[name] = self._time(started)
        # PHP encodes an empty array as [] — clients must cope with that, as with the real portal.
        return {
            "result": {
                "result": results or [],
                "result_error": errors or [],
                "result_total": totals or [],
                "result_next": nexts or [],
                "result_time": times or [],
            }
        }

    @staticmethod
    def _substitute(text: str, results: dict[str, Any]) -> str:
        def value(match: re.Match[str]) -> str:
            node: Any = results
            for key in re.findall(r"\[([^\[\]]+)\]", match.group(0)):
                node = node.get(key) if isinstance(node, dict) else None
            return "" if node is None else str(node)

        return re.sub(r"\$result(?:\[[^\[\]]+\])+", value, text)

    # --- methods ---------------------------------------------------------------------------------
    def _deal(self, params: dict[str, Any], key: str = "id") -> dict[str, Any]:
        try:
            deal_id = int(params.get(key) or params.get(key.upper()) or 0)
        except (TypeError, ValueError):
            deal_id = 0
        deal = self.portal.deals.get(deal_id)
        if deal is None:
            raise not_found()
        return deal

    def add_deal(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a deal (the method, and tests seeding the portal)."""
        portal = self.portal
        with portal.lock:
            deal_id = int(fields["ID"]) if fields.get("ID") else portal.next_id("deal")
            portal._ids["deal"] = max(portal._ids["deal"], deal_id)
            now = _now_text()
            deal = {
                "TITLE": "",
                "STAGE_ID": "NEW",
                "CATEGORY_ID": "0",
                "CURRENCY_ID": "RUB",
                "OPPORTUNITY": "0.00",
                "ASSIGNED_BY_ID": "1",
                "CLOSED": "N",
                "ORIGIN_ID": None,
                **{k: _text(v) for k, v in fields.items()},
                "ID": str(deal_id),
                "DATE_CREATE": now,
                "DATE_MODIFY": now,
            }
            portal.deals[deal_id] = deal
            self.events.fire("ONCRMDEALADD", deal_id)
            return deal

    def _deal_add(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = params.get("fields") or {}
        if not isinstance(fields, dict):
            raise ApiError(400, "", "fields must be an object")
        return {"result": int(self.add_deal({k: v for k, v in fields.items() if k != "ID"})["ID"])}

    def _deal_get(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"result": dict(self._deal(params))}

    def _deal_update(self, params: dict[str, Any]) -> dict[str, Any]:
        deal = self._deal(params)
        fields = params.get("fields") or {}
        if not isinstance(fields, dict):
            raise ApiError(400, "", "fields must be an object")
        before = deal.get("STAGE_ID")
        for name, value in fields.items():
            if name not in ("ID", "DATE_CREATE"):
                deal[name] = _text(value)
        deal["DATE_MODIFY"] = _now_text()
        if deal.get("STAGE_ID") != before:
            self.portal.stage_history.append(
                {
                    "deal_id": int(deal["ID"]),
                    "from": before,
                    "to": deal["STAGE_ID"],
                    "at": deal["DATE_MODIFY"],
                }
            )
        self.events.fire("ONCRMDEALUPDATE", int(deal["ID"]))
        return {"result": True}

    def _deal_list(self, params: dict[str, Any]) -> dict[str, Any]:
        flt = params.get("filter") or {}
        select = params.get("select") or ["*"]
        order = params.get("order") or {"ID": "ASC"}
        items = [d for d in self.portal.deals.values() if _matches(d, flt)]
        for field, direction in reversed(list(order.items())):
            items.sort(key=partial(_sort_key, field), reverse=str(direction).upper() == "DESC")
        start = int(params.get("start") or 0)
        if start == -1:  # the fast mode: no count, no next; the caller pages by ID
            page, envelope = items[:PAGE], {}
        else:
            page = items[start : start + PAGE]
            envelope = {"total": len(items)}
            if start + PAGE < len(items):
                envelope["next"] = start + PAGE
        if "*" not in select:
            page = [{k: v for k, v in d.items() if k in select or k == "ID"} for d in page]
        return {"result": [dict(d) for d in page], **envelope}

    def _status_list(self, params: dict[str, Any]) -> dict[str, Any]:
        entity = (params.get("filter") or {}).get("ENTITY_ID", "DEAL_STAGE")
        if entity != "DEAL_STAGE":
            return {"result": [], "total": 0}
        rows = [
            {"ID": str(i), "ENTITY_ID": "DEAL_STAGE", "STATUS_ID": sid, "NAME": name, "SORT": str(10 * i)}
            for i, (sid, name) in enumerate(self.portal.stages.items(), start=1)
        ]
        return {"result": rows, "total": len(rows)}

    def _task_add(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = params.get("fields") or {}
        if not isinstance(fields, dict) or not fields.get("TITLE"):
            raise ApiError(400, "ERROR_CORE", "Не указано название задачи (TITLE is required)")
        if not fields.get("RESPONSIBLE_ID"):
            raise ApiError(400, "ERROR_CORE", "Не указан ответственный (RESPONSIBLE_ID is required)")
        task_id = self.portal.next_id("task")
        task = {
            "id": str(task_id),
            "title": fields["TITLE"],
            "description": fields.get("DESCRIPTION", ""),
            "responsibleId": str(fields["RESPONSIBLE_ID"]),
            "deadline": fields.get("DEADLINE"),
            "ufCrmTask": fields.get("UF_CRM_TASK") or [],
            "xmlId": fields.get("XML_ID"),
            "status": "2",
            "createdDate": _now_text(),
        }
        self.portal.tasks[task_id] = task
        return {"result": {"task": dict(task)}}

    def _task_get(self, params: dict[str, Any]) -> dict[str, Any]:
        task = self.portal.tasks.get(int(params.get("taskId") or params.get("id") or 0))
        if task is None:
            raise not_found()
        return {"result": {"task": dict(task)}}

    def _task_list(self, params: dict[str, Any]) -> dict[str, Any]:
        # Task fields are filtered by their upper-case names (XML_ID, RESPONSIBLE_ID, TITLE …).
        def upper(task: dict[str, Any]) -> dict[str, Any]:
            return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).upper(): v for k, v in task.items()}

        flt = params.get("filter") or {}
        found = [t for t in self.portal.tasks.values() if _matches(upper(t), flt)]
        start = int(params.get("start") or 0)
        envelope: dict[str, Any] = {"total": len(found)}
        if start + PAGE < len(found):
            envelope["next"] = start + PAGE
        return {"result": {"tasks": [dict(t) for t in found[start : start + PAGE]]}, **envelope}

    def add_company(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.portal.lock:
            company_id = int(fields["ID"]) if fields.get("ID") else self.portal.next_id("company")
            self.portal._ids["company"] = max(self.portal._ids["company"], company_id)
            company = {"TITLE": "", "EMAIL": [], **fields, "ID": str(company_id), "DATE_MODIFY": _now_text()}
            self.portal.companies[company_id] = company
            return company

    def _company_add(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = params.get("fields") or {}
        if not isinstance(fields, dict):
            raise ApiError(400, "", "fields must be an object")
        return {"result": int(self.add_company({k: v for k, v in fields.items() if k != "ID"})["ID"])}

    def _company_get(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            company = self.portal.companies.get(int(params.get("id") or params.get("ID") or 0))
        except (TypeError, ValueError):
            company = None
        if company is None:
            raise not_found()
        return {"result": dict(company)}

    def _workflow_start(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            template = int(params.get("TEMPLATE_ID") or 0)
        except (TypeError, ValueError):
            template = 0
        if template <= 0 or (self.portal.templates and template not in self.portal.templates):
            raise ApiError(400, "ERROR_WRONG_WORKFLOW_ID", "Wrong workflow template ID")
        document = params.get("DOCUMENT_ID")
        if not isinstance(document, list) or len(document) != 3:
            raise ApiError(400, "ERROR_WRONG_DOCUMENT_ID", "DOCUMENT_ID is [module, entity, id]")
        if document[1] == "CCrmDocumentDeal":
            self._deal({"id": str(document[2]).removeprefix("DEAL_")})
        workflow_id = f"{int(time.time() * 1e6):x}.{random.randint(10**7, 10**8 - 1)}"
        self.portal.workflows.append(
            {
                "id": workflow_id,
                "template_id": template,
                "document_id": document,
                "parameters": params.get("PARAMETERS") or {},
                "started_at": _now_text(),
            }
        )
        return {"result": workflow_id}

    def _notify(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("USER_ID") or not params.get("MESSAGE"):
            raise ApiError(400, "ERROR_ARGUMENT", "USER_ID and MESSAGE are required")
        notify_id = self.portal.next_id("notify")
        self.portal.notifications.append(
            {
                "id": notify_id,
                "user_id": int(params["USER_ID"]),
                "message": params["MESSAGE"],
                "tag": params.get("TAG"),
            }
        )
        return {"result": notify_id}

    # --- what tests read and set -----------------------------------------------------------------
    def control_routes(self) -> Iterable[BaseRoute]:
        async def deals(request: Request) -> JSONResponse:
            if request.method == "POST":
                body = await request.json()
                created = [self.add_deal(d) for d in (body if isinstance(body, list) else [body])]
                return JSONResponse([int(d["ID"]) for d in created], status_code=201)
            with self.portal.lock:
                return JSONResponse(list(self.portal.deals.values()))

        async def deal(request: Request) -> JSONResponse:
            with self.portal.lock:
                found = self.portal.deals.get(int(request.path_params["deal_id"]))
                if found is None:
                    return JSONResponse({"error": "no such deal"}, status_code=404)
                history = [h for h in self.portal.stage_history if h["deal_id"] == int(found["ID"])]
                return JSONResponse(
                    {
                        **found,
                        "stage_name": self.portal.stages.get(found["STAGE_ID"]),
                        "stage_history": history,
                    }
                )

        def lister(attr: str) -> Callable[[Request], Any]:
            async def read(request: Request) -> JSONResponse:
                with self.portal.lock:
                    value = getattr(self.portal, attr)
                    return JSONResponse(list(value.values()) if isinstance(value, dict) else list(value))

            return read

        async def limits(request: Request) -> JSONResponse:
            if request.method == "PUT":
                body = await request.json()
                self.bucket = LeakyBucket(
                    float(body.get("bucket_size", self.bucket.size)),
                    float(body.get("drain_per_s", self.bucket.drain_per_s)),
                )
            return JSONResponse(self.bucket.state())

        async def stages(request: Request) -> JSONResponse:
            if request.method == "PUT":
                self.portal.stages.update(await request.json())
            return JSONResponse(self.portal.stages)

        async def manager_update(request: Request) -> JSONResponse:
            """A manager changes the deal in the portal's UI (the outbound event follows)."""
            fields = await request.json()
            try:
                with self.portal.lock:
                    self._deal_update({"id": request.path_params["deal_id"], "fields": fields})
                    return JSONResponse(dict(self.portal.deals[int(request.path_params["deal_id"])]))
            except ApiError as exc:
                return JSONResponse(exc.body(), status_code=404)

        async def companies(request: Request) -> JSONResponse:
            if request.method == "POST":
                body = await request.json()
                created = [self.add_company(c) for c in (body if isinstance(body, list) else [body])]
                return JSONResponse([int(c["ID"]) for c in created], status_code=201)
            with self.portal.lock:
                return JSONResponse(list(self.portal.companies.values()))

        async def events(request: Request) -> JSONResponse:
            """``PUT {"handler": url, "events": [...], "drop_next": n}``: the portal's outgoing webhook."""
            if request.method == "PUT":
                body = await request.json()
                if "handler" in body:
                    self.events.unbind(handler=body["handler"])
                    for name in body.get("events", ["ONCRMDEALADD", "ONCRMDEALUPDATE"]):
                        self.events.bind(name, body["handler"])
                if "drop_next" in body:
                    self.events.drop_next = int(body["drop_next"])
            return JSONResponse({**self.events.state(), "idle": self.events.idle()})

        async def types(request: Request) -> JSONResponse:
            """``PUT {"1038": "Акты"}``: smart processes, as an administrator creates them."""
            if request.method == "PUT":
                with self.portal.lock:
                    self.smart.types.update({int(k): str(v) for k, v in (await request.json()).items()})
            return JSONResponse({str(k): v for k, v in self.smart.types.items()})

        async def items(request: Request) -> JSONResponse:
            with self.portal.lock:
                found = self.smart.items.get(int(request.path_params["type_id"]), {})
                return JSONResponse(list(found.values()))

        async def item_update(request: Request) -> JSONResponse:
            """``{"fields": {...}, "user": 9}``: a manager changes the item in the portal (the event follows)."""
            body = await request.json()
            try:
                with self.portal.lock:
                    answer = self.smart.manager_update(
                        int(request.path_params["type_id"]),
                        int(request.path_params["item_id"]),
                        dict(body.get("fields") or {}),
                        int(body.get("user") or 1),
                    )
            except ApiError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            return JSONResponse(answer["result"]["item"])

        async def file(request: Request) -> Response:
            found = self.smart.files.get(int(request.path_params["file_id"]))
            if found is None:
                return JSONResponse({"error": "no such file"}, status_code=404)
            return Response(found["content"], media_type="application/octet-stream")

        async def product_rows(request: Request) -> JSONResponse:
            """``POST [{"PRODUCT_ID", "PRODUCT_NAME", "PRICE", "QUANTITY"}]``: the deal's product rows."""
            with self.portal.lock:
                stored = self.smart.set_rows(int(request.path_params["deal_id"]), list(await request.json()))
            return JSONResponse(stored, status_code=201)

        async def templates(request: Request) -> JSONResponse:
            if request.method == "PUT":
                self.portal.templates.update({int(k): str(v) for k, v in (await request.json()).items()})
            return JSONResponse({str(k): v for k, v in self.portal.templates.items()})

        return [
            Route("/deals", deals, methods=["GET", "POST"]),
            Route("/deals/{deal_id:int}", deal, methods=["GET"]),
            Route("/stage-history", lister("stage_history"), methods=["GET"]),
            Route("/tasks", lister("tasks"), methods=["GET"]),
            Route("/workflows", lister("workflows"), methods=["GET"]),
            Route("/notifications", lister("notifications"), methods=["GET"]),
            Route("/limits", limits, methods=["GET", "PUT"]),
            Route("/stages", stages, methods=["GET", "PUT"]),
            Route("/templates", templates, methods=["GET", "PUT"]),
            Route("/deals/{deal_id:int}/update", manager_update, methods=["POST"]),
            Route("/companies", companies, methods=["GET", "POST"]),
            Route("/events", events, methods=["GET", "PUT"]),
            Route("/types", types, methods=["GET", "PUT"]),
            Route("/items/{type_id:int}", items, methods=["GET"]),
            Route("/items/{type_id:int}/{item_id:int}/update", item_update, methods=["POST"]),
            Route("/files/{file_id:int}", file, methods=["GET"]),
            Route("/deals/{deal_id:int}/productrows", product_rows, methods=["POST"]),
        ]

"""A Bitrix24 REST client over an inbound webhook (``https://portal/rest/<user>/<code>/``).

Why not the official SDK (b24pysdk): it builds ``https://{domain}/rest`` itself, so it cannot reach a
portal behind a path prefix or plain HTTP (our sandbox, a reverse proxy); it retries 503 by
sleeping inside the call with no shared view of the portal's limit; and it offers no hook to record
each raw request and answer. This client is small: JSON POSTs, the envelope, typed errors, the
portal's leaky bucket shared across workers through an injected :class:`RateLimiter`, and every
request reported to the exchange recorder (with the webhook code masked).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from integrations import jsonsafe
from integrations.bitrix24.errors import (
    Bitrix24Error,
    Bitrix24RequestError,
    Bitrix24Throttled,
    Bitrix24Unavailable,
    error_for,
)
from integrations.bitrix24.query import Ref, command
from integrations.bounded_http import Answer, BoundedClient
from integrations.errors import TransientError
from integrations.exchange import Exchange, Recorder, discard
from integrations.ratelimit import RateLimiter, Slot

SYSTEM = "bitrix24"
BATCH_LIMIT = 50
# A page of 50 deals, or a batch of 50 of them, is well under a megabyte.
MAX_ANSWER_BYTES = 20_000_000
_SECRET_PATH = re.compile(r"(/rest/[^/]+/)[^/]+/")


def mask_webhook(url: str) -> str:
    """The webhook code is a password: never in a log or the exchange register."""
    return _SECRET_PATH.sub(r"\1***/", url, count=1)


def deal_document(deal_id: int | Ref) -> list[Any]:
    """The business-process document id of a deal (or of the deal an earlier batch command made)."""
    if isinstance(deal_id, Ref):
        return ["crm", "CCrmDocumentDeal", Ref(deal_id.key, deal_id.path, prefix="DEAL_")]
    return ["crm", "CCrmDocumentDeal", f"DEAL_{deal_id}"]


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: int | None
    total: int | None


@dataclass(frozen=True)
class BatchResult:
    result: dict[str, Any]
    errors: dict[str, Bitrix24Error]
    total: dict[str, int] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)

    def raise_first(self) -> None:
        if self.errors:
            raise next(iter(self.errors.values()))


class Bitrix24Client:
    def __init__(
        self,
        webhook_url: str,
        *,
        recorder: Recorder = discard,
        limiter: RateLimiter | None = None,
        max_wait_s: float = 0.1,
        retries: int = 2,
        backoff_s: float = 0.5,
        timeout_s: float = 30.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not webhook_url.startswith(("http://", "https://")) or "/rest/" not in webhook_url:
            raise ValueError("the Bitrix24 webhook URL looks like https://portal/rest/<user>/<code>/")
        self.base = webhook_url.rstrip("/") + "/"
        self._recorder = recorder
        self._limiter = limiter
        self.max_wait_s = max_wait_s
        self.retries = retries
        self.backoff_s = backoff_s
        # ``timeout_s`` is the deadline of each request: connect, headers and body together.
        self._http = BoundedClient(deadline_s=timeout_s, max_bytes=max_answer_bytes)
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    # --- the transport ---------------------------------------------------------------------------
    def call_envelope(
        self, method: str, params: Mapping[str, Any] | None = None, *, key: str | None = None, cost: int = 1
    ) -> dict[str, Any]:
        """Call ``method`` and return the whole success envelope (``result``, ``time``, ``next``...).

        ``key`` names the business operation: it goes to the exchange log, and the limiter keeps a
        reserved slot under it when the call has to come back later (:class:`Bitrix24Throttled`).
        Throttling answers are retried here a few times with backoff; then the error is raised for
        the task layer to defer the step.
        """
        attempt = 0
        while True:
            slot = self._reserve(cost, key)
            if not slot.granted:
                raise Bitrix24Throttled(
                    f"Bitrix24 {method}: the portal's request budget is spent; next slot in {slot.wait_s:.1f} s",
                    retry_after_s=slot.wait_s,
                    code="LOCAL_RATE_LIMIT",
                    method=method,
                )
            if slot.wait_s:
                self._sleep(slot.wait_s)
            try:
                return self._send(method, params or {}, key)
            except Bitrix24Throttled as exc:
                if exc.code == "QUERY_LIMIT_EXCEEDED" and self._limiter is not None:
                    self._limiter.saturate()
                delay = self.backoff_s * 2**attempt
                if attempt >= self.retries or max(delay, exc.retry_after_s) > self.max_wait_s:
                    # The portal gives no hint for 503: come back after the next backoff step.
                    exc.retry_after_s = max(exc.retry_after_s, delay)
                    raise
                attempt += 1
                self._sleep(max(delay, exc.retry_after_s))

    def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, key: str | None = None, cost: int = 1
    ) -> Any:
        return self.call_envelope(method, params, key=key, cost=cost)["result"]

    def _reserve(self, cost: int, key: str | None) -> Slot:
        if self._limiter is None:
            return Slot(True, 0.0)
        return self._limiter.reserve(cost, max_wait_s=self.max_wait_s, key=key)

    def _record(self, exchange: Exchange) -> None:
        self._recorder(replace(exchange, url=mask_webhook(exchange.url or "")))

    def _send(self, method: str, params: Mapping[str, Any], key: str | None) -> dict[str, Any]:
        request = self._http.build_request("POST", f"{self.base}{method}.json", json=params)
        try:
            answer = self._http.send(
                request, recorder=self._record, system=SYSTEM, operation=method, business_key=key
            )
        except TransientError as exc:
            raise Bitrix24Unavailable(str(exc), method=method) from exc
        try:
            body = jsonsafe.loads(answer.content)
        except ValueError:
            body = None
        if answer.status_code == 200 and isinstance(body, dict) and "result" in body:
            return body
        if isinstance(body, dict) and "error" in body:
            raise error_for(
                answer.status_code,
                str(body.get("error") or ""),
                str(body.get("error_description") or ""),
                method,
                _retry_after(answer),
            )
        raise error_for(
            answer.status_code if answer.status_code != 200 else 502,
            "",
            f"not a Bitrix24 answer: {answer.content[:200].decode('utf-8', errors='replace')!r}",
            method,
        )

    # --- methods ---------------------------------------------------------------------------------
    def deal_get(self, deal_id: int, *, key: str | None = None) -> dict[str, Any]:
        return dict(self.call("crm.deal.get", {"id": deal_id}, key=key))

    def deal_add(self, fields: Mapping[str, Any], *, key: str | None = None) -> int:
        return int(self.call("crm.deal.add", {"fields": dict(fields)}, key=key))

    def deal_update(
        self, deal_id: int, fields: Mapping[str, Any], *, register_event: bool = True, key: str | None = None
    ) -> bool:
        params = {
            "id": deal_id,
            "fields": dict(fields),
            "params": {"REGISTER_SONET_EVENT": "Y" if register_event else "N"},
        }
        return bool(self.call("crm.deal.update", params, key=key))

    def deal_list(
        self,
        filter: Mapping[str, Any] | None = None,
        select: list[str] | None = None,
        order: Mapping[str, str] | None = None,
        start: int = 0,
    ) -> Page:
        envelope = self.call_envelope("crm.deal.list", _list_params(filter, select, order, start))
        return Page(list(envelope["result"]), envelope.get("next"), envelope.get("total"))

    def iter_deals(
        self,
        filter: Mapping[str, Any] | None = None,
        select: list[str] | None = None,
        order: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        yield from _walk(lambda start: self.deal_list(filter, select, order, start))

    def deal_product_rows(self, deal_id: int, *, key: str | None = None) -> list[dict[str, Any]]:
        """``crm.deal.productrows.get``: the deal's product rows (``ID``, ``PRODUCT_ID``, ``PRODUCT_NAME`` …)."""
        rows = self.call("crm.deal.productrows.get", {"id": deal_id}, key=key)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise Bitrix24Unavailable(
                f"crm.deal.productrows.get answered {str(rows)[:200]!r}, not a list of rows"
            )
        return [dict(r) for r in rows]

    def download(self, url: str, *, key: str | None = None) -> bytes:
        """A file a field of the portal points at (its ``urlMachine``), on the webhook's own host only:
        an answer naming another host is not followed."""
        own, asked = urlsplit(self.base), urlsplit(url)
        if (asked.scheme, asked.netloc) != (own.scheme, own.netloc):
            raise Bitrix24RequestError(
                f"a file at {asked.scheme}://{asked.netloc}, not on the portal {own.netloc}: not read"
            )
        try:
            answer = self._http.send(
                self._http.build_request("GET", url),
                recorder=self._record,
                system=SYSTEM,
                operation="download",
                business_key=key,
                shape=lambda e: replace(
                    e, response_body=f"<{len(e.response_body or '')} characters of a file>"
                ),
            )
        except TransientError as exc:
            raise Bitrix24Unavailable(str(exc), method="download") from exc
        if answer.status_code != 200:
            raise error_for(
                answer.status_code,
                "",
                f"the file at {mask_webhook(url)} answered {answer.status_code}",
                "download",
            )
        return answer.content

    # Smart-process items (``crm.item.*``): camelCase fields, one ``entityTypeId`` per smart process.
    def item_add(
        self, entity_type_id: int, fields: Mapping[str, Any], *, key: str | None = None
    ) -> dict[str, Any]:
        return _item(
            self.call("crm.item.add", {"entityTypeId": entity_type_id, "fields": dict(fields)}, key=key)
        )

    def item_update(
        self, entity_type_id: int, item_id: int, fields: Mapping[str, Any], *, key: str | None = None
    ) -> dict[str, Any]:
        params = {"entityTypeId": entity_type_id, "id": item_id, "fields": dict(fields)}
        return _item(self.call("crm.item.update", params, key=key))

    def item_get(self, entity_type_id: int, item_id: int, *, key: str | None = None) -> dict[str, Any]:
        return _item(self.call("crm.item.get", {"entityTypeId": entity_type_id, "id": item_id}, key=key))

    def item_list(
        self,
        entity_type_id: int,
        filter: Mapping[str, Any] | None = None,
        select: list[str] | None = None,
        order: Mapping[str, str] | None = None,
        start: int = 0,
        *,
        key: str | None = None,
    ) -> Page:
        params = {"entityTypeId": entity_type_id, **_list_params(filter, select, order, start)}
        envelope = self.call_envelope("crm.item.list", params, key=key)
        items = envelope["result"].get("items") if isinstance(envelope["result"], dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise Bitrix24Unavailable(f"crm.item.list answered {str(envelope['result'])[:200]!r}, not items")
        return Page([dict(i) for i in items], envelope.get("next"), envelope.get("total"))

    def iter_items(
        self,
        entity_type_id: int,
        filter: Mapping[str, Any] | None = None,
        select: list[str] | None = None,
        order: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        yield from _walk(lambda start: self.item_list(entity_type_id, filter, select, order, start))

    def task_add(self, fields: Mapping[str, Any], *, key: str | None = None) -> dict[str, Any]:
        """``tasks.task.add``; returns the task (camelCase keys, ``id`` among them)."""
        return dict(self.call("tasks.task.add", {"fields": dict(fields)}, key=key)["task"])

    def workflow_start(
        self,
        template_id: int,
        document_id: list[str],
        parameters: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> str:
        params = {
            "TEMPLATE_ID": template_id,
            "DOCUMENT_ID": document_id,
            "PARAMETERS": dict(parameters or {}),
        }
        return str(self.call("bizproc.workflow.start", params, key=key))

    def notify_system(
        self, user_id: int, message: str, *, tag: str | None = None, key: str | None = None
    ) -> int:
        params: dict[str, Any] = {"USER_ID": user_id, "MESSAGE": message}
        if tag:
            params["TAG"] = tag
        return int(self.call("im.notify.system.add", params, key=key))

    def batch(
        self,
        commands: Mapping[str, tuple[str, Mapping[str, Any]]],
        *,
        halt: bool = False,
        key: str | None = None,
    ) -> BatchResult:
        """Up to 50 commands in one request; later ones may use :class:`~integrations.bitrix24.query.Ref`.

        Every command counts against the portal's limit (the outer call does not). Errors of single
        commands come back typed in ``errors``; with ``halt`` the portal stops at the first one.
        """
        if not commands or len(commands) > BATCH_LIMIT:
            raise ValueError(f"a batch holds 1 to {BATCH_LIMIT} commands, not {len(commands)}")
        cmd = {name: command(method, params) for name, (method, params) in commands.items()}
        envelope = self.call_envelope("batch", {"halt": 1 if halt else 0, "cmd": cmd}, key=key, cost=len(cmd))
        inner = envelope["result"]
        raw_errors = inner.get("result_error") or {}
        errors = {
            name: error_for(
                400, str(err.get("error") or ""), str(err.get("error_description") or ""), commands[name][0]
            )
            for name, err in (raw_errors.items() if isinstance(raw_errors, dict) else [])
        }
        return BatchResult(
            result=dict(inner.get("result") or {}),
            errors=errors,
            total=dict(inner.get("result_total") or {}),
            next=dict(inner.get("result_next") or {}),
        )


def _list_params(
    filter: Mapping[str, Any] | None, select: list[str] | None, order: Mapping[str, str] | None, start: int
) -> dict[str, Any]:
    params: dict[str, Any] = {"start": start}
    if filter:
        params["filter"] = dict(filter)
    if select:
        params["select"] = list(select)
    if order:
        params["order"] = dict(order)
    return params


def _walk(page_at: Callable[[int], Page]) -> Iterator[dict[str, Any]]:
    """Every item of a list method, page after page (``next`` is where the following page starts)."""
    start: int | None = 0
    while start is not None:
        page = page_at(start)
        yield from page.items
        start = page.next


def _item(result: Any) -> dict[str, Any]:
    """The ``item`` of a ``crm.item.*`` answer (``{"item": {"id": …}}``), or a clear error."""
    item = result.get("item") if isinstance(result, dict) else None
    if not isinstance(item, dict) or "id" not in item:
        raise Bitrix24Unavailable(f"a crm.item answer without its item: {str(result)[:200]!r}")
    return dict(item)


def _retry_after(answer: Answer) -> float | None:
    value = answer.headers.get("retry-after")
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):  # the header is the portal's (or a proxy's) word
        return None
    return max(0.0, when.timestamp() - time.time()) if when else None

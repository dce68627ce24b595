"""Outbound events of the Bitrix24 emulator, as the real portal sends them (protocols.md §3).

When a deal or a smart-process item is added or changed (through REST, or by a "manager" through
the control endpoints) the portal POSTs ``application/x-www-form-urlencoded`` to every handler bound
to that event: ``event=ONCRMDEALUPDATE``, ``event_handler_id``, ``data[FIELDS][ID]`` (and for items
``data[FIELDS][ENTITY_TYPE_ID]``: ``ONCRMDYNAMICITEMUPDATE``), ``ts`` and
``auth[domain|client_endpoint|server_endpoint|member_id|application_token]``. Only the id travels;
the receiver reads the deal. Delivery goes through a queue (a background thread here), may be late,
and is **never retried**: a refused or failed POST is logged and forgotten. The knob
``drop_events`` (``extra``) loses that many of the next events on purpose.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

APPLICATION_TOKEN = "sandbox-application-token"
DOMAIN = "sandbox.bitrix24.local"
MEMBER_ID = "0123456789abcdef0123456789abcdef"


@dataclass
class Binding:
    id: int
    event: str
    handler: str


@dataclass
class Delivery:
    event: str
    deal_id: int  # the id the event names: a deal's, or an item's
    handler: str
    fields: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    error: str | None = None
    dropped: bool = False
    at: float = field(default_factory=time.time)


class OutboundEvents:
    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url
        self.application_token = APPLICATION_TOKEN
        self.bindings: list[Binding] = []
        self.deliveries: list[Delivery] = []
        self.drop_next = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, int, dict[str, str]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def bind(self, event: str, handler: str) -> Binding:
        with self._lock:
            binding = Binding(len(self.bindings) + 1, event.upper(), handler)
            self.bindings.append(binding)
            return binding

    def unbind(self, event: str | None = None, handler: str | None = None) -> int:
        with self._lock:
            keep = [
                b
                for b in self.bindings
                if not (
                    (event is None or b.event == event.upper()) and (handler is None or b.handler == handler)
                )
            ]
            removed = len(self.bindings) - len(keep)
            self.bindings = keep
            return removed

    def fire(self, event: str, deal_id: int, fields: dict[str, str] | None = None) -> None:
        """Queue ``event`` for every handler bound to it; it is delivered soon, once, or never.

        ``fields`` go beside the id in ``data[FIELDS]`` (an item's ``ENTITY_TYPE_ID``)."""
        with self._lock:
            if not any(b.event == event for b in self.bindings):
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._deliver_forever, name="bitrix24-events", daemon=True
                )
                self._thread.start()
        self._queue.put((event, deal_id, dict(fields or {})))

    def idle(self) -> bool:
        """Nothing left to deliver (tests wait for this instead of sleeping)."""
        return self._queue.unfinished_tasks == 0

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)

    def _deliver_forever(self) -> None:
        with httpx.Client(timeout=10) as http:
            while (item := self._queue.get()) is not None:
                try:
                    self._deliver(http, *item)
                finally:
                    self._queue.task_done()
            self._queue.task_done()

    def _deliver(self, http: httpx.Client, event: str, deal_id: int, fields: dict[str, str]) -> None:
        with self._lock:
            targets = [b for b in self.bindings if b.event == event]
        for binding in targets:
            delivery = Delivery(event, deal_id, binding.handler, fields)
            with self._lock:
                self.deliveries.append(delivery)
                if self.drop_next > 0:
                    self.drop_next -= 1
                    delivery.dropped = True
                    continue
            body = urlencode(
                {
                    "event": event,
                    "event_handler_id": str(binding.id),
                    "data[FIELDS][ID]": str(deal_id),
                    **{f"data[FIELDS][{name}]": value for name, value in fields.items()},
                    "ts": str(int(time.time())),
                    "auth[access_token]": "",
                    "auth[expires]": "",
                    "auth[expires_in]": "",
                    "auth[scope]": "crm",
                    "auth[domain]": DOMAIN,
                    "auth[server_endpoint]": "https://oauth.bitrix.info/rest/",
                    "auth[status]": "L",
                    "auth[client_endpoint]": f"{self.base_url}/bitrix24/rest/",
                    "auth[member_id]": MEMBER_ID,
                    "auth[refresh_token]": "",
                    "auth[application_token]": self.application_token,
                }
            )
            try:
                response = http.post(
                    binding.handler,
                    content=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                delivery.status = response.status_code
            except httpx.HTTPError as exc:  # no retry: the real portal does not retry either
                delivery.error = f"{type(exc).__name__}: {exc}"

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "bindings": [b.__dict__ for b in self.bindings],
                "deliveries": [d.__dict__ for d in self.deliveries],
                "drop_next": self.drop_next,
            }

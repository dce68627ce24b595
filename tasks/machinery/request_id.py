"""The request id of an HTTP request, carried into the tasks it causes.

The gateway binds it into structlog's context for the request (``workers/gateway/access_log.py``).
Every outbox row written meanwhile keeps it as a message header in its payload (:func:`stamp`), so
the relayed message carries it whoever relays it and whenever; a message published directly gets it
from the context (``before_task_publish``). The worker binds it into the task's log context
(``workers/app.py``), so what a task enqueues carries it on: one id from the request to the last
step it caused.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import structlog
from celery import signals

HEADER = "obmen_request_id"
_KEY = "request_id"


def current() -> str | None:
    value = structlog.contextvars.get_contextvars().get(_KEY)
    return value if isinstance(value, str) else None


def bound_request_id(request_id: str) -> AbstractContextManager[Any]:
    """The request's context: its log lines, and the outbox rows it writes, carry ``request_id``."""
    return structlog.contextvars.bound_contextvars(**{_KEY: request_id})


def stamp(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` (a task signature as a dict) with the current request id as a message header."""
    request_id = current()
    if request_id is not None:
        options = payload["options"] = dict(payload.get("options") or {})
        options["headers"] = {**(options.get("headers") or {}), HEADER: request_id}
    return payload


def of_task(task: Any) -> dict[str, str]:
    """What to bind into a task's log context: its message's request id, if it has one."""
    request_id = getattr(getattr(task, "request", None), HEADER, None)
    return {_KEY: request_id} if isinstance(request_id, str) else {}


@signals.before_task_publish.connect
def _carry(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current()
    if headers is not None and request_id is not None:
        headers.setdefault(HEADER, request_id)

"""The worker's consumer: a message no task can run becomes a dead letter, never a log line or a crash.

Celery drops some such messages with a log line — an unknown task name, a body that is not JSON,
a content type it does not accept, no task headers — and others stop the worker: a message without
an ``id`` header sends its consumer into an endless reconnect loop, a body that is not ``[args,
kwargs, embed]`` ends the worker ("Unrecoverable error") and ends it again after every restart.

This consumer checks every message once, before Celery reads it (:func:`unrunnable`), against
what the worker will need from it; a message that fails is recorded in ``dead_letters`` with the
reason and the raw message, and rejected, so that it is neither lost nor delivered again. What
kombu cannot even read (a compression it does not know) reaches ``on_decode_error``, which does
the same. ``workers/app.py`` installs it as the app's ``worker_consumer``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

from celery.utils.time import maybe_iso8601
from celery.worker.consumer import Consumer
from kombu.exceptions import ContentDisallowed
from kombu.message import Message
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)
from vine import promise

from tasks.machinery.dead_letters import record_dead_letter
from tasks.machinery.policy import describe

logger = logging.getLogger(__name__)

# The task name of a dead letter whose message named no task.
NO_TASK = "(no task name)"


class TaskHeaders(BaseModel):
    """The headers of Celery's task message (protocol 2) the worker reads, with the types it needs."""

    model_config = ConfigDict(extra="allow")

    task: StrictStr
    id: StrictStr = Field(min_length=1)
    shadow: StrictStr | None = None
    eta: StrictStr | None = None
    expires: StrictStr | None = None
    retries: StrictInt = Field(0, ge=0)
    timelimit: list[StrictFloat | StrictInt | None] | None = Field(None, min_length=2, max_length=2)
    root_id: StrictStr | None = None
    parent_id: StrictStr | None = None
    group: StrictStr | None = None
    group_index: StrictInt | None = None
    argsrepr: StrictStr | None = None
    kwargsrepr: StrictStr | None = None
    origin: StrictStr | None = None
    ignore_result: StrictBool | None = None
    stamped_headers: list[StrictStr] | None = None
    stamps: dict[str, Any] | None = None

    @field_validator("eta", "expires")
    @classmethod
    def _a_time(cls, value: str | None) -> str | None:
        """As the worker reads it: ISO 8601, naive meaning UTC, a timestamp in this system's zone."""
        if value is not None:
            try:
                moment = maybe_iso8601(value)
                if moment is None:
                    raise ValueError("empty")
                (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone().timestamp()
            except (ValueError, OverflowError) as exc:
                raise ValueError(f"not a time the worker can schedule: {describe(exc)}") from exc
        return value


class TaskEmbed(BaseModel):
    """The third part of a task body: the canvas around the task (obmen publishes none)."""

    model_config = ConfigDict(extra="allow")

    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    chain: list[dict[str, Any]] | None = None
    chord: dict[str, Any] | None = None


def unrunnable(message: Message, tasks: Mapping[str, Any]) -> str | None:
    """Why no task of ``tasks`` can run ``message``, or None when the worker can run it."""
    headers = message.headers
    if not isinstance(headers, dict) or "task" not in headers:
        return "no task headers: not a Celery task message (obmen takes message protocol 2)"
    try:
        TaskHeaders.model_validate(headers)
    except ValueError as exc:
        return f"bad task headers: {exc}"
    task = tasks.get(headers["task"])
    if task is None:
        return f"unknown task {headers['task']!r}: no task of that name is registered"
    try:
        body = message.decode()
    except ContentDisallowed:
        return f"content type {message.content_type!r} refused: obmen takes JSON only"
    except Exception as exc:  # kombu wraps a decoder's errors in DecodeError; any other is no better
        return f"undecodable body: {describe(exc)}"
    if not (
        isinstance(body, list | tuple)
        and len(body) == 3
        and isinstance(body[0], list)
        and isinstance(body[1], dict)
        and (body[2] is None or isinstance(body[2], dict))
    ):
        return "body is not [args, kwargs, embed] (a list, an object and an object)"
    args, kwargs, embed = body
    try:
        TaskEmbed.model_validate(embed or {})
    except ValueError as exc:
        return f"bad embed (callbacks, errbacks, chain, chord): {exc}"
    check_arguments = getattr(task, "__header__", None)
    if check_arguments is not None:
        try:
            check_arguments(*args, **kwargs)
        except TypeError as exc:
            return f"arguments do not fit {headers['task']}: {exc}"
    return None


class DeadLetteringConsumer(Consumer):
    """Celery's consumer, recording and rejecting every message no task can run."""

    connection_errors: tuple[type[BaseException], ...]  # set by Celery's __init__

    def create_task_handler(self, promise: Any = promise) -> Callable[[Message], Any]:
        handle = super().create_task_handler(promise)

        def on_task_received(message: Message) -> Any:
            reason = unrunnable(message, self.app.tasks)
            if reason is not None:
                return self._refuse(message, reason)
            return handle(message)

        return on_task_received

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """kombu could not read the message at all (its compression, its transport encoding)."""
        self._refuse(message, f"undecodable message: {describe(exc)}")

    def _refuse(self, message: Message, reason: str) -> None:
        headers = message.headers if isinstance(message.headers, dict) else {}
        name, task_id = headers.get("task"), headers.get("id")
        raw = {
            "headers": message.headers,
            "content_type": message.content_type,
            "content_encoding": message.content_encoding,
            "exchange": (message.delivery_info or {}).get("exchange"),
            "routing_key": (message.delivery_info or {}).get("routing_key"),
            "body": message.body,
        }
        record_dead_letter(
            name if isinstance(name, str) else NO_TASK, None if task_id is None else str(task_id), raw, reason
        )
        message.reject_log_error(logger, self.connection_errors)

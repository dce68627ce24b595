"""Outbox: enqueue in the same transaction as the change, publish after the commit.

``enqueue`` adds an outbox row to the caller's session. When that session's outermost transaction
commits, the rows are published right away (inline in workers, on a background thread in the gateway, so an HTTP answer
never waits for Redis). Whatever that misses — Redis down, the process killed between commit and
publish — the ``outbox.relay`` beat job publishes later. Rows are claimed with ``FOR UPDATE SKIP
LOCKED``, so two relays never publish the same row.

A savepoint (``session.begin_nested()``) is no commit: its release keeps what it enqueued for the
outer transaction's commit, and its rollback forgets only what it enqueued.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import structlog
from celery import current_app
from celery.canvas import Signature
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Row, event, func, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.util import identity_key

from config.settings import get_settings
from models.db import db_now, session_scope, without_flush_wait
from models.outbox import Outbox
from tasks.machinery.policy import describe
from tasks.machinery.request_id import HEADER, stamp

log = structlog.get_logger(__name__)

_PENDING = "obmen_outbox_pending"
_PENDING_IDS = "obmen_outbox_pending_ids"
_STAMPED = "obmen_outbox_stamped"
_TO_STAMP = "obmen_outbox_to_stamp"
_SAVEPOINTS = "obmen_outbox_savepoints"
_TRACKED = (_PENDING, _PENDING_IDS, _STAMPED, _TO_STAMP)
DispatchMode = Literal["inline", "background", "off"]

# Step task name -> the register its ``{"id": …}`` names (``steps.step`` fills it): enqueueing a step
# stamps the row's ``next_step_at`` with the message's due time.
STEP_REGISTERS: dict[str, type[Any]] = {}
# Steps declared ``batch``: the relay publishes their rows due together as one message of ``ids``.
BATCHED_STEPS: set[str] = set()
# Ids in one batched message: one commit then serves 50 rows, as one Bitrix24 ``batch`` call does.
BATCH_MAX = 50
# Rows due this close together go in one message, published with the latest one's countdown.
BATCH_WINDOW_S = 1.0
# The headers of a batched message: the request id of each of its rows, in the order of ``ids``, and
# the task id each would have been published under alone (its signature's own, else the outbox
# row's), which a step telling its own delivery from a copy compares (the SEP poll's token).
REQUEST_IDS_HEADER = "obmen_request_ids"
TASK_IDS_HEADER = "obmen_task_ids"


def enqueue(
    session: Session,
    task: str | Signature,
    kwargs: dict[str, Any] | None = None,
    *,
    delay_s: float = 0,
    not_before: datetime | None = None,
    business_key: str | None = None,
) -> Outbox:
    """Write an outbox row for ``task`` (a task name with kwargs, or a whole canvas).

    The message is due ``delay_s`` from the database clock, or at ``not_before``. Delays within the
    relay horizon become countdowns; longer ones stay rows until they come near, so the broker never
    holds a long wait. A step enqueued for a row stamps the row's ``next_step_at`` with that time.
    A signature that names its own ``task_id`` is published under it (a token the caller keeps
    before the row is written), else under :func:`task_id_for` the row's id. Asking the clock here
    flushes nothing: the caller's changes and this row go in one flush, when the caller's comes.
    """
    if isinstance(task, str):
        payload = stamp(dict(current_app.signature(task, kwargs=kwargs or {})))
        name = task
    else:
        if kwargs:
            raise TypeError("pass kwargs inside the signature, not beside it")
        payload = stamp(dict(task))
        name = _first_task_name(payload)
    row = Outbox(task_name=name, kwargs=payload, business_key=business_key)
    if not_before is not None:
        row.not_before = not_before
    elif delay_s > 0:
        row.not_before = _now(session) + timedelta(seconds=delay_s)
    session.add(row)
    if not _beyond_horizon(session, row.not_before):
        # Published right after the commit; a row due later is the beat relay's (as it comes near),
        # and publishing it now would cost a transaction that claims nothing.
        session.info.setdefault(_PENDING, []).append(row)
    if payload.get("task") == name:
        _stamp(session, name, [payload.get("kwargs") or {}], row.not_before)
    return row


def _beyond_horizon(session: Session, due: datetime | None) -> bool:
    """Whether a row due at ``due`` is too far off for the relay to publish it now."""
    if due is None:
        return False
    return due > _now(session) + timedelta(seconds=get_settings().outbox_horizon_s)


def _now(session: Session) -> datetime:
    """The database clock, without flushing the session first: a clock needs no pending write."""
    with session.no_autoflush:
        return db_now(session)


def _stamp(
    session: Session,
    task: str,
    kwargs_list: Sequence[dict[str, Any]],
    due: datetime | None,
    *,
    written: bool = False,
) -> None:
    """Set ``next_step_at`` of the rows a step is enqueued for (``due`` None: the transaction's now),
    or only note them when the caller ``written`` it already."""
    model = STEP_REGISTERS.get(task)
    if model is None:
        return
    ids = [k["id"] for k in kwargs_list if isinstance(k.get("id"), int)]
    for row_id in ids:
        loaded = session.identity_map.get(identity_key(model, row_id))
        if loaded is not None:
            loaded.next_step_at = due if due is not None else func.now()
        elif not written:
            # Not loaded here (written by a Core INSERT, say): one UPDATE per register at the commit
            # serves every row the transaction enqueued, instead of one round trip each.
            session.info.setdefault(_TO_STAMP, []).append((model, row_id, due))
        # A dict, not a set: insertion order lets a savepoint's rollback cut off what it stamped.
        session.info.setdefault(_STAMPED, {})[(model, row_id)] = None


@event.listens_for(Session, "before_commit")
def _stamp_at_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint's release: its stamps wait for the outermost commit
    groups: dict[tuple[type[Any], datetime | None], list[int]] = {}
    for model, row_id, due in session.info.pop(_TO_STAMP, ()):
        groups.setdefault((model, due), []).append(row_id)
    for (model, due), ids in groups.items():
        session.execute(
            update(model)
            .where(model.id.in_(ids))
            .values(next_step_at=due if due is not None else func.now())
            .execution_options(synchronize_session=False)
        )


def stamped(session: Session, model: type[Any], row_id: int) -> bool:
    """Whether this transaction enqueued a step for the row (and so set its ``next_step_at``)."""
    return (model, row_id) in session.info.get(_STAMPED, ())


def enqueue_many(
    session: Session,
    task: str,
    kwargs_list: Sequence[dict[str, Any]],
    *,
    business_keys: Sequence[str | None] | None = None,
    inserted_due: bool = False,
) -> list[int]:
    """``enqueue`` for many rows of one task in a single batched INSERT (a sweep firing thousands).

    ``inserted_due``: the caller inserted the rows with ``next_step_at = now()`` itself, so their
    stamp costs no UPDATE at the commit.
    """
    if not kwargs_list:
        return []
    keys = list(business_keys) if business_keys is not None else [None] * len(kwargs_list)
    if len(keys) != len(kwargs_list):
        raise ValueError("one business key per kwargs, or none at all")
    template = stamp(dict(current_app.signature(task)))
    rows = [
        {"task_name": task, "kwargs": {**template, "kwargs": kwargs}, "business_key": key}
        for kwargs, key in zip(kwargs_list, keys, strict=True)
    ]
    ids = list(session.scalars(insert(Outbox).returning(Outbox.id), rows))
    session.info.setdefault(_PENDING_IDS, []).extend(ids)
    _stamp(session, task, kwargs_list, None, written=inserted_due)
    return ids


def task_id_for(row_id: int) -> str:
    """The Celery task id the outbox publishes row ``row_id`` under, unless its signature names one."""
    return f"outbox-{row_id}"


def _first_task_name(payload: dict[str, Any]) -> str:
    if payload.get("task") == "celery.chain":
        return str(payload["kwargs"]["tasks"][0]["task"])
    return str(payload.get("task"))


class _Dispatcher:
    """Publishes the rows of a just-committed transaction.

    In ``background`` mode (the gateway) one publisher thread drains the ids of every request's
    commit and relays them in batches: one transaction and one broker connection for many rows,
    instead of a second transaction per HTTP request.
    """

    BATCH = 200
    # How long the first row waits for others: a batched step's message then serves the requests of
    # this window (at 300 payments a second, ≈ 15 in one), at the cost of this much posting delay.
    GATHER_S = 0.05

    def __init__(self) -> None:
        self.mode: DispatchMode = "inline"
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, ids: list[int]) -> None:
        if self.mode == "off" or not ids:
            return
        if self.mode == "inline":
            self._publish(ids)
            return
        for row_id in ids:
            self._queue.put(row_id)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="outbox-publisher", daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Let the commits of concurrent requests gather: one relay then serves them all.
            deadline = time.monotonic() + self.GATHER_S
            while len(batch) < self.BATCH and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            self._publish(batch)

    @staticmethod
    def _publish(ids: list[int]) -> None:
        try:
            relay(ids=ids)
        except Exception as exc:  # the beat relay will pick the rows up; never fail the caller
            log.warning("outbox.dispatch_failed", ids=ids[:20], error=describe(exc))


dispatch = _Dispatcher()


def set_dispatch_mode(mode: DispatchMode) -> None:
    dispatch.mode = mode


@event.listens_for(Session, "after_transaction_create")
def _after_begin(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        # The pending lists only grow: their lengths now are what this savepoint's rollback keeps.
        marks = tuple(len(session.info.get(key, ())) for key in _TRACKED)
        session.info.setdefault(_SAVEPOINTS, {})[transaction] = marks


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # SQLAlchemy reports a savepoint's release as a commit; only the outermost one publishes.
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        session.info.get(_SAVEPOINTS, {}).pop(savepoint, None)
        return
    session.info.pop(_SAVEPOINTS, None)
    session.info.pop(_STAMPED, None)
    ids = [row.id for row in session.info.pop(_PENDING, ())] + session.info.pop(_PENDING_IDS, [])
    if ids:
        dispatch(ids)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # A failed flush rolls back an inner marker transaction: what it undid is up to the savepoint
    # (or the outermost transaction) it belongs to.
    boundary = previous_transaction
    while not boundary.nested and boundary.parent is not None:
        boundary = boundary.parent
    if not boundary.nested:
        for key in (_SAVEPOINTS, *_TRACKED):
            session.info.pop(key, None)
        return
    savepoints = session.info.get(_SAVEPOINTS, {})
    marks = savepoints.pop(boundary, None) if boundary is previous_transaction else savepoints.get(boundary)
    if marks is None:
        return
    for key, mark in zip(_TRACKED, marks, strict=True):
        tracked = session.info.get(key)
        if isinstance(tracked, dict):
            session.info[key] = dict.fromkeys(list(tracked)[:mark])
        elif tracked is not None:
            del tracked[mark:]


def relay(ids: Sequence[int] | None = None, limit: int | None = None) -> int:
    """Publish due outbox rows; returns how many were published.

    One statement claims the rows (``UPDATE … SET published_at = now() WHERE id IN (SELECT … FOR
    UPDATE SKIP LOCKED) RETURNING …``), so two relays never take the same row and a relay costs one
    round trip besides its commit. Rows whose publishing fails are released again before the commit.
    If the process dies after publishing and before the commit, the rows are published again:
    consumers are idempotent.
    """
    settings = get_settings()
    limit = limit or settings.outbox_relay_batch
    with session_scope() as session:
        # SQLite (the embedded demo) keeps whole seconds in CURRENT_TIMESTAMP: use the process clock.
        now: Any = db_now(session) if session.get_bind().dialect.name == "sqlite" else func.now()
        due = (
            select(Outbox.id)
            .where(Outbox.published_at.is_(None))
            .where(Outbox.not_before <= now + timedelta(seconds=settings.outbox_horizon_s))
            .order_by(Outbox.not_before, Outbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if ids is not None:
            due = due.where(Outbox.id.in_(list(ids)))
        claim = (
            update(Outbox)
            .where(Outbox.id.in_(due.scalar_subquery()))
            .values(published_at=now)
            .returning(Outbox.id, Outbox.task_name, Outbox.kwargs, Outbox.not_before, Outbox.published_at)
            .execution_options(synchronize_session=False)
        )
        # A lost "published" mark only publishes the rows again: not worth a WAL flush.
        claimed = session.execute(without_flush_wait(claim, session.get_bind().dialect.name)).all()
        if not claimed:
            return 0
        messages = _messages(sorted(claimed, key=lambda r: (r.not_before, r.id)))
        app = obmen_app()
        published = 0
        with app.producer_or_acquire() as producer:
            for position, message in enumerate(messages):
                try:
                    message.publish(producer)
                except SoftTimeLimitExceeded:
                    raise
                except Exception as exc:
                    # The broker is away: release this message's rows and the rest for the next relay run.
                    session.execute(
                        update(Outbox)
                        .where(Outbox.id.in_([r.id for m in messages[position:] for r in m.rows]))
                        .values(
                            published_at=None,
                            publish_attempts=Outbox.publish_attempts + 1,
                            last_error=describe(exc),
                        )
                        .execution_options(synchronize_session=False)
                    )
                    log.warning(
                        "outbox.publish_failed",
                        outbox_id=message.rows[0].id,
                        task=message.rows[0].task_name,
                        error=describe(exc),
                    )
                    return published
                published += len(message.rows)
    return published


@dataclass
class _Message:
    """One message to publish: an outbox row's, or the rows of a batched step due together."""

    rows: list[Row[Any]]

    def publish(self, producer: Any) -> None:
        last = self.rows[-1]
        countdown = max(0.0, (last.not_before - last.published_at).total_seconds())
        first = self.rows[0]
        if len(self.rows) == 1:
            _publish(first.id, first.kwargs, producer, countdown)
            return
        payload = dict(first.kwargs)
        options = payload["options"] = dict(payload.get("options") or {})
        # The message's own id is its first row's outbox id: a row's own task id is that row's alone.
        options.pop("task_id", None)
        headers = options["headers"] = dict(options.get("headers") or {})
        headers.pop(HEADER, None)
        headers[REQUEST_IDS_HEADER] = [_request_id(r.kwargs) for r in self.rows]
        headers[TASK_IDS_HEADER] = [_own_task_id(r) for r in self.rows]
        payload["kwargs"] = {"ids": [r.kwargs["kwargs"]["id"] for r in self.rows]}
        _publish(first.id, payload, producer, countdown)


def _messages(rows: Sequence[Row[Any]]) -> list[_Message]:
    """The claimed rows as messages, in their order: a batched step's rows due within
    :data:`BATCH_WINDOW_S` of each other go as one, up to :data:`BATCH_MAX` ids."""
    messages: list[_Message] = []
    open_batches: dict[str, _Message] = {}
    for row in rows:
        key = _batch_key(row.kwargs)
        if key is None:
            messages.append(_Message([row]))
            continue
        batch = open_batches.get(key)
        if (
            batch is None
            or len(batch.rows) >= BATCH_MAX
            or (row.not_before - batch.rows[0].not_before).total_seconds() > BATCH_WINDOW_S
        ):
            batch = open_batches[key] = _Message([])
            messages.append(batch)
        batch.rows.append(row)
    return messages


def _batch_key(payload: dict[str, Any]) -> str | None:
    """What a batched step's message must share with others to go in one (its options, but not the
    request id nor the task id: each row's goes in the batch's headers); None for a message that
    goes alone."""
    kwargs = payload.get("kwargs")
    if (
        payload.get("task") not in BATCHED_STEPS
        or payload.get("args")
        or not isinstance(kwargs, dict)
        or set(kwargs) != {"id"}
        or not isinstance(kwargs["id"], int)
    ):
        return None
    options = dict(payload.get("options") or {})
    options.pop("task_id", None)
    options["headers"] = {k: v for k, v in (options.get("headers") or {}).items() if k != HEADER}
    return json.dumps([payload["task"], options], sort_keys=True, default=str)


def _own_task_id(row: Row[Any]) -> str:
    """The task id the relay publishes ``row`` under when it goes alone (see :func:`_publish`)."""
    own = (row.kwargs.get("options") or {}).get("task_id")
    return own if isinstance(own, str) else task_id_for(row.id)


def _request_id(payload: dict[str, Any]) -> str | None:
    value = ((payload.get("options") or {}).get("headers") or {}).get(HEADER)
    return value if isinstance(value, str) else None


def obmen_app() -> Any:
    app = cast(Any, current_app)._get_current_object()
    if app.main != "obmen":
        # Celery's fallback app would publish to amqp://localhost, silently, somewhere else.
        raise RuntimeError("the obmen Celery app is not loaded (import workers.app first)")
    return app


def _publish(row_id: int, payload: dict[str, Any], producer: Any, countdown: float) -> None:
    app = obmen_app()
    sig = Signature.from_dict(payload, app=app)
    options: dict[str, Any] = {"producer": producer, "retry": False}
    if countdown:
        options["countdown"] = countdown
    if sig.task == "celery.chain":
        sig.apply_async(**options)
        return
    # send_task needs no local registration; the stable id ties the Flower entry to the row (or to
    # the token its caller chose, a step telling its own delivery).
    task_id = sig.options.pop("task_id", None) or task_id_for(row_id)
    app.send_task(sig.task, args=sig.args, kwargs=sig.kwargs, task_id=task_id, **{**sig.options, **options})


def relay_all(max_batches: int = 20) -> int:
    """Publish until nothing due is left (bounded, so a beat run cannot overrun its period)."""
    total = 0
    batch = get_settings().outbox_relay_batch
    for _ in range(max_batches):
        n = relay()
        total += n
        if n < batch:
            break
    return total

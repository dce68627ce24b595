"""Steps and entries: the two shapes of task, thin adapters over plain functions.

A **step** works on one register row. Its Celery task takes ``{"id": <row id>}``, loads the row,
returns quietly when there is nothing left to do (done, parked, or in a status this step does not
handle), counts the attempt in the row *before* working, runs the plain function inside one
transaction holding the row lock, and on failure applies the one retry policy or parks the row.

An **entry** is a public task other services enqueue by name with business arguments. It validates
them with a pydantic model (a bad message becomes a ``dead_letters`` row, never a crash loop) and
runs a plain function that records the request as a row and enqueues the first step.

Plain functions take ``(session, row)`` or ``(session, args)``; tests call them without Celery.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Generic, TypeVar, cast

import structlog
from celery import Task, current_app, shared_task
from celery.canvas import Signature
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import RateLimited
from integrations.storable import BIGINT_MAX, refuse_unstorable
from models.db import db_now, engine_for, locked_with_now, session_scope, without_flush_wait
from models.steps import StepMixin
from tasks.machinery.dead_letters import record_dead_letter
from tasks.machinery.outbox import (
    BATCH_MAX,
    BATCHED_STEPS,
    REQUEST_IDS_HEADER,
    STEP_REGISTERS,
    TASK_IDS_HEADER,
    enqueue,
    stamped,
)
from tasks.machinery.policy import countdown, describe, is_retryable

log = structlog.get_logger(__name__)

RowT = TypeVar("RowT", bound=StepMixin)
ArgsT = TypeVar("ArgsT", bound=BaseModel)
ResultT = TypeVar("ResultT")


class Outcome(enum.Enum):
    DONE = "done"
    NOTHING_TO_DO = "nothing_to_do"
    MISSING = "missing"
    PARKED = "parked"
    RETRY = "retry"
    DEFERRED = "deferred"
    REJECTED = "rejected"


# A row id is a bigint: beyond 64 bits it is a bad argument, not a database error.
RowId = Annotated[StrictInt, Field(ge=1, le=BIGINT_MAX)]


class RowRef(BaseModel):
    """The arguments of every step task: the id of its row, nothing else."""

    model_config = ConfigDict(extra="forbid")
    id: RowId


class RowRefs(BaseModel):
    """The arguments of a batched step's message: the ids of its rows (the outbox relay groups them)."""

    model_config = ConfigDict(extra="forbid")
    ids: list[RowId] = Field(min_length=1, max_length=BATCH_MAX)


# ``prefetch(session, rows)``: a context manager whose value the plain function gets as ``prefetched``.
Prefetch = Callable[[Session, Sequence[Any]], AbstractContextManager[Any]]


@dataclass(frozen=True)
class StepSpec(Generic[RowT]):
    task_name: str
    model: type[RowT]
    statuses: frozenset[str]
    # The sweeper re-drives a row left this long in one of ``statuses`` (a lost message, a crash);
    # None means OBMEN_STALE_AFTER_S.
    stale_after_s: int | None
    fn: Callable[..., None]
    # The plain function wants the delivery's task id (see ``step``).
    takes_task_id: bool = False
    # The queue a row's step goes to, when it is the row's own choice (the canaries); None: the route.
    queue_of: Callable[[Any], str] | None = None
    # Columns counted up with the attempt, in the claim's commit, before the work (see ``step``).
    claim_counts: tuple[str, ...] = ()
    # Messages may carry up to BATCH_MAX ids, run in one claim and one work transaction (see ``step``).
    batch: bool = False
    # What the rows of one work transaction share, set up once for them (see ``step``).
    prefetch: Prefetch | None = None
    # A batch may run its rows without a savepoint each, and again with them if one fails (see ``step``).
    rerun: bool = False
    # The plain function takes a list of rows, a ``rerun`` batch's all at once (see ``step``).
    set_wise: bool = False

    def signature(self, row: Any) -> Signature:
        """The step's message for ``row``, as the sweeper and a re-drive enqueue it."""
        options = {"queue": self.queue_of(row)} if self.queue_of is not None else {}
        return current_app.signature(self.task_name, kwargs={"id": row.id}, **options)


STEPS: dict[str, StepSpec[Any]] = {}


def steps_for(model: type[Any], status: str) -> list[StepSpec[Any]]:
    return [spec for spec in STEPS.values() if spec.model is model and status in spec.statuses]


def _arguments(task: Task, model: type[ArgsT], args: tuple[Any, ...], kwargs: dict[str, Any]) -> ArgsT | None:
    """The task's keyword arguments validated by ``model``; None, and a dead letter, when they are bad."""
    try:
        if args:
            raise TypeError(f"{task.name} takes keyword arguments only, got {len(args)} positional")
        parsed = model.model_validate(kwargs)
        refuse_unstorable(kwargs)
    except (TypeError, ValueError) as exc:  # a pydantic ValidationError is a ValueError
        record_dead_letter(task.name, task.request.id, {"args": list(args), "kwargs": kwargs}, describe(exc))
        return None
    return parsed


def run_step(spec: StepSpec[Any], row_id: int, task: Task | None = None) -> Outcome:
    """Claim, work, and on failure retry or park. ``task`` is None when called without Celery."""
    structlog.contextvars.bind_contextvars(register=spec.model.__tablename__, row_id=row_id)

    # 1. Count the attempt in its own commit, so a worker killed mid-step still used one up.
    attempts, refused = _claim_rows(spec, [row_id], task)
    if row_id not in attempts:
        return next(iter(refused))
    attempt = attempts[row_id]

    # 2. Work under the row lock: a duplicate delivery waits here, then finds nothing to do.
    try:
        with session_scope() as session:
            rows = _locked_current(session, spec, [row_id])
            if not rows:
                return Outcome.NOTHING_TO_DO
            with _prefetched(spec, session, rows) as prefetched:
                _work(session, spec, rows, task.request.id if task is not None else None, prefetched)
    except Exception as exc:
        return _failed(spec, row_id, attempt, exc, task)
    log.info("step.done", step=spec.task_name, attempt=attempt)
    return Outcome.DONE


def run_steps(spec: StepSpec[Any], row_ids: Sequence[int], task: Task | None = None) -> Counter[Outcome]:
    """``run_step`` for up to :data:`BATCH_MAX` rows of one step: one claim and one work commit for all.

    The guarantees are one row's: each attempt counted before the work, each row's work in its own
    savepoint (a row that fails undoes only its own work), and each failure settled as ``run_step``
    settles it. A ``rerun`` step's rows first work without savepoints, their writes in one flush; when
    one fails, all is rolled back and the batch works again, a savepoint a row. The step's
    ``prefetch`` runs once for the rows to work, before their work; when it fails, every one of them
    fails with its error. Only a retry differs: the message serves other rows too, so a row to retry
    gets a message of its own through the outbox, due after the retry policy's countdown. Rows are
    locked in id order, so two batches never deadlock.
    """
    model = spec.model
    structlog.contextvars.bind_contextvars(register=model.__tablename__)
    structlog.contextvars.unbind_contextvars("row_id")
    attempts, outcomes = _claim_rows(spec, row_ids, task)

    request_ids = _request_ids(task, row_ids)
    task_ids = _task_ids(task, row_ids) if spec.takes_task_id else {}
    try:
        worked, failures = _work_batch(spec, list(attempts), task_ids, request_ids, savepoints=not spec.rerun)
    except _RunAgain as again:
        log.info("step.batch_again", step=spec.task_name, error=describe(again.__cause__ or again))
        worked, failures = _work_batch(spec, list(attempts), task_ids, request_ids, savepoints=True)
    done = [row_id for row_id in worked if row_id not in failures]
    outcomes[Outcome.NOTHING_TO_DO] += len(attempts) - len(worked)
    outcomes[Outcome.DONE] += len(done)
    if done:
        log.info("step.done", step=spec.task_name, rows=done)
    if failures:
        outcomes.update(_settle_batch(spec, failures, attempts, task))
    return +outcomes  # the outcomes that happened, none counted zero


class _RunAgain(Exception):
    """A row of a batch worked without savepoints failed: the batch runs again, a savepoint a row."""


def _work_batch(
    spec: StepSpec[Any],
    ids: list[int],
    task_ids: dict[int, str | None],
    request_ids: dict[int, dict[str, str]],
    *,
    savepoints: bool,
) -> tuple[list[int], dict[int, Exception]]:
    """The work transaction of a batch's claimed rows: the rows worked, and the failed ones' errors.

    With ``savepoints`` each row works in its own; without (a ``rerun`` step's first try) the rows'
    writes go in one flush at the end, and the first failure raises :class:`_RunAgain`, rolling back all.
    """
    failures: dict[int, Exception] = {}
    worked: list[int] = []
    try:
        with session_scope() as session:
            rows = _locked_current(session, spec, ids)
            worked = [row.id for row in rows]
            with _prefetched(spec, session, rows) as prefetched:
                # A set-wise step's first try is one call for all the rows; otherwise a call a row.
                together = [rows] if spec.set_wise and not savepoints else [[row] for row in rows]
                for some in together:
                    with _bound(some, request_ids):
                        try:
                            with session.begin_nested() if savepoints else nullcontext():
                                _work(session, spec, some, task_ids.get(some[0].id), prefetched)
                        except Exception as exc:
                            if not savepoints:
                                raise _RunAgain from exc
                            failures[some[0].id] = exc
                if not savepoints:
                    try:
                        session.flush()  # a row's writes fail here, where the batch can run again
                    except Exception as exc:
                        raise _RunAgain from exc
    except _RunAgain:
        raise
    except Exception as exc:  # the commit failed: no row's work was kept
        failures = {row_id: failures.get(row_id, exc) for row_id in worked}
    return worked, failures


def _locked_current(session: Session, spec: StepSpec[Any], ids: list[int]) -> list[Any]:
    """The rows the step may still work on, locked in id order and read afresh (a duplicate delivery
    waits here, then finds nothing to do), with the database clock in the same round trip."""
    model = spec.model
    current = (
        select(model)
        .where(model.id.in_(ids))
        .order_by(model.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return [r for r in locked_with_now(session, current) if not r.is_parked and r.status in spec.statuses]


def _bound(rows: list[Any], request_ids: dict[int, dict[str, str]]) -> AbstractContextManager[Any]:
    """The log context of a call: one row's id and request id, or a set-wise call's row ids."""
    if len(rows) == 1:
        return structlog.contextvars.bound_contextvars(row_id=rows[0].id, **request_ids.get(rows[0].id, {}))
    return structlog.contextvars.bound_contextvars(rows=[row.id for row in rows])


def _claim_rows(
    spec: StepSpec[Any], row_ids: Sequence[int], task: Task | None
) -> tuple[dict[int, int], Counter[Outcome]]:
    """Count an attempt on each row its step may work on, committed before the work: the claimed
    rows' attempt numbers, and why the others were not claimed.

    One statement does it for rows that are plainly claimable (the usual case); the rows it leaves
    are looked at one by one under their locks, where a row past its attempts is parked and the
    reason for each refusal is told. Only a crash of Postgres itself could lose a claim's commit,
    which costs one uncounted attempt: the commit does not wait for its WAL flush.
    """
    ids = sorted(set(row_ids))
    try:
        attempts = _claim_claimable(spec, ids)
        refused: Counter[Outcome] = Counter()
        left = [row_id for row_id in ids if row_id not in attempts]
        if left:
            with session_scope(durable=False) as session:
                model = spec.model
                locked = select(model).where(model.id.in_(left)).order_by(model.id).with_for_update()
                rows = session.scalars(locked).all()
                if len(rows) < len(left):
                    log.warning(
                        "step.row_missing", step=spec.task_name, rows=sorted(set(left) - {r.id for r in rows})
                    )
                    refused[Outcome.MISSING] += len(left) - len(rows)
                for row in rows:
                    outcome = _claim(session, spec, row)
                    if outcome is None:
                        attempts[row.id] = row.attempts
                    else:
                        refused[outcome] += 1
    except Exception as exc:  # the claim itself failed (a dropped connection): nothing was counted
        raise _claim_failed(spec, exc, task) from exc
    return attempts, refused


def _claim_claimable(spec: StepSpec[Any], ids: list[int]) -> dict[int, int]:
    """The one-statement claim: an ``UPDATE … RETURNING`` of the rows in the step's statuses, not
    parked and with attempts left, locked in id order (two batches never deadlock), in autocommit."""
    engine = engine_for()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        claimed = connection.execute(
            _claim_statement(spec.task_name, engine.dialect.name),
            {"ids": ids, "statuses": sorted(spec.statuses), "max_attempts": get_settings().max_attempts},
        )
        return {row.id: row.attempts for row in claimed}


@functools.cache
def _claim_statement(step_name: str, dialect: str) -> Any:
    """Built once a step and database: its compiled form is cached, a claim only binds its values."""
    spec = STEPS[step_name]
    table = spec.model.__table__
    # The conditions go with the ids, in the locking scan: in the UPDATE's own WHERE they gave the
    # planner a second way in, the status index, and with a million payments of history analysed
    # this statement became the server's busiest, a payment's Postgres CPU 0.8 → 2.9 ms
    # (`bench/payments.py --prefill`). Postgres checks them again on a row's latest version after a
    # lock wait.
    locked = (
        select(table.c.id)
        .where(
            table.c.id.in_(bindparam("ids", expanding=True)),
            table.c.parked_at.is_(None),
            table.c.status.in_(bindparam("statuses", expanding=True)),
            table.c.attempts < bindparam("max_attempts"),
        )
        .order_by(table.c.id)
        .with_for_update()
        .subquery("locked")
    )
    counted = {name: table.c[name] + 1 for name in ("attempts", *spec.claim_counts)}
    claim = (
        update(table)
        .where(table.c.id == locked.c.id)
        .values(updated_at=func.now(), **counted)
        .returning(table.c.id, table.c.attempts)
    )
    return without_flush_wait(claim, dialect)


def _claim(session: Session, spec: StepSpec[Any], row: Any) -> Outcome | None:
    """Count the attempt on a locked row before its work: None when claimed, else why not."""
    if row.is_parked or row.status not in spec.statuses:
        return Outcome.NOTHING_TO_DO
    if row.attempts >= get_settings().max_attempts:
        row.park(
            f"gave up after {row.attempts} attempts; last error: {row.last_error or 'worker lost mid-step'}",
            db_now(session),
        )
        log.error(
            "step.parked", step=spec.task_name, row_id=row.id, attempts=row.attempts, error=row.last_error
        )
        return Outcome.PARKED
    row.attempts += 1
    for name in spec.claim_counts:
        setattr(row, name, getattr(row, name) + 1)
    return None


def _claim_failed(spec: StepSpec[Any], exc: Exception, task: Task | None) -> Exception:
    """What to raise when the claim itself failed (a dropped connection): nothing was counted."""
    log.warning("step.claim_failed", step=spec.task_name, error=describe(exc))
    if task is None:
        return exc
    return task.retry(countdown=countdown(1, get_settings()), exc=exc, max_retries=None)


def _prefetched(spec: StepSpec[Any], session: Session, rows: Sequence[Any]) -> AbstractContextManager[Any]:
    return spec.prefetch(session, rows) if spec.prefetch is not None else nullcontext()


def _call(
    spec: StepSpec[Any], session: Session, rows: list[Any], task_id: str | None, prefetched: Any
) -> None:
    """The plain function on ``rows`` (a set-wise one's list, else the one row) with its keywords."""
    keywords: dict[str, Any] = {}
    if spec.takes_task_id:
        keywords["task_id"] = task_id
    if spec.prefetch is not None:
        keywords["prefetched"] = prefetched
    spec.fn(session, rows if spec.set_wise else rows[0], **keywords)


def _work(
    session: Session, spec: StepSpec[Any], rows: list[Any], task_id: str | None, prefetched: Any
) -> None:
    """The plain function on claimed rows, under their locks; a success gives each its attempts back.

    ``task_id``: the rows' delivery (see ``step``), None without Celery.
    """
    _call(spec, session, rows, task_id, prefetched)
    for row in rows:
        row.attempts = 0
        due = row.next_step_at
        if due is not None and not stamped(session, spec.model, row.id) and due <= db_now(session):
            # This delivery was the one due (or later): it is consumed. A copy that came early
            # leaves the schedule it found (a SEP poll not yet due). A value, not a SQL expression:
            # a batch's rows then go in one UPDATE.
            row.next_step_at = None


def _carried(task: Task | None, header: str, row_ids: Sequence[int]) -> dict[int, Any]:
    """Each row's value in a header of a batched message (a list in the order of its ``ids``)."""
    carried = getattr(task.request, header, None) if task is not None else None
    if not isinstance(carried, list) or len(carried) != len(row_ids):
        return {}
    return dict(zip(row_ids, carried, strict=True))


def _request_ids(task: Task | None, row_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """Each row's request id from a batched message's header, to bind while the row works."""
    carried = _carried(task, REQUEST_IDS_HEADER, row_ids)
    return {row_id: {"request_id": value} for row_id, value in carried.items() if isinstance(value, str)}


def _task_ids(task: Task | None, row_ids: Sequence[int]) -> dict[int, str | None]:
    """Each row's delivery: the task id its message would have had alone, which a batched message
    carries for each of its rows; else (a message of ``ids`` from elsewhere, a row's own message)
    the message's own. None of them without Celery."""
    if task is None:
        return {}
    carried = _carried(task, TASK_IDS_HEADER, row_ids)
    own = task.request.id
    return {row_id: carried[row_id] if isinstance(carried.get(row_id), str) else own for row_id in row_ids}


def _settle(
    session: Session, spec: StepSpec[Any], row: Any, attempt: int, exc: Exception, *, requeue: bool
) -> tuple[Outcome, float]:
    """What becomes of a locked row whose work raised ``exc``, and after how many seconds it comes back.

    A throttled service says nothing about the row: the attempt is given back and the step comes back
    through the outbox when the service has room, never by holding a worker. Otherwise the one retry
    policy: park when the error is permanent or the attempts are spent, else a countdown — through
    the outbox when ``requeue`` (a batch's message serves other rows), else Celery retries the message.
    """
    table = spec.model.__tablename__
    if isinstance(exc, RateLimited):
        row.attempts = max(0, row.attempts - 1)
        enqueue(
            session,
            spec.task_name,
            {"id": row.id},
            delay_s=exc.retry_after_s,
            business_key=f"deferred:{table}:{row.id}",
        )
        log.info(
            "step.deferred",
            step=spec.task_name,
            row_id=row.id,
            retry_after_s=round(exc.retry_after_s, 1),
            reason=str(exc),
        )
        return Outcome.DEFERRED, exc.retry_after_s
    error = describe(exc)
    if not is_retryable(exc) or attempt >= get_settings().max_attempts:
        row.park(error, db_now(session))
        log.error("step.parked", step=spec.task_name, row_id=row.id, attempt=attempt, error=error)
        return Outcome.PARKED, 0.0
    delay = countdown(attempt)
    row.record_error(error)
    if requeue:
        enqueue(
            session,
            spec.task_name,
            {"id": row.id},
            delay_s=delay,
            business_key=f"retry:{table}:{row.id}:{attempt}",
        )
    else:
        row.next_step_at = db_now(session) + timedelta(seconds=delay)
    log.warning(
        "step.retry",
        step=spec.task_name,
        row_id=row.id,
        attempt=attempt,
        countdown=round(delay, 1),
        error=error,
    )
    return Outcome.RETRY, delay


def _failed(spec: StepSpec[Any], row_id: int, attempt: int, exc: Exception, task: Task | None) -> Outcome:
    """Settle one row's failure; a retry is this message's, through Celery."""
    outcome, delay = Outcome.RETRY, countdown(attempt)
    try:
        with session_scope() as session:
            row = session.get(spec.model, row_id, with_for_update=True)
            if row is not None:
                outcome, delay = _settle(session, spec, row, attempt, exc, requeue=False)
    except Exception as record_exc:  # the database may be the thing that failed
        log.warning("step.error_not_recorded", step=spec.task_name, error=describe(record_exc))
        if not isinstance(exc, RateLimited) and (
            not is_retryable(exc) or attempt >= get_settings().max_attempts
        ):
            return Outcome.PARKED  # for the next claim to record: the attempts are spent or it cannot work
    if outcome is not Outcome.RETRY or task is None:
        return outcome
    raise task.retry(countdown=delay, exc=exc, max_retries=None)


def _settle_batch(
    spec: StepSpec[Any], failures: dict[int, Exception], attempts: dict[int, int], task: Task | None
) -> Counter[Outcome]:
    """Settle a batch's failed rows in one transaction; each retry is a message of its own."""
    model = spec.model
    settled: Counter[Outcome] = Counter()
    try:
        with session_scope() as session:
            locked = select(model).where(model.id.in_(list(failures))).order_by(model.id).with_for_update()
            for row in session.scalars(locked):
                outcome, _ = _settle(session, spec, row, attempts[row.id], failures[row.id], requeue=True)
                settled[outcome] += 1
    except Exception as exc:  # the database is away: the whole message comes back (done rows stay done)
        log.warning(
            "step.error_not_recorded", step=spec.task_name, rows=sorted(failures), error=describe(exc)
        )
        if task is None:
            raise
        raise task.retry(countdown=countdown(1), exc=exc, max_retries=None) from exc
    return settled


def _task(name: str, fn: Callable[..., Any], run: Callable[..., Any]) -> Task:
    """The Celery task of a step or an entry: late ack, requeued when its worker dies, retried by us.

    Its class carries the plain function's module, name and docstring, so tracebacks, Flower and
    ``celery inspect`` point at the step, not at this module.
    """
    options: dict[str, Any] = {
        "name": name,
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "max_retries": None,
        "__doc__": fn.__doc__,
        "__module__": fn.__module__,
        "__qualname__": fn.__qualname__,
    }
    return cast(Task, shared_task(**options)(run))


class Step(Generic[RowT]):
    """A declared step: its spec (what it works on), its plain function and its Celery task."""

    def __init__(self, spec: StepSpec[RowT], task: Task) -> None:
        self.spec = spec
        self.task = task

    @property
    def name(self) -> str:
        return self.spec.task_name

    def plain(self, session: Any, row: RowT) -> None:
        """The plain function, as a test or another step calls it (no claim, no attempt counted)."""
        with _prefetched(self.spec, session, [row]) as prefetched:
            _call(self.spec, session, [row], None, prefetched)

    def run(self, row_id: int) -> Outcome:
        """Claim, work, retry or park one row in this process, as the worker would."""
        return run_step(self.spec, row_id)

    def run_batch(self, row_ids: Sequence[int]) -> Counter[Outcome]:
        """A batched message's work in this process, as the worker would do it."""
        return run_steps(self.spec, row_ids)


def step(
    name: str,
    *,
    model: type[RowT],
    statuses: set[str] | frozenset[str],
    stale_after_s: int | None = None,
    queue_of: Callable[[RowT], str] | None = None,
    claim_counts: tuple[str, ...] = (),
    batch: bool = False,
    prefetch: Prefetch | None = None,
    rerun: bool = False,
    set_wise: bool = False,
) -> Callable[[Callable[..., None]], Step[RowT]]:
    """Declare the step ``name`` working on ``model`` rows in ``statuses``.

    The plain function takes ``(session, row)``. One that must tell its own delivery from a copy
    (the SEP poll) also declares a keyword-only ``task_id``: the row's delivery, the task id its
    message was published under (in a batched message, the one the relay carries for the row in its
    ``obmen_task_ids`` header: the row's own, as if it had gone alone), or None when it runs
    without Celery; not with ``set_wise``, whose call works many rows. ``queue_of`` names the
    queue of a row whose step does not follow the task's route (the canary of each queue).
    ``claim_counts`` names integer columns counted up with the attempt in the claim's own commit,
    for what must be counted even when the worker dies mid-step (the SEP sends). ``batch`` lets
    the outbox relay group the step's messages, up to :data:`BATCH_MAX` ids in one
    (``run_steps``): for steps whose work is short, or that bound it themselves (the SEP poll),
    because a batch holds its rows' locks until its last row is done.

    ``prefetch(session, rows)`` gives what the rows of one work transaction share, loaded or opened
    once for them instead of once a row: a context manager entered in the work transaction before
    the rows' savepoints (a batch's rows, or the one row of ``run_step`` and ``Step.plain``) and left
    after the last; the plain function gets its value as the keyword-only ``prefetched``. The mail
    flow loads the assets and employees a batch of letters names in one query each, and opens one
    SMTP connection for a batch of letters. It must not change rows: a row's work is its own.

    ``rerun`` says that the work (and the prefetch) has no effect outside the database, so a batch
    may be run again from the start: its rows then work without a savepoint each, their writes going
    in one flush (an UPDATE for all the rows, an INSERT for all their outbox rows) instead of one a
    row; the first failure rolls the batch back and runs it again the usual way, a savepoint a row.
    A step that sends anything (SMTP, HTTP) must not declare it.

    ``set_wise`` (with ``rerun``): the plain function takes ``(session, rows)``, a list, and does for
    all of them what it would do for each, with one statement per kind of read or write (the
    payments of a batch: their subscribers, balances and open accruals in one query each, their
    released requests in one UPDATE, their deal marks in one INSERT). Its first try gets the whole
    batch; run again, each row alone as ``[row]``, so a failure stays the failing row's.
    """

    def decorate(fn: Callable[..., None]) -> Step[RowT]:
        takes_task_id = _takes_keyword(fn, "task_id")
        if rerun and not batch:
            raise RuntimeError(f"step {name}: ``rerun`` is for batched steps")
        if set_wise and not rerun:
            raise RuntimeError(
                f"step {name}: a set-wise step's batch must be one it may run again (``rerun``)"
            )
        if set_wise and takes_task_id:
            raise RuntimeError(
                f"step {name}: a set-wise call works many rows, each with a delivery of its own"
            )
        if (prefetch is not None) != _takes_keyword(fn, "prefetched"):
            raise RuntimeError(
                f"step {name}: declare ``prefetch`` and a keyword-only ``prefetched`` together"
            )
        spec = StepSpec(
            name,
            model,
            frozenset(statuses),
            stale_after_s,
            fn,
            takes_task_id,
            queue_of,
            claim_counts,
            batch,
            prefetch,
            rerun,
            set_wise,
        )
        if name in STEPS:
            raise RuntimeError(f"step {name} declared twice")
        STEPS[name] = spec
        STEP_REGISTERS[name] = model
        if batch:
            BATCHED_STEPS.add(name)

        def step_task(self: Task, *args: Any, **kwargs: Any) -> str | dict[str, int]:
            if batch and "ids" in kwargs:
                refs = _arguments(self, RowRefs, args, kwargs)
                if refs is None:
                    return Outcome.REJECTED.value
                return {outcome.value: n for outcome, n in run_steps(spec, refs.ids, self).items() if n}
            ref = _arguments(self, RowRef, args, kwargs)
            if ref is None:
                return Outcome.REJECTED.value
            return run_step(spec, ref.id, self).value

        return Step(spec, _task(name, fn, step_task))

    return decorate


def _takes_keyword(fn: Callable[..., Any], name: str) -> bool:
    parameter = inspect.signature(fn).parameters.get(name)
    return parameter is not None and parameter.kind is inspect.Parameter.KEYWORD_ONLY


class Entry(Generic[ArgsT, ResultT]):
    """A declared entry: its argument model, its plain function and its Celery task."""

    def __init__(self, name: str, args: type[ArgsT], fn: Callable[[Any, ArgsT], ResultT], task: Task) -> None:
        self.name = name
        self.args = args
        self.plain = fn
        self.task = task

    def call(self, session: Any, **kwargs: Any) -> ResultT:
        """Validate ``kwargs`` as the worker would and run the plain function in ``session``."""
        return self.plain(session, self.args.model_validate(kwargs))


ENTRIES: dict[str, Entry[Any, Any]] = {}


def entry(
    name: str, *, args: type[ArgsT]
) -> Callable[[Callable[[Any, ArgsT], ResultT]], Entry[ArgsT, ResultT]]:
    """Declare the public task ``name`` whose keyword arguments ``args`` validates."""

    def decorate(fn: Callable[[Any, ArgsT], ResultT]) -> Entry[ArgsT, ResultT]:
        if name in ENTRIES:
            raise RuntimeError(f"entry {name} declared twice")

        def entry_task(self: Task, *pos: Any, **kwargs: Any) -> Any:
            parsed = _arguments(self, args, pos, kwargs)
            if parsed is None:
                return Outcome.REJECTED.value
            attempt = self.request.retries + 1
            try:
                with session_scope() as session:
                    return fn(session, parsed)
            except Exception as exc:
                if not is_retryable(exc) or attempt >= get_settings().max_attempts:
                    record_dead_letter(name, self.request.id, {"kwargs": kwargs}, describe(exc))
                    return Outcome.REJECTED.value
                raise self.retry(countdown=countdown(attempt), exc=exc, max_retries=None) from exc

        declared = ENTRIES[name] = Entry(name, args, fn, _task(name, fn, entry_task))
        return declared

    return decorate

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
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Generic, TypeVar, cast

import structlog
from celery import Task, current_app, shared_task
from celery.canvas import Signature
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import case, func

from config.settings import get_settings
from integrations.errors import RateLimited
from integrations.storable import BIGINT_MAX, refuse_unstorable
from models.db import db_now, session_scope
from models.steps import StepMixin
from tasks.machinery.dead_letters import record_dead_letter
from tasks.machinery.outbox import STEP_REGISTERS, enqueue, stamped
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


class RowRef(BaseModel):
    """The arguments of every step task: the id of its row, nothing else."""

    model_config = ConfigDict(extra="forbid")
    # A row id is a bigint: beyond 64 bits it is a bad argument, not a database error.
    id: Annotated[StrictInt, Field(ge=1, le=BIGINT_MAX)]


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
    # Counted in the claim transaction, with the attempt, before the work (see ``step``).
    on_claim: Callable[[Any, Any], None] | None = None

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
    settings = get_settings()
    structlog.contextvars.bind_contextvars(register=spec.model.__tablename__, row_id=row_id)

    # 1. Count the attempt in its own commit, so a worker killed mid-step still used one up. Only
    # a crash of Postgres itself could lose it, which costs one uncounted attempt: not durable.
    try:
        with session_scope(durable=False) as session:
            row = session.get(spec.model, row_id, with_for_update=True)
            if row is None:
                log.warning("step.row_missing", step=spec.task_name)
                return Outcome.MISSING
            if row.is_parked or row.status not in spec.statuses:
                return Outcome.NOTHING_TO_DO
            if row.attempts >= settings.max_attempts:
                row.park(
                    f"gave up after {row.attempts} attempts; last error: "
                    f"{row.last_error or 'worker lost mid-step'}",
                    db_now(session),
                )
                log.error("step.parked", step=spec.task_name, attempts=row.attempts, error=row.last_error)
                return Outcome.PARKED
            row.attempts += 1
            attempt = row.attempts
            if spec.on_claim is not None:
                spec.on_claim(session, row)
    except Exception as exc:  # the claim itself failed (a dropped connection): nothing was counted
        log.warning("step.claim_failed", step=spec.task_name, error=describe(exc))
        if task is None:
            raise
        raise task.retry(countdown=countdown(1, settings), exc=exc, max_retries=None) from exc

    # 2. Work under the row lock: a duplicate delivery waits here, then finds nothing to do.
    try:
        with session_scope() as session:
            row = session.get(spec.model, row_id, with_for_update=True, populate_existing=True)
            if row is None or row.is_parked or row.status not in spec.statuses:
                return Outcome.NOTHING_TO_DO
            if spec.takes_task_id:
                spec.fn(session, row, task_id=task.request.id if task is not None else None)
            else:
                spec.fn(session, row)
            row.attempts = 0
            if not stamped(session, spec.model, row_id) and row.next_step_at is not None:
                # This delivery was the one due (or later): it is consumed. A copy that came early
                # leaves the schedule it found (a SEP poll not yet due).
                column = spec.model.next_step_at
                row.next_step_at = case((column <= func.now(), None), else_=column)
    except RateLimited as exc:
        return _deferred(spec, row_id, attempt, exc, task)
    except Exception as exc:
        return _failed(spec, row_id, attempt, exc, task)
    log.info("step.done", step=spec.task_name, attempt=attempt)
    return Outcome.DONE


def _deferred(spec: StepSpec[Any], row_id: int, attempt: int, exc: RateLimited, task: Task | None) -> Outcome:
    """The service asked us to slow down: come back later, and give the attempt back.

    Being throttled says nothing about the row, so it must not park it. The step comes back through
    the outbox (a countdown when near, a waiting row when far), never by holding a worker.
    """
    try:
        with session_scope() as session:
            row = session.get(spec.model, row_id, with_for_update=True)
            if row is not None:
                row.attempts = max(0, row.attempts - 1)
                enqueue(
                    session,
                    spec.task_name,
                    {"id": row_id},
                    delay_s=exc.retry_after_s,
                    business_key=f"deferred:{spec.model.__tablename__}:{row_id}",
                )
    except Exception as record_exc:  # the database is away too: fall back to the retry policy
        return _failed(spec, row_id, attempt, record_exc, task)
    log.info("step.deferred", step=spec.task_name, retry_after_s=round(exc.retry_after_s, 1), reason=str(exc))
    return Outcome.DEFERRED


def _failed(spec: StepSpec[Any], row_id: int, attempt: int, exc: Exception, task: Task | None) -> Outcome:
    settings = get_settings()
    error = describe(exc)
    park = not is_retryable(exc) or attempt >= settings.max_attempts
    delay = countdown(attempt, settings)
    try:
        with session_scope() as session:
            row = session.get(spec.model, row_id, with_for_update=True)
            if row is not None:
                if park:
                    row.park(error, db_now(session))
                else:
                    row.record_error(error)
                    row.next_step_at = db_now(session) + timedelta(seconds=delay)
    except Exception as record_exc:  # the database may be the thing that failed
        log.warning("step.error_not_recorded", step=spec.task_name, error=describe(record_exc))
    if park:
        log.error("step.parked", step=spec.task_name, attempt=attempt, error=error)
        return Outcome.PARKED
    log.warning("step.retry", step=spec.task_name, attempt=attempt, countdown=round(delay, 1), error=error)
    if task is None:
        return Outcome.RETRY
    raise task.retry(countdown=delay, exc=exc, max_retries=None)


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
        self.spec.fn(session, row)

    def run(self, row_id: int) -> Outcome:
        """Claim, work, retry or park one row in this process, as the worker would."""
        return run_step(self.spec, row_id)


def step(
    name: str,
    *,
    model: type[RowT],
    statuses: set[str] | frozenset[str],
    stale_after_s: int | None = None,
    queue_of: Callable[[RowT], str] | None = None,
    on_claim: Callable[[Any, RowT], None] | None = None,
) -> Callable[[Callable[..., None]], Step[RowT]]:
    """Declare the step ``name`` working on ``model`` rows in ``statuses``.

    The plain function takes ``(session, row)``. One that must tell its own delivery from a copy
    (the SEP poll) also declares a keyword-only ``task_id``: the delivery's Celery task id, or None
    when it runs without Celery. ``queue_of`` names the queue of a row whose step does not follow
    the task's route (the canary of each queue). ``on_claim(session, row)`` counts what must be
    counted even when the worker dies mid-step (the SEP sends): it runs in the claim's own commit,
    with the attempt.
    """

    def decorate(fn: Callable[..., None]) -> Step[RowT]:
        spec = StepSpec(
            name, model, frozenset(statuses), stale_after_s, fn, _takes_task_id(fn), queue_of, on_claim
        )
        if name in STEPS:
            raise RuntimeError(f"step {name} declared twice")
        STEPS[name] = spec
        STEP_REGISTERS[name] = model

        def step_task(self: Task, *args: Any, **kwargs: Any) -> str:
            ref = _arguments(self, RowRef, args, kwargs)
            if ref is None:
                return Outcome.REJECTED.value
            return run_step(spec, ref.id, self).value

        return Step(spec, _task(name, fn, step_task))

    return decorate


def _takes_task_id(fn: Callable[..., Any]) -> bool:
    parameter = inspect.signature(fn).parameters.get("task_id")
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

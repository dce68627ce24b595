"""The sweeper and re-drive: how work left behind gets going again, and how old logs go.

Celery on Redis can drop a message (a worker killed outright, Redis restarted without its data)
or sit on it (a killed worker's messages stay unacknowledged until the visibility timeout). The
register still holds the row in a non-terminal status, so each sweep re-drives, through the outbox:

* **lost rows** — the row's next step was due at a known time (``next_step_at``: the outbox row's
  due time, a SEP poll's time, a retry's countdown) more than ``OBMEN_LOST_AFTER_S`` ago, and no
  step holds the row (its lock is free). A row is only judged lost while its step's queue is empty
  in the broker and the relay has published everything due: otherwise its message may simply be
  waiting in line, and the row is slow, not lost. One crash then costs the wait plus the grace.
* **stale rows** — left in a step's statuses longer than that step's ``stale_after_s`` with no due
  time ahead: the backstop for rows whose step was not scheduled for them alone.

Steps are idempotent, so a message that was merely slow costs one quiet no-op. Each sweep also
purges the log registers past their retention, in bounded batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from config.celery import queue_for
from config.settings import Settings, get_settings
from models.canary import Canary
from models.db import db_now, session_scope
from models.dead_letters import DeadLetter
from models.exchange_log import ExchangeLog
from models.gauges import Sample, register_gauge
from models.outbox import Outbox
from models.sep import SepExchangeError, SepExchangeHistory
from models.steps import step_model
from tasks.machinery.outbox import enqueue, obmen_app
from tasks.machinery.policy import describe
from tasks.machinery.steps import STEPS, StepSpec, steps_for

log = structlog.get_logger(__name__)

SWEEP_LIMIT = 1000


def sweep(limit: int = SWEEP_LIMIT) -> dict[str, int]:
    """Re-drive lost and stale rows of every step; returns how many per step. Then purge old logs."""
    settings = get_settings()
    redriven: dict[str, int] = {}
    idle = _IdleQueues()
    for spec in STEPS.values():
        with session_scope() as session:
            now = db_now(session)
            lost = _lost(session, spec, now, settings, idle, limit)
            stale = _stale(session, spec, now, settings, limit, exclude=[row.id for row in lost])
            for kind, rows in (("lost", lost), ("stale", stale)):
                for row in rows:
                    # Touch the row so the next sweep gives this re-drive its full time.
                    row.updated_at = now
                    enqueue(
                        session,
                        spec.signature(row),
                        business_key=f"sweep:{spec.model.__tablename__}:{row.id}",
                    )
                if rows:
                    log.warning(
                        f"sweep.{kind}", step=spec.task_name, rows=len(rows), ids=[r.id for r in rows[:20]]
                    )
            if lost or stale:
                redriven[spec.task_name] = len(lost) + len(stale)
    purge()
    return redriven


def _lost(
    session: Session, spec: StepSpec[Any], now: datetime, settings: Settings, idle: _IdleQueues, limit: int
) -> list[Any]:
    """Rows whose step was due more than the grace ago, that no step holds, on a drained queue."""
    model: Any = spec.model
    if _relay_behind(session, spec.task_name, now, settings):
        return []
    rows = session.scalars(
        select(model)
        .where(model.next_step_at < now - timedelta(seconds=settings.lost_after_s))
        .where(model.status.in_(spec.statuses))
        .where(model.parked_at.is_(None))
        .order_by(model.next_step_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    return [row for row in rows if idle(_queue_of(spec, row))]


def _stale(
    session: Session, spec: StepSpec[Any], now: datetime, settings: Settings, limit: int, exclude: list[int]
) -> list[Any]:
    model: Any = spec.model
    stale_after = spec.stale_after_s or settings.stale_after_s
    return list(
        session.scalars(
            select(model)
            .where(model.status.in_(spec.statuses))
            .where(model.id.not_in(exclude))
            .where(model.parked_at.is_(None))
            .where(model.updated_at < now - timedelta(seconds=stale_after))
            # A row waiting for a known time to come is not stale however long it waits.
            .where(or_(model.next_step_at.is_(None), model.next_step_at < now))
            .order_by(model.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def _relay_behind(session: Session, task: str, now: datetime, settings: Settings) -> bool:
    """Whether messages of ``task`` due more than the grace ago still wait in the outbox (Redis away,
    the relay behind): then the rows they carry are not lost, and re-driving them only adds rows."""
    return bool(
        session.scalar(
            select(
                exists()
                .where(Outbox.published_at.is_(None))
                .where(Outbox.not_before < now - timedelta(seconds=settings.lost_after_s))
                .where(Outbox.task_name == task)
            )
        )
    )


def _queue_of(spec: StepSpec[Any], row: Any) -> str:
    return spec.queue_of(row) if spec.queue_of is not None else queue_for(spec.task_name)


class _IdleQueues:
    """Whether a queue holds no waiting message, asked of the broker once per queue and sweep.

    A broker that does not answer holds nothing we could judge by: no queue counts as idle.
    """

    def __init__(self) -> None:
        self._known: dict[str, bool] = {}

    def __call__(self, queue: str) -> bool:
        if queue not in self._known:
            try:
                with obmen_app().connection_for_read() as conn:
                    conn.ensure_connection(max_retries=1, timeout=2)
                    waiting = conn.default_channel.queue_declare(queue=queue, passive=False).message_count
                self._known[queue] = waiting == 0
            except Exception as exc:
                log.warning("sweep.broker_unavailable", queue=queue, error=describe(exc))
                self._known[queue] = False
        return self._known[queue]


@register_gauge(
    "obmen_steps_overdue",
    "Rows whose next step was due more than OBMEN_LOST_AFTER_S ago and has not run (lost or queued behind)",
    ("register", "step"),
)
def _overdue(session: Session) -> Iterable[Sample]:
    grace = timedelta(seconds=get_settings().lost_after_s)
    now = db_now(session)
    for spec in STEPS.values():
        model: Any = spec.model
        count = session.scalar(
            select(func.count())
            .where(model.next_step_at < now - grace)
            .where(model.status.in_(spec.statuses))
            .where(model.parked_at.is_(None))
        )
        yield {"register": model.__tablename__, "step": spec.task_name}, count or 0


# --- retention -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    """A log register, the column its age is read from, and the setting that keeps it."""

    model: type[Any]
    days: Callable[[Settings], int]
    # Rows not to purge whatever their age (an unpublished outbox row is work, not history).
    keep: Callable[[], ColumnElement[bool]] | None = None


RETENTION: tuple[Retention, ...] = (
    Retention(ExchangeLog, lambda s: s.exchange_log_retention_days),
    Retention(DeadLetter, lambda s: s.dead_letters_retention_days),
    Retention(Canary, lambda s: s.canaries_retention_days),
    Retention(SepExchangeHistory, lambda s: s.sep_exchange_history_retention_days),
    Retention(SepExchangeError, lambda s: s.sep_exchange_errors_retention_days),
    Retention(Outbox, lambda s: s.outbox_retention_days, keep=lambda: Outbox.published_at.is_(None)),
)


def purge(max_batches: int = 10) -> dict[str, int]:
    """Delete log rows older than their register's retention, ``OBMEN_PURGE_BATCH`` rows per
    transaction and at most ``max_batches`` per register, so a sweep never holds long locks."""
    settings = get_settings()
    purged: dict[str, int] = {}
    for retention in RETENTION:
        model: Any = retention.model
        total = 0
        for _ in range(max_batches):
            with session_scope() as session:
                cutoff = db_now(session) - timedelta(days=retention.days(settings))
                oldest = select(model.id).where(model.created_at < cutoff)
                if retention.keep is not None:
                    oldest = oldest.where(~retention.keep())
                ids = oldest.order_by(model.created_at).limit(settings.purge_batch).scalar_subquery()
                deleted = int(session.execute(delete(model).where(model.id.in_(ids))).rowcount or 0)  # type: ignore[attr-defined]
            total += deleted
            if deleted < settings.purge_batch:
                break
        if total:
            purged[model.__tablename__] = total
            log.info("sweep.purged", register=model.__tablename__, rows=total)
    return purged


# --- re-drive by a person --------------------------------------------------------------------------


@dataclass(frozen=True)
class Redriven:
    register: str
    ids: list[int]
    skipped: list[tuple[int, str]]


class UnknownRegister(LookupError):
    pass


def redrive(register: str, ids: list[int] | None = None) -> Redriven:
    """Un-park rows of ``register`` (all parked ones when ``ids`` is None) and run their step again."""
    model: Any = step_model(register)
    if model is None:
        raise UnknownRegister(f"no step register called {register!r}")
    done: list[int] = []
    skipped: list[tuple[int, str]] = []
    with session_scope() as session:
        query = select(model).where(model.parked_at.is_not(None)).with_for_update()
        if ids is not None:
            query = query.where(model.id.in_(ids))
        rows = session.scalars(query.order_by(model.id)).all()
        for missing in sorted(set(ids or ()) - {row.id for row in rows}):
            skipped.append((missing, "not parked (or no such row)"))
        for row in rows:
            specs = steps_for(model, row.status)
            if not specs:
                skipped.append((row.id, f"no step handles status {row.status!r}"))
                continue
            row.unpark()
            for spec in specs:
                enqueue(session, spec.signature(row), business_key=f"redrive:{register}:{row.id}")
            done.append(row.id)
    log.info("redrive.done", register=register, ids=done, skipped=skipped)
    return Redriven(register, done, skipped)

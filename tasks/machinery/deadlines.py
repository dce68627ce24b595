"""Deadlines as rows: the one sweeper for every wait measured in days.

Days are far beyond what a broker should hold, so a deadline (3 days for a form, 5 working days
for a signature, 10 days for a repeated payment reminder) is a row of its flow's register with
``due_at`` and a ``status``: ``waiting`` → ``due`` (the sweep found it due) → its step's outcome,
or ``cancelled`` (moot before it fired). Every such register is declared once as a
:class:`DeadlineRegister` and swept the same way:

* the sweep (a flow's beat job) claims due ``waiting`` rows with one ``UPDATE … RETURNING`` over rows
  locked with ``SKIP LOCKED`` — two sweeps never take one row — and, in the same transaction, hands
  them to the register's batch entry, :data:`CHUNK` ids to a message, through the outbox;
* rows a register declares ``moot`` (an accrual paid meanwhile) are cancelled by the same sweep;
* the batch entry runs the register's step for its ids as a batch (``run_steps``: attempts, retries,
  parking as for any step); a row whose step must be retried gets a message of its own.

A deadline that fell due while beat was down is simply due when it is back: it fires then, once —
the row leaves ``waiting`` once, and the step acts only on ``due`` rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from models.db import db_now, session_scope
from tasks.machinery.outbox import enqueue_many
from tasks.machinery.steps import STEPS, Entry, entry, run_steps

WAITING = "waiting"
DUE = "due"
CANCELLED = "cancelled"
CHUNK = 50


@dataclass(frozen=True)
class DeadlineRegister:
    """A register of deadlines: its model, the step firing one row, the entry firing a batch."""

    model: Any
    fire: str
    fire_batch: str
    # Waiting rows matching this are cancelled by the sweep instead of fired.
    moot: Callable[[], ColumnElement[bool]] | None = None


class DeadlineRows(BaseModel):
    """The arguments of a batch entry: up to 50 ids of rows the sweep turned ``due``."""

    model_config = ConfigDict(extra="forbid")
    ids: list[StrictInt] = Field(min_length=1, max_length=CHUNK)


def claim_due(session: Session, register: DeadlineRegister, now: datetime, limit: int) -> Counter[str]:
    """Cancel the moot, turn up to ``limit`` due rows ``due`` and enqueue their batches, in the
    caller's transaction. Counts by kind, plus ``cancelled``."""
    model = register.model
    counted: Counter[str] = Counter()
    if register.moot is not None:
        cancelled = session.execute(
            update(model)
            .where(model.status == WAITING, model.due_at <= now, register.moot())
            .values(status=CANCELLED)
            .execution_options(synchronize_session=False)
        )
        counted[CANCELLED] = int(cancelled.rowcount or 0)  # type: ignore[attr-defined]
    claimed = (
        select(model.id)
        .where(model.status == WAITING, model.due_at <= now)
        .order_by(model.due_at, model.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    fired = session.execute(
        update(model)
        .where(model.id.in_(claimed.scalar_subquery()))
        .values(status=DUE, fired_at=now, attempts=0)
        .returning(model.id, model.kind)
        .execution_options(synchronize_session=False)
    ).all()
    ids = sorted(row.id for row in fired)
    chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    enqueue_many(
        session,
        register.fire_batch,
        [{"ids": c} for c in chunks],
        business_keys=[f"{model.__tablename__}:{c[0]}" for c in chunks],
    )
    counted.update(row.kind for row in fired)
    return counted


def sweep(register: DeadlineRegister, batch: int, now: datetime | None = None) -> Counter[str]:
    """Fire every due deadline of ``register``, ``batch`` rows per transaction. ``now`` defaults to
    the database clock."""
    total: Counter[str] = Counter()
    while True:
        with session_scope() as session:
            counted = claim_due(session, register, now or db_now(session), batch)
        total.update(counted)
        if sum(n for kind, n in counted.items() if kind != CANCELLED) < batch:
            return total


def fire_batch(register: DeadlineRegister, ids: list[int]) -> dict[str, int]:
    """Run the register's step for the rows as one batch (``run_steps``: a row to retry gets a
    message of its own)."""
    return {outcome.value: n for outcome, n in run_steps(STEPS[register.fire], ids).items()}


def batch_entry(register: DeadlineRegister) -> Entry[DeadlineRows, dict[str, int]]:
    """Declare the register's batch entry (one message instead of 50)."""

    def fire(session: Session, args: DeadlineRows) -> dict[str, int]:
        return fire_batch(register, args.ids)

    fire.__doc__ = f"Run ``{register.fire}`` for each of up to {CHUNK} deadlines one sweep found due."
    fire.__qualname__ = fire.__name__ = register.fire_batch.replace(".", "_")
    return entry(register.fire_batch, args=DeadlineRows)(fire)

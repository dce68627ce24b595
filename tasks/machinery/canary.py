"""The canary flow: beat starts one per queue, the step completes it, ``/metrics`` reports its age.

One canary per queue family: a queue nobody consumes (its workers stopped, or never started with
``-Q``) shows as a growing ``obmen_canary_age_seconds{queue=…}`` while the other queues stay green.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from celery import shared_task
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.celery import DEFAULT_QUEUE, QUEUE_NAMES
from integrations.errors import PermanentError, TransientError
from models.base import utcnow
from models.canary import Canary
from models.db import db_now, session_scope
from models.gauges import Sample, register_gauge
from tasks.machinery.outbox import enqueue
from tasks.machinery.steps import step

RUN = "ops.canary.run"


def start_canary(
    session: Session, fault: str | None = None, fault_times: int = 0, queue: str = DEFAULT_QUEUE
) -> Canary:
    if queue not in QUEUE_NAMES:
        raise ValueError(f"no queue called {queue!r} (queues: {', '.join(QUEUE_NAMES)})")
    canary = Canary(fault=fault, fault_times=fault_times, queue=queue)
    session.add(canary)
    session.flush()
    enqueue(session, run_canary.spec.signature(canary), business_key=f"canary:{canary.id}")
    return canary


@step(RUN, model=Canary, statuses={"pending"}, stale_after_s=120, queue_of=lambda canary: canary.queue)
def run_canary(session: Session, canary: Canary) -> None:
    """Complete the canary; its drill faults exercise the retry policy, parking and worker loss."""
    if canary.fault == "transient" and canary.attempts <= canary.fault_times:
        raise TransientError(f"drill: transient fault on attempt {canary.attempts} of {canary.fault_times}")
    if canary.fault == "permanent":
        raise PermanentError("drill: permanent fault; clear canaries.fault and re-drive")
    if canary.fault == "hold":
        time.sleep(canary.fault_times)
    now = db_now(session)
    canary.executions += 1
    canary.status = "done"
    canary.completed_at = now
    canary.latency_ms = round((now - canary.created_at).total_seconds() * 1000, 1)


@shared_task(name="ops.canary", ignore_result=True)
def canary_task(**_: Any) -> list[int]:
    """Beat: start a canary on every queue through the outbox."""
    with session_scope() as session:
        return [start_canary(session, queue=queue).id for queue in QUEUE_NAMES]


# Before a queue's first canary has come through, its series has no sample at all: a number (-1 once)
# would read as a fresh canary to a `>` alert; an absent series fires `absent()` instead.
@register_gauge(
    "obmen_canary_age_seconds", "Seconds since the last canary completed the pipeline, per queue", ("queue",)
)
def _canary_age(session: Session) -> Iterable[Sample]:
    for queue in QUEUE_NAMES:
        last = session.scalar(select(func.max(Canary.completed_at)).where(Canary.queue == queue))
        if last is not None:
            yield {"queue": queue}, (utcnow() - last).total_seconds()


@register_gauge(
    "obmen_canary_latency_ms",
    "Latency of the last completed canary, outbox to register, per queue",
    ("queue",),
)
def _canary_latency(session: Session) -> Iterable[Sample]:
    for queue in QUEUE_NAMES:
        latency = session.scalar(
            select(Canary.latency_ms)
            .where(Canary.queue == queue, Canary.completed_at.is_not(None))
            .order_by(Canary.completed_at.desc())
            .limit(1)
        )
        if latency is not None:
            yield {"queue": queue}, latency

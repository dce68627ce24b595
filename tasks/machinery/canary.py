"""The canary flow: beat starts one, the step completes it, ``/metrics`` reports its age."""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task
from sqlalchemy.orm import Session

from integrations.errors import PermanentError, TransientError
from models.canary import Canary
from models.db import db_now, session_scope
from tasks.machinery.outbox import enqueue
from tasks.machinery.steps import step

RUN = "ops.canary.run"


def start_canary(session: Session, fault: str | None = None, fault_times: int = 0) -> Canary:
    canary = Canary(fault=fault, fault_times=fault_times)
    session.add(canary)
    session.flush()
    enqueue(session, RUN, {"id": canary.id}, business_key=f"canary:{canary.id}")
    return canary


@step(RUN, model=Canary, statuses={"pending"}, stale_after_s=120)
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
def canary_task(**_: Any) -> int:
    """Beat: start a canary through the outbox."""
    with session_scope() as session:
        return start_canary(session).id

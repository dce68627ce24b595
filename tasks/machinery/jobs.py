"""Beat-driven machinery tasks: the outbox relay and the sweeper. Both are idempotent and lock-free
to run twice: rows are claimed with SKIP LOCKED."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from tasks.machinery.outbox import relay_all
from tasks.machinery.sweeper import sweep


@shared_task(name="outbox.relay", ignore_result=True)
def relay_task(**_: Any) -> int:
    return relay_all()


@shared_task(name="ops.sweep", ignore_result=True)
def sweep_task(**_: Any) -> dict[str, int]:
    redriven = sweep()
    relay_all()
    return redriven


@shared_task(name="ops.noop", ignore_result=True)
def noop_task(**_: Any) -> None:
    """Does nothing: the benchmarks measure the raw broker and worker rate with it, as their denominator."""

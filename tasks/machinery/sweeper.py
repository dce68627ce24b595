"""The sweeper and re-drive: how work left behind gets going again.

Celery on Redis can drop a message (a worker killed outright, Redis restarted without its data).
The register still holds the row in a non-terminal status, so the sweeper finds rows left in a
step's statuses longer than that step's ``stale_after_s`` and enqueues the step again through the
outbox. Steps are idempotent, so a message that was merely slow costs one quiet no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select

from config.settings import get_settings
from models.db import db_now, session_scope
from models.steps import step_model
from tasks.machinery.outbox import enqueue, purge_published
from tasks.machinery.steps import STEPS, steps_for

log = structlog.get_logger(__name__)

SWEEP_LIMIT = 1000


def sweep(limit: int = SWEEP_LIMIT) -> dict[str, int]:
    """Re-drive stale rows of every step; returns how many per step."""
    redriven: dict[str, int] = {}
    default_stale = get_settings().stale_after_s
    for spec in STEPS.values():
        stale_after = spec.stale_after_s or default_stale
        with session_scope() as session:
            now = db_now(session)
            model: Any = spec.model
            rows = session.scalars(
                select(model)
                .where(model.status.in_(spec.statuses))
                .where(model.parked_at.is_(None))
                .where(model.updated_at < now - timedelta(seconds=stale_after))
                .order_by(model.updated_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                # Touch the row so the next sweep gives this re-drive its full time.
                row.updated_at = now
                enqueue(
                    session,
                    spec.task_name,
                    {"id": row.id},
                    business_key=f"sweep:{model.__tablename__}:{row.id}",
                )
            if rows:
                redriven[spec.task_name] = len(rows)
                log.warning("sweep.redriven", step=spec.task_name, rows=len(rows))
    purge_published()
    return redriven


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
                enqueue(session, spec.task_name, {"id": row.id}, business_key=f"redrive:{register}:{row.id}")
            done.append(row.id)
    log.info("redrive.done", register=register, ids=done, skipped=skipped)
    return Redriven(register, done, skipped)

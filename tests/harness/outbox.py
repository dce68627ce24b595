"""Running what the outbox holds in this process, as the relay and a worker would, step by step."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select, update

from models.base import utcnow
from models.db import session_scope
from models.outbox import Outbox
from tasks.machinery.steps import STEPS, Outcome, run_step


def run_pending(task: str, batch: str | None = None) -> list[Outcome]:
    """Run the steps the outbox holds for ``task`` (due now or later), also those a deadline sweep
    handed out to its ``batch`` entry 50 ids to a message; the rows are marked published."""
    names = [task] if batch is None else [task, batch]
    with session_scope() as s:
        rows = s.scalars(
            select(Outbox)
            .where(Outbox.task_name.in_(names), Outbox.published_at.is_(None))
            .order_by(Outbox.id)
        ).all()
        kwargs: list[Mapping[str, object]] = [r.kwargs["kwargs"] for r in rows]
        s.execute(update(Outbox).where(Outbox.id.in_([r.id for r in rows])).values(published_at=utcnow()))
    ids = [i for k in kwargs for i in (k.get("ids") or [k["id"]])]  # type: ignore[attr-defined]
    return [run_step(STEPS[task], int(row_id)) for row_id in ids]

"""The deadline sweep: ``act_deadlines`` rows past due fire their Bitrix24 side effect, once.

Deadlines are rows, not countdowns: days are far beyond what a broker should hold. The sweep (beat,
every ``OBMEN_ACTS_DEADLINE_SWEEP_INTERVAL_S``) claims due rows with ``SKIP LOCKED`` in batches,
marks them fired and writes one ``act_crm_actions`` row each under the business key
``deadline:<subject>`` (unique), with its outbox row, in the same transaction. A deadline that fell
due while beat was down is simply due when it is back: it fires then, once. Deadlines are cancelled
in the transaction that makes them moot (the act signed, the form answered), so a swept row needs
no second look; the CRM step still checks the act once more before it creates the task.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from celery import shared_task
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.acts import CRM_NOTIFY, CRM_TASK, DEADLINE_FORM, DEADLINE_SIGNATURE, ActCrmAction, ActDeadline
from models.db import db_now, session_scope
from tasks.acts.register import CRM_TASK as CRM_STEP
from tasks.acts.register import insert_for
from tasks.outbox import enqueue_many

TASK_TITLE = "Указать статус акта"


def _action(row: Any) -> dict[str, Any]:
    if row.kind == DEADLINE_SIGNATURE:
        return {"kind": CRM_TASK, "title": TASK_TITLE, "act_id": row.act_id}
    return {
        "kind": CRM_NOTIFY,
        "title": "Нет ответа заявителя по актам",
        "form_request_id": row.form_request_id,
        "message": (
            f"Заявитель по сделке {row.deal_id} не заполнил форму способа обмена актами за "
            f"{get_settings().acts_form_answer_days} дня: свяжитесь с ним и уточните данные по актам."
        ),
    }


def fire_due(session: Session, now: datetime, limit: int) -> Counter[str]:
    """Fire up to ``limit`` due deadlines in the caller's transaction; counts per kind."""
    claimed = (
        select(ActDeadline.id)
        .where(ActDeadline.status == "waiting", ActDeadline.due_at <= now)
        .order_by(ActDeadline.due_at, ActDeadline.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    fired = session.execute(
        update(ActDeadline)
        .where(ActDeadline.id.in_(claimed))
        .values(status="fired", fired_at=now)
        .returning(
            ActDeadline.kind,
            ActDeadline.subject_key,
            ActDeadline.deal_id,
            ActDeadline.act_id,
            ActDeadline.form_request_id,
        )
    ).all()
    counted: Counter[str] = Counter(row.kind for row in fired)
    if not fired:
        return counted
    values = [
        {
            "business_key": f"deadline:{row.subject_key}",
            "deal_id": row.deal_id,
            "status": "pending",
            "attempts": 0,
            "act_id": None,
            "form_request_id": None,
            "message": None,
            **_action(row),
        }
        for row in fired
    ]
    inserted = session.execute(
        insert_for(session, ActCrmAction)
        .values(values)
        .on_conflict_do_nothing(index_elements=["business_key"])
        .returning(ActCrmAction.id, ActCrmAction.business_key)
    ).all()
    enqueue_many(session, CRM_STEP, [{"id": i} for i, _ in inserted], business_keys=[k for _, k in inserted])
    return counted


def sweep_deadlines(now: datetime | None = None, batch: int | None = None) -> dict[str, int]:
    """Fire every due deadline, a batch per transaction. ``now`` defaults to the database clock."""
    batch = batch or get_settings().acts_deadline_batch
    total: Counter[str] = Counter()
    while True:
        with session_scope() as session:
            counted = fire_due(session, now or db_now(session), batch)
        total.update(counted)
        if sum(counted.values()) < batch:
            return {kind: total.get(kind, 0) for kind in (DEADLINE_SIGNATURE, DEADLINE_FORM)}


@shared_task(name="acts.deadlines.sweep", ignore_result=True)
def sweep_task(**_: Any) -> dict[str, int]:
    """Beat: fire the deadlines that are due (a task «Указать статус акта», a manager's notice)."""
    return sweep_deadlines()

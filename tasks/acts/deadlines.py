"""Deadlines: the sweep finds ``act_deadlines`` rows past due; the step does their Bitrix24 side effect.

Deadlines are rows, not countdowns: days are far beyond what a broker should hold. The sweep (beat,
every ``OBMEN_ACTS_DEADLINE_SWEEP_INTERVAL_S``) turns due ``waiting`` rows ``due`` with one
``UPDATE … RETURNING`` over rows claimed with ``SKIP LOCKED`` and hands them to
``acts.deadlines.fire_batch``, 50 ids to a message, in the same transaction. A deadline that fell
due while beat was down is simply due when it is back: it fires then, once — the row leaves
``waiting`` once, and the step acts only on ``due`` rows.

``acts.deadline.fire`` (one row; the batch runs it for each of its ids) gives the deal's
responsible the task «Указать статус акта» — looked up first by its ``XML_ID``, the row's
``subject_key``, so a step repeated after a crash between Bitrix24's answer and our commit finds it —
or, for a form left unanswered 3 days, a notification. Deadlines are cancelled in the transaction
that makes them moot; the step still checks the act once more (it may have been settled between
the sweep and the step).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from celery import shared_task
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import PermanentError
from models.acts import DEADLINE_FORM, DEADLINE_SIGNATURE, SENT, Act, ActDeadline, ActFormRequest
from models.db import db_now, session_scope
from tasks.acts.crm import find_task, notify, responsible_of
from tasks.bitrix24 import bitrix24_client
from tasks.outbox import enqueue, enqueue_many
from tasks.policy import countdown
from tasks.steps import STEPS, Outcome, entry, run_step, step
from tasks.workdays import MOSCOW, end_of_next_working_day, moscow_date, working_days_between

TASK_TITLE = "Указать статус акта"
FIRE = "acts.deadline.fire"
FIRE_BATCH = "acts.deadlines.fire_batch"
CHUNK = 50
# A row left ``due`` this long lost its message or its retries: the sweeper re-drives it.
STALE_AFTER_S = 300


def fire_due(session: Session, now: datetime, limit: int) -> Counter[str]:
    """Turn up to ``limit`` due deadlines ``due`` and enqueue their step, in the caller's transaction."""
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
        .values(status="due", fired_at=now, attempts=0)
        .returning(ActDeadline.id, ActDeadline.kind)
    ).all()
    ids = sorted(row.id for row in fired)
    chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    enqueue_many(
        session, FIRE_BATCH, [{"ids": c} for c in chunks], business_keys=[f"deadlines:{c[0]}" for c in chunks]
    )
    return Counter(row.kind for row in fired)


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


def _task_text(act: Act, now: datetime) -> str:
    sent = act.sent_at.astimezone(MOSCOW) if act.sent_at else None
    when = ""
    if sent is not None:
        when = f" {sent:%d.%m.%Y} ({working_days_between(sent.date(), moscow_date(now))} раб. дн. назад)"
    return (
        f"Акт № {act.number} по сделке {act.deal_id} направлен заявителю{when} и не подписан "
        f"в течение {get_settings().acts_signature_working_days} рабочих дней. Свяжитесь с заявителем и "
        "укажите статус акта: «Акт принят, но не подписан заявителем» или «Отказ от подписания»."
    )


@step(FIRE, model=ActDeadline, statuses={"due"}, stale_after_s=STALE_AFTER_S)
def fire_deadline(session: Session, deadline: ActDeadline) -> None:
    """The task «Указать статус акта» for an act unsigned past its working days; for a form unanswered
    3 days, a notification to the deal's responsible."""
    b24 = bitrix24_client()
    key = deadline.subject_key
    now = db_now(session)
    if deadline.kind == DEADLINE_SIGNATURE:
        act = session.get(Act, deadline.act_id) if deadline.act_id else None
        if act is None or act.status != SENT:
            deadline.result = f"skipped: the act is «{act.status if act else 'gone'}» now"
        else:
            task = find_task(b24, key) or b24.task_add(
                {
                    "TITLE": TASK_TITLE,
                    "DESCRIPTION": _task_text(act, now),
                    "RESPONSIBLE_ID": responsible_of(b24, deadline.deal_id, key),
                    "DEADLINE": end_of_next_working_day(now).astimezone(MOSCOW).isoformat(),
                    "UF_CRM_TASK": [f"D_{deadline.deal_id}"],
                    "XML_ID": key,
                },
                key=key,
            )
            deadline.result = f"task {task.get('id') or task.get('ID')}"
    elif deadline.kind == DEADLINE_FORM:
        form = session.get(ActFormRequest, deadline.form_request_id) if deadline.form_request_id else None
        if form is not None and form.status == "answered":
            deadline.result = "skipped: the counterparty answered in the meantime"
        else:
            message = (
                f"Заявитель по сделке {deadline.deal_id} не заполнил форму способа обмена актами за "
                f"{get_settings().acts_form_answer_days} дня: свяжитесь с ним и уточните данные по актам."
            )
            deadline.result = notify(b24, deadline.deal_id, message, key)
    else:
        raise PermanentError(f"unknown deadline kind {deadline.kind!r}")
    deadline.status = "fired"


FIRE_SPEC = STEPS[FIRE]


class DeadlineRows(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[StrictInt] = Field(min_length=1, max_length=CHUNK)


@entry(FIRE_BATCH, args=DeadlineRows)
def fire_batch(session: Session, args: DeadlineRows) -> dict[str, int]:
    """Run ``acts.deadline.fire`` for each of up to 50 deadlines the sweep found due (one message
    instead of 50); a row whose step must be retried gets a message of its own."""
    outcomes: Counter[str] = Counter()
    for deadline_id in args.ids:
        outcome = run_step(FIRE_SPEC, deadline_id)
        outcomes[outcome.value] += 1
        if outcome is Outcome.RETRY:
            enqueue(
                session,
                FIRE,
                {"id": deadline_id},
                delay_s=countdown(1),
                business_key=f"deadline:{deadline_id}",
            )
    return dict(outcomes)

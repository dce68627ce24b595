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

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.acts import DEADLINE_FORM, DEADLINE_SIGNATURE, Act, ActDeadline
from models.db import db_now, session_scope
from tasks.acts.chain import DEADLINES_FIRE_BATCH
from tasks.machinery.outbox import enqueue_many
from tasks.machinery.workdays import MOSCOW, moscow_date, working_days_between

TASK_TITLE = "Указать статус акта"
CHUNK = 50


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
        session,
        DEADLINES_FIRE_BATCH,
        [{"ids": c} for c in chunks],
        business_keys=[f"deadlines:{c[0]}" for c in chunks],
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


def task_text(act: Act, now: datetime) -> str:
    sent = act.sent_at.astimezone(MOSCOW) if act.sent_at else None
    when = ""
    if sent is not None:
        when = f" {sent:%d.%m.%Y} ({working_days_between(sent.date(), moscow_date(now))} раб. дн. назад)"
    return (
        f"Акт № {act.number} по сделке {act.deal_id} направлен заявителю{when} и не подписан "
        f"в течение {get_settings().acts_signature_working_days} рабочих дней. Свяжитесь с заявителем и "
        "укажите статус акта: «Акт принят, но не подписан заявителем» или «Отказ от подписания»."
    )

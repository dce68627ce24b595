"""The acts flow's deadlines: ``act_deadlines`` swept by the one deadline sweeper
(``tasks.machinery.deadlines``, beat every ``OBMEN_ACTS_DEADLINE_SWEEP_INTERVAL_S``), fired 50 to an
``acts.deadlines.fire_batch`` message.

``acts.deadline.fire`` (one row; the batch runs it for each of its ids) gives the deal's
responsible the task «Указать статус акта» — looked up first by its ``XML_ID``, the row's
``subject_key``, so a step repeated after a crash between Bitrix24's answer and our commit finds it —
or, for a form left unanswered 3 days, a notification. Deadlines are cancelled in the transaction
that makes them moot; the step still checks the act once more (it may have been settled between
the sweep and the step).
"""

from __future__ import annotations

from datetime import datetime

from config.settings import get_settings
from models.acts import DEADLINE_FORM, DEADLINE_SIGNATURE, Act, ActDeadline
from tasks.acts.chain import DEADLINE_FIRE, DEADLINES_FIRE_BATCH
from tasks.machinery import deadlines
from tasks.machinery.deadlines import DeadlineRegister
from tasks.machinery.workdays import MOSCOW, moscow_date, working_days_between

TASK_TITLE = "Указать статус акта"


DEADLINES = DeadlineRegister(ActDeadline, fire=DEADLINE_FIRE, fire_batch=DEADLINES_FIRE_BATCH)


def sweep_deadlines(now: datetime | None = None, batch: int | None = None) -> dict[str, int]:
    """Fire every due deadline, a batch per transaction. ``now`` defaults to the database clock."""
    total = deadlines.sweep(DEADLINES, batch or get_settings().acts_deadline_batch, now)
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

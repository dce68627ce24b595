"""``acts.crm.apply``: the acts flow's side effects in Bitrix24, one ``act_crm_actions`` row each.

* ``stage``: move the deal to the stage its acts call for, computed when the step runs from the
  acts as committed then (one row per deal, re-armed on every change of its acts);
* ``task``: the task «Указать статус акта» for the deal's responsible, unless the act was settled
  in the meantime; looked up by its ``XML_ID`` (the row's business key) before it is created, so
  a step repeated after a crash between Bitrix24's answer and our commit finds it;
* ``notify``: a notification to the deal's responsible, tagged with the business key (Bitrix24
  replaces a notification of the same tag instead of showing it twice).

The responsible is read from the deal when the step runs: it may have changed since the act was sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.bitrix24 import Bitrix24Client
from integrations.errors import PermanentError
from models.acts import CRM_NOTIFY, CRM_STAGE, CRM_TASK, SENT, Act, ActCrmAction, ActFormRequest
from models.db import db_now
from tasks.acts.register import CRM_TASK as APPLY
from tasks.acts.register import deal_stage
from tasks.bitrix24 import bitrix24_client
from tasks.steps import step
from tasks.workdays import MOSCOW, end_of_next_working_day, moscow_date, working_days_between


def responsible_of(b24: Bitrix24Client, deal_id: int, key: str) -> int:
    deal = b24.deal_get(deal_id, key=key)
    try:
        return int(deal["ASSIGNED_BY_ID"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentError(f"deal {deal_id} has no responsible (ASSIGNED_BY_ID) in Bitrix24") from exc


def find_task(b24: Bitrix24Client, xml_id: str) -> dict[str, Any] | None:
    found = b24.call(
        "tasks.task.list", {"filter": {"XML_ID": xml_id}, "select": ["ID", "XML_ID"]}, key=xml_id
    )
    tasks = found.get("tasks") if isinstance(found, dict) else None
    return dict(tasks[0]) if tasks else None


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


@step(APPLY, model=ActCrmAction, statuses={"pending"})
def apply_crm_action(session: Session, action: ActCrmAction) -> None:
    """Do the row's Bitrix24 side effect (deal stage, task «Указать статус акта», notification)."""
    b24 = bitrix24_client()
    key = action.business_key
    now = db_now(session)
    if action.kind == CRM_STAGE:
        target = deal_stage(session, action.deal_id)
        if target is None:
            action.result = "no move: the acts call for none"
        else:
            b24.deal_update(action.deal_id, {"STAGE_ID": target}, key=key)
            action.stage_id = target
            action.result = target
    elif action.kind == CRM_TASK:
        act = session.get(Act, action.act_id) if action.act_id else None
        if act is None or act.status != SENT:
            action.result = f"skipped: the act is «{act.status if act else 'gone'}» now"
        else:
            task = find_task(b24, key)
            if task is None:
                task = b24.task_add(
                    {
                        "TITLE": action.title,
                        "DESCRIPTION": _task_text(act, now),
                        "RESPONSIBLE_ID": responsible_of(b24, action.deal_id, key),
                        "DEADLINE": end_of_next_working_day(now).astimezone(MOSCOW).isoformat(),
                        "UF_CRM_TASK": [f"D_{action.deal_id}"],
                        "XML_ID": key,
                    },
                    key=key,
                )
            action.result = f"task {task.get('id') or task.get('ID')}"
    elif action.kind == CRM_NOTIFY:
        form = session.get(ActFormRequest, action.form_request_id) if action.form_request_id else None
        if form is not None and key.startswith("deadline:") and form.status == "answered":
            action.result = "skipped: the counterparty answered in the meantime"
        else:
            user = responsible_of(b24, action.deal_id, key)
            notice = b24.notify_system(user, action.message or action.title or "", tag=key, key=key)
            action.result = f"notification {notice} to user {user}"
    else:
        raise PermanentError(f"unknown CRM action kind {action.kind!r}")
    action.status = "done"
    action.done_at = now

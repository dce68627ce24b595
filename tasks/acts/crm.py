"""The acts flow's side effects in Bitrix24, one ``act_crm_actions`` row each.

* ``stage``: move the deal to the stage its acts call for, computed when the move runs from the
  acts as committed then (one row per deal, re-armed on every change of its acts). Moves go 50 to
  a ``batch`` call: ``acts.crm.move_stages`` takes the rows of one re-arming transaction, and
  ``acts.crm.apply`` (the sweeper's and re-drive's way in) takes its row and other waiting ones.
* ``notify``: a notification to the deal's responsible, tagged with the business key (Bitrix24
  replaces a notification of the same tag instead of showing it twice).

The responsible is read from the deal when the step runs: it may have changed since. The helpers
here also serve the deadline step (the task «Указать статус акта»).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.bitrix24 import Bitrix24Client
from integrations.errors import PermanentError
from models.acts import CRM_STAGE, ActCrmAction
from tasks.acts.register import deal_stages
from tasks.machinery.policy import describe


def move_deals(
    session: Session, b24: Bitrix24Client, rows: list[ActCrmAction], now: datetime, key: str
) -> dict[int, Exception]:
    """Move the rows' deals to the stages their acts call for, in one ``batch`` call; mark the moved done.

    Returns the errors of single commands by row id; those rows stay pending with the error recorded.
    """
    targets = deal_stages(session, [r.deal_id for r in rows])
    commands = {
        f"deal{r.deal_id}": ("crm.deal.update", {"id": r.deal_id, "fields": {"STAGE_ID": target}})
        for r in rows
        if (target := targets[r.deal_id]) is not None
    }
    errors = b24.batch(commands, key=key).errors if commands else {}
    failed: dict[int, Exception] = {}
    for row in rows:
        error = errors.get(f"deal{row.deal_id}")
        if error is not None:
            row.record_error(describe(error))
            failed[row.id] = error
            continue
        target = targets[row.deal_id]
        row.stage_id = target
        row.result = target or "no move: the acts call for none"
        row.status = "done"
        row.done_at = now
    return failed


def claim_stage_rows(
    session: Session, ids: list[int] | None, exclude: int | None, limit: int
) -> list[ActCrmAction]:
    query = (
        select(ActCrmAction)
        .where(
            ActCrmAction.kind == CRM_STAGE, ActCrmAction.status == "pending", ActCrmAction.parked_at.is_(None)
        )
        .order_by(ActCrmAction.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if ids is not None:
        query = query.where(ActCrmAction.id.in_(ids))
    if exclude is not None:
        query = query.where(ActCrmAction.id != exclude)
    return list(session.scalars(query))


def responsible_of(b24: Bitrix24Client, deal_id: int, key: str) -> int:
    deal = b24.deal_get(deal_id, key=key)
    try:
        return int(deal["ASSIGNED_BY_ID"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentError(f"deal {deal_id} has no responsible (ASSIGNED_BY_ID) in Bitrix24") from exc


def notify(b24: Bitrix24Client, deal_id: int, message: str, key: str) -> str:
    """Notify the deal's responsible; the tag makes a repeat replace the notice, not double it."""
    user = responsible_of(b24, deal_id, key)
    notice = b24.notify_system(user, message, tag=key, key=key)
    return f"notification {notice} to user {user}"


def find_task(b24: Bitrix24Client, xml_id: str) -> dict[str, Any] | None:
    found = b24.call(
        "tasks.task.list", {"filter": {"XML_ID": xml_id}, "select": ["ID", "XML_ID"]}, key=xml_id
    )
    tasks = found.get("tasks") if isinstance(found, dict) else None
    return dict(tasks[0]) if tasks else None

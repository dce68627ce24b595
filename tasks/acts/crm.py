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

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.bitrix24 import Bitrix24Client
from integrations.errors import PermanentError
from models.acts import CRM_NOTIFY, CRM_STAGE, ActCrmAction
from models.db import db_now
from tasks.acts.register import CRM_APPLY as APPLY
from tasks.acts.register import MOVE_STAGES, STAGE_BATCH, deal_stages
from tasks.bitrix24 import bitrix24_client
from tasks.policy import describe
from tasks.steps import entry, step

# A stage row left pending this long has lost its message (or its batch failed): the sweeper re-drives it.
STALE_AFTER_S = 300


def _move(
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


def _claim_stage_rows(
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


class StageRows(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[StrictInt] = Field(min_length=1, max_length=STAGE_BATCH)


@entry(MOVE_STAGES, args=StageRows)
def move_stages(session: Session, args: StageRows) -> int:
    """Move up to 50 deals whose acts changed, in one Bitrix24 ``batch`` call (``act_crm_actions`` ids).

    Rows another mover holds are skipped: they are that mover's. A row whose command failed stays
    pending with its error; the sweeper re-drives it through ``acts.crm.apply`` after its stale time.
    """
    rows = _claim_stage_rows(session, args.ids, None, STAGE_BATCH)
    if rows:
        _move(session, bitrix24_client(), rows, db_now(session), rows[0].business_key)
    return len(rows)


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


@step(APPLY, model=ActCrmAction, statuses={"pending"}, stale_after_s=STALE_AFTER_S)
def apply_crm_action(session: Session, action: ActCrmAction) -> None:
    """Do the row's Bitrix24 side effect (the deal's stage, with other waiting deals; a notification)."""
    b24 = bitrix24_client()
    key = action.business_key
    now = db_now(session)
    if action.kind == CRM_STAGE:
        # The sweeper's or a re-drive's way in: this row, and other waiting ones with it.
        rows = [action, *_claim_stage_rows(session, None, action.id, STAGE_BATCH - 1)]
        failed = _move(session, b24, rows, now, key)
        if action.id in failed:
            raise failed[action.id]
        return
    if action.kind == CRM_NOTIFY:
        action.result = notify(b24, action.deal_id, action.message or action.title or "", key)
    else:
        raise PermanentError(f"unknown CRM action kind {action.kind!r}")
    action.status = "done"
    action.done_at = now

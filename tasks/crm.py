"""The CRM follows the money: a deal whose debt a payment cleared moves to «Оплачено» in Bitrix24.

A CRM failure never touches the posted payment: the mark is its own row, retried, deferred while
the portal throttles, parked after its attempts with the error for ops to re-drive.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from config.settings import get_settings
from models.db import db_now
from models.payments import DealPaidMark, SubscriberBalance
from tasks.bitrix24 import bitrix24_client
from tasks.payments import MARK_DEAL_PAID
from tasks.steps import step


@step(MARK_DEAL_PAID, model=DealPaidMark, statuses={"pending"}, stale_after_s=3600)
def mark_deal_paid(session: Session, mark: DealPaidMark) -> None:
    """Move the deal to the paid stage, unless a newer accrual made the subscriber owe again."""
    balance = session.get(SubscriberBalance, mark.subscriber_inn)
    if balance is not None and balance.debt > 0:
        mark.status = "superseded"
        return
    # Setting a stage is idempotent: a repeat after a crash between answer and commit changes nothing.
    bitrix24_client().deal_update(
        mark.deal_id, {"STAGE_ID": get_settings().bitrix24_stage_paid}, key=f"crm_deal_marks:{mark.id}"
    )
    mark.status = "done"
    mark.marked_at = db_now(session)

"""The acts flow's batch entries: stage moves of one transaction, deadlines found due by one sweep.

Each takes up to 50 row ids in one message and runs the step of each row, so a sweep or a burst of
changes costs one message (and one Bitrix24 ``batch`` call) per 50 rows instead of one per row.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.orm import Session

from models.db import db_now
from tasks.acts.chain import MOVE_STAGES
from tasks.acts.crm import claim_stage_rows, move_deals
from tasks.acts.deadlines import DEADLINES
from tasks.acts.register import STAGE_BATCH
from tasks.machinery.bitrix24 import bitrix24_client
from tasks.machinery.deadlines import batch_entry
from tasks.machinery.steps import entry


class StageRows(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[StrictInt] = Field(min_length=1, max_length=STAGE_BATCH)


@entry(MOVE_STAGES, args=StageRows)
def move_stages(session: Session, args: StageRows) -> int:
    """Move up to 50 deals whose acts changed, in one Bitrix24 ``batch`` call (``act_crm_actions`` ids).

    Rows another mover holds are skipped: they are that mover's. A row whose command failed stays
    pending with its error; the sweeper re-drives it through ``acts.crm.apply`` after its stale time.
    """
    rows = claim_stage_rows(session, args.ids, None, STAGE_BATCH)
    if rows:
        move_deals(session, bitrix24_client(), rows, db_now(session), rows[0].business_key)
    return len(rows)


fire_batch = batch_entry(DEADLINES)

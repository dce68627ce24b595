"""The acts flow's tasks by name, and which follows which.

    POST /acts ──▶ acts (created …) ─ status change ─▶ sending ──acts.sbis.send──▶ sent
                   │                                    acts.track (beat, СБИС feed) ──▶ signed / refused
                   ├─ deal stage re-armed ──▶ act_crm_actions (pending) ──acts.crm.move_stages / acts.crm.apply──▶ done
                   └─ sent ──▶ act_deadlines (waiting ─acts.deadlines.sweep─▶ due)
                                   ──acts.deadlines.fire_batch / acts.deadline.fire──▶ fired
    Bitrix24 event / acts.deals.reconcile ──▶ act_deals (pending) ──acts.deal.sync──▶ synced
                   └─ «Одобрено комиссией» ──▶ act_form_requests (to_send) ──acts.form.send──▶ sent
    any change of an act / item event / acts.items.reconcile ──▶ act_items (pending) ──acts.item.sync──▶ synced
    e-mail act «sent» ──▶ acts (Отправка по e-mail) ──acts.email.send (letter, then until it left)──▶ sent

Each arrow is a step on the row's register, enqueued through the outbox in the transaction that
makes it due; the step declarations (``steps.py``) name the statuses they take.
"""

from __future__ import annotations

SBIS_SEND = "acts.sbis.send"


CRM_APPLY = "acts.crm.apply"


MOVE_STAGES = "acts.crm.move_stages"


DEAL_SYNC = "acts.deal.sync"


DEADLINE_FIRE = "acts.deadline.fire"


DEADLINES_FIRE_BATCH = "acts.deadlines.fire_batch"


FORM_SEND = "acts.form.send"


ITEM_SYNC = "acts.item.sync"


EMAIL_SEND = "acts.email.send"

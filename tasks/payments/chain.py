"""The payments flow's tasks by name, and which follows which.

    bank API / OSMP ──accept──▶ payments (received) ──payments.post──▶ posted
                                    └─ debt cleared ──▶ crm_deal_marks (pending) ──crm.mark_deal_paid──▶ done
    billing.accrue ──▶ accruals (new) ──billing.start_reminder──▶ unpaid
                       └─ billing_deadlines (waiting ─billing.escalate─▶ due)
                              ──billing.deadlines.fire_batch / billing.fire_deadline──▶ done
    billing.submit_request ──▶ subscriber_requests (new | awaiting_payment ─payment / override─▶ new)
                               ──billing.start_request_process──▶ process_started ─billing.close_request─▶ closed
    billing.announce_works ──▶ planned_works (new) ──billing.works.notify──▶ notified (an SMS row each)
                           └─ planned_works_deadlines (waiting ─billing.escalate─▶ due)
                                  ──billing.works.fire_batch / billing.works.fire_reminder──▶ done
    every SMS ──▶ sms_messages (tasks/sms/chain.py)

Each arrow is a step on the row's register, enqueued through the outbox in the transaction that
makes it due; the step declarations (``steps.py``) name the statuses they take.
"""

from __future__ import annotations

POST = "payments.post"
MARK_DEAL_PAID = "crm.mark_deal_paid"
START_REMINDER = "billing.start_reminder"
FIRE_DEADLINE = "billing.fire_deadline"
FIRE_DEADLINES_BATCH = "billing.deadlines.fire_batch"
START_REQUEST = "billing.start_request_process"
ANNOUNCE_WORKS = "billing.announce_works"
NOTIFY_WORKS = "billing.works.notify"
FIRE_WORKS_REMINDER = "billing.works.fire_reminder"
FIRE_WORKS_BATCH = "billing.works.fire_batch"

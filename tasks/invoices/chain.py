"""The invoice flow's tasks by name, and which follows which.

    site / other services ──invoices.request──▶ invoice_requests (pending)
        └─ the invoice is in the register already ──▶ done (1C is not asked)
    invoice_requests (pending) ──invoices.ask_onec──▶ done (invoice_id) | rejected (error_field)
    invoices.poll_changes (beat, 1C's change list from the stored cursor)
        ├─ a payment changed ──▶ invoices (payment_status, paid_amount) in the same transaction
        └─ a document changed or is new ──▶ invoice_updates (pending)
               ──invoices.apply_update──▶ applied (a new version) | rejected (error_field)
    payments.post, a purpose naming an invoice ──▶ invoice_payments (pending)
        ──invoices.match_payment──▶ matched (the invoice paid / partly paid) | ambiguous | unmatched

Each arrow is a step on the row's register, enqueued through the outbox in the transaction that
makes it due; the step declarations (``steps.py``) name the statuses they take.
"""

from __future__ import annotations

REQUEST = "invoices.request"
ASK_ONEC = "invoices.ask_onec"
POLL_CHANGES = "invoices.poll_changes"
APPLY_UPDATE = "invoices.apply_update"
MATCH_PAYMENT = "invoices.match_payment"

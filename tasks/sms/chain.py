"""The SMS tasks by name, and which follows which.

    a flow's transaction ──outgoing.send_sms──▶ sms_messages (new) ──sms.send──▶ sent
        ──sms.check_delivery (every OBMEN_SMS_STATUS_INTERVAL_S)──▶ delivered | failed

A row that is no mobile number is ``failed`` at once; each arrow is a step on the row, enqueued
through the outbox in the transaction that makes it due.
"""

from __future__ import annotations

SEND = "sms.send"
CHECK_DELIVERY = "sms.check_delivery"

"""The mail flow's tasks by name, and which follows which.

    mail.fetch (beat) ──▶ mail_messages (new) ──mail.process──▶ processed / ignored / error
                              ├─ code filed ──▶ sep_confirmation_codes
                              ├─ notification ──▶ outgoing_letters (pending) ──mail.send──▶ sent
                              └─ ownership change / lease ──▶ sep.request_application_data (the SEP flow)
    any flow ──queue_letter──▶ outgoing_letters (pending) ──mail.send──▶ sent

Each arrow is a step on the row's register, enqueued through the outbox in the transaction that
makes it due; the step declarations (``steps.py``) name the statuses they take.
"""

from __future__ import annotations

from integrations.mail.sep import Kind

FETCH = "mail.fetch"


PROCESS = "mail.process"


# The SEP flow's task (issue 4): request the application's data for each letter acted on.
REQUEST_APPLICATION_DATA = "sep.request_application_data"


NEXT_STEP_KINDS = frozenset({Kind.OWNERSHIP_CHANGE, Kind.LEASE_APPLICATION, Kind.LEASE_ENTERED})


SEND = "mail.send"

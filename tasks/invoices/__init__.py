"""The invoice flow (seed 004): invoices from 1C with their versions, files and payment status.

``chain`` names the flow's tasks and how they follow each other; ``entries`` is its public task
(``invoices.request``), ``steps`` its steps, ``jobs`` its beat job, ``queries`` what the site, the
CLI and the console read, ``clients`` its 1C client. The logic: ``register`` (applying what 1C sends,
requests, one-time links), ``changes`` (following 1C's change list), ``matching`` (bank payments
that name an invoice).
"""

from tasks.invoices import entries, jobs, steps  # noqa: F401  (registers the tasks)

"""The payments flow (seed 001): bank payments posted exactly once, deal marks, subscriber billing.

``chain`` names the flow's tasks and how they follow each other; ``entries`` are its public tasks,
``steps`` its steps, ``jobs`` its beat job. The logic: ``register`` (accepting, allocating and
assigning payments), ``billing`` (accruals and their deadlines). Its Bitrix24 client is the shared
one (``tasks.machinery.bitrix24``).
"""

from tasks.payments import entries, jobs, steps  # noqa: F401  (registers the tasks)

"""The machinery every flow shares: how a step runs, retries, waits, and is re-driven.

``steps`` (the step and entry shapes of a task), ``policy`` (the one retry policy), ``outbox``
(enqueue in the transaction, publish after the commit), ``sweeper`` (re-drive what was left behind),
``deadlines`` (day-long waits as rows), ``ratelimit`` (a portal's budget shared in Redis),
``workdays`` (the Russian production calendar), ``exchange`` (the exchange log recorder),
``bitrix24`` (the Bitrix24 client two flows share), ``canary`` (a synthetic step), ``master_data``
(``obmen import``), ``jobs`` (the machinery's beat jobs).
"""

from tasks.machinery import canary, jobs  # noqa: F401  (registers the tasks)

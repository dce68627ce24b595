"""The acts flow (seed 003): acts of completed work, СБИС signing, deal stages, working-day deadlines.

``chain`` names the flow's tasks and how they follow each other; ``entries`` are its batch entries,
``steps`` its steps, ``jobs`` its beat jobs, ``queries`` what people read, ``clients`` its СБИС client.
The logic: ``machine`` (allowed status moves), ``register`` (acts and their changes), ``sbis`` (the
СБИС document and change feed), ``crm`` (Bitrix24 side effects), ``deals`` (deals in), ``forms`` (the
counterparty's form), ``deadlines`` (what a due deadline does).
"""

from tasks.acts import entries, jobs, steps  # noqa: F401  (registers the tasks)

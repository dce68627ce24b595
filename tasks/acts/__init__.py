"""The acts flow (seed 003): acts of completed work, СБИС signing, deal stages, working-day deadlines.

Importing this package registers its tasks: ``acts.sbis.send``, ``acts.track``,
``acts.deadlines.sweep`` and the Bitrix24 side (``acts.crm.apply``, ``acts.deal.sync``,
``acts.deals.reconcile``, ``acts.form.send``).
"""

from tasks.acts import deadlines, sbis  # noqa: F401

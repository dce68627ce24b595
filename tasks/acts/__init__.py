"""The acts flow (seed 003): acts of completed work, СБИС signing, deal stages, working-day deadlines.

Importing this package registers its tasks: ``acts.sbis.send``, ``acts.track``,
``acts.deadlines.sweep``, ``acts.deadlines.fire_batch``, ``acts.deadline.fire``,
``acts.crm.move_stages``, ``acts.crm.apply``, ``acts.deal.sync``, ``acts.deals.reconcile`` and
``acts.form.send``.
"""

from tasks.acts import crm, deadlines, deals, forms, sbis  # noqa: F401

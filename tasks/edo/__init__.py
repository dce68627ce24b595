"""Legally significant EDO through Synerdocs (seed 002): a customer's signed package from the cabinet
sent to the company's box (the customer's box found or registered first), the company's incoming
documents routed by type with answer deadlines, the company's signed answers sent with the
operator's stamped print form kept as version 2. See ``chain.py`` for the flow at a glance."""

from tasks.edo import entries, jobs, steps  # noqa: F401

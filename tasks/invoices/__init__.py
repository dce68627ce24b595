"""The invoice flow (seed 004): invoices from 1C with their versions, files and payment status.

Phase 1 holds the register functions (``register``); the tasks come with phase 2, so this package
imports nothing yet.
"""

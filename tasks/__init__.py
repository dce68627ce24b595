"""Pipeline steps: one package per flow plus the machinery they share.

Importing this package registers every task (``workers/app.py`` does it for the worker).
"""

from tasks import acts, edo, invoices, machinery, mail, payments, sep, sms  # noqa: F401

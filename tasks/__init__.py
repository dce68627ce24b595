"""Pipeline steps: plain functions and their thin Celery tasks, one module per step family.

Importing this package registers every task (``workers/app.py`` does it for the worker).
"""

from tasks import acts, billing, canary, crm, machinery, mail_intake, mail_send, payments  # noqa: F401

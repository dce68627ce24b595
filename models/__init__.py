"""The register store: SQLAlchemy models of every register, sessions and migrations.

Importing this package imports every model module, so that metadata, metrics and migrations see
all registers. It knows no pipeline and no external system.
"""

from models import (  # noqa: F401
    acts,
    canary,
    console,
    dead_letters,
    edo,
    exchange_log,
    gauges,
    invoices,
    mail,
    master,
    outbox,
    payments,
    sep,
    sep_codes,
    sms,
    works,
)
from models.base import Base

metadata = Base.metadata

"""The register store: SQLAlchemy models of every register, sessions and migrations.

Importing this package imports every model module, so that metadata, metrics and migrations see
all registers. It knows no pipeline and no external system.
"""

from models import acts, canary, dead_letters, exchange_log, gauges, mail, master, outbox, sep_codes  # noqa: F401
from models.base import Base

metadata = Base.metadata

"""The attempts / parked convention every step register follows.

A step row counts its attempts *before* the work runs (so a worker killed mid-step still counts),
and past the limit it is parked with the last error instead of being retried forever. Redis sets
no "redelivered" flag, so this counter is the only thing that stops a poison message looping.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Index, Integer, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime

ERROR_LIMIT = 4000


class StepMixin:
    """Columns of a register row that a Celery step works on.

    ``TERMINAL`` lists the statuses in which no step has anything left to do. ``status`` itself is
    declared by each register, since its values are the register's own vocabulary.
    """

    TERMINAL: ClassVar[frozenset[str]] = frozenset()

    status: Mapped[str]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    parked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )

    @property
    def is_parked(self) -> bool:
        return self.parked_at is not None

    def record_error(self, error: str) -> None:
        self.last_error = error[:ERROR_LIMIT]

    def park(self, error: str, now: datetime) -> None:
        self.record_error(error)
        self.parked_at = now

    def unpark(self) -> None:
        self.parked_at = None
        self.attempts = 0


def step_models() -> list[type[Any]]:
    """Every mapped register that follows the convention (for metrics, ops lists and re-drive)."""
    return sorted(
        (m.class_ for m in Base.registry.mappers if issubclass(m.class_, StepMixin)),
        key=lambda cls: cls.__tablename__,
    )


def step_model(table: str) -> type[Any] | None:
    return next((cls for cls in step_models() if cls.__tablename__ == table), None)


def parked_index_name(table: str) -> str:
    return f"ix_{table}_parked"


def index_parked_rows() -> None:
    """Give every step register a partial index of its parked rows: the ops lists, the console's
    count and re-drive find the few parked rows among millions without scanning the table.

    Called once every model module is imported (``models/__init__.py``); migrations create the index
    for each new step register (0012_console did for those before it).
    """
    for model in step_models():
        table = model.__table__
        name = parked_index_name(table.name)
        if not any(index.name == name for index in table.indexes):
            Index(
                name,
                table.c.parked_at,
                postgresql_where=table.c.parked_at.is_not(None),
                sqlite_where=table.c.parked_at.is_not(None),
            )

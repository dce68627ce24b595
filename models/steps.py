"""The attempts / parked convention every step register follows.

A step row counts its attempts *before* the work runs (so a worker killed mid-step still counts),
and past the limit it is parked with the last error instead of being retried forever. Redis sets
no "redelivered" flag, so this counter is the only thing that stops a poison message looping.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Index, Integer, Text, event, func, text
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
    # When the row's next step is due to start: stamped by the outbox when a step is enqueued for
    # the row (its due time), by a retry (now + backoff); cleared when a step has run and scheduled
    # nothing, and when the row is parked. A row past it by OBMEN_LOST_AFTER_S that no step holds
    # was lost, not slow: the sweeper re-drives it (``tasks/machinery/sweeper.py``). NULL: no known
    # due time (the stale time applies).
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_parked(self) -> bool:
        return self.parked_at is not None

    def record_error(self, error: str) -> None:
        self.last_error = error[:ERROR_LIMIT]

    def park(self, error: str, now: datetime) -> None:
        self.record_error(error)
        self.parked_at = now
        self.next_step_at = None

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


@event.listens_for(StepMixin, "instrument_class", propagate=True)
def _index_next_step(mapper: Any, cls: type[Any]) -> None:
    """Every step register gets the partial index of rows in flight, which the sweeper's lost-row
    query and the overdue gauge read (rows done or parked have no ``next_step_at``)."""
    table = cls.__table__
    Index(
        f"ix_{table.name}_next_step_at",
        table.c.next_step_at,
        postgresql_where=text("next_step_at IS NOT NULL"),
        sqlite_where=text("next_step_at IS NOT NULL"),
    )

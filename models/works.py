"""Planned repair works on the lines (seed 001: «оповещение о плановом проведении ремонтных работ
на линиях»): the window announced, and the reminder the day before as a deadline row."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId
from models.steps import StepMixin


class PlannedWorks(StepMixin, Base):
    """A maintenance window: which line or addresses, from when to when, and what to tell subscribers."""

    __tablename__ = "planned_works"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"notified"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The announcer's number for the works (the idempotency key).
    number: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    line: Mapped[str | None] = mapped_column(String(64))
    # Address prefixes («г. Казань, ул. Ленина»): a subscriber whose address starts with one is affected.
    addresses: Mapped[list[Any] | None] = mapped_column()
    starts_at: Mapped[datetime] = mapped_column(nullable=False)
    ends_at: Mapped[datetime] = mapped_column(nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    announced_by: Mapped[str | None] = mapped_column(String(200))
    # new -> notified (an SMS row for each affected subscriber)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="new")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    affected: Mapped[int | None] = mapped_column()


class WorksDeadline(StepMixin, Base):
    """The reminder of planned works, due the day before they start (a row, never a countdown)."""

    __tablename__ = "planned_works_deadlines"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"done", "cancelled"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    works_id: Mapped[int] = mapped_column(ForeignKey("planned_works.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    due_at: Mapped[datetime] = mapped_column(nullable=False)
    # waiting -> due -> done | cancelled (the works already started when it came due)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="waiting")
    fired_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("works_id", "kind"),
        Index(
            "ix_planned_works_deadlines_waiting",
            "due_at",
            postgresql_where=text("status = 'waiting'"),
            sqlite_where=text("status = 'waiting'"),
        ),
    )

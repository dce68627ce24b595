"""The canary: a synthetic step that proves outbox -> relay -> broker -> worker -> register works.

Beat starts one on every queue every ``OBMEN_CANARY_INTERVAL_S``; ``/metrics`` shows each queue's
canary age and latency, so a silent pipeline — or a queue nobody consumes — is noticed before a
bank payment waits in it. ``fault`` lets ops run a drill.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import Float, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow
from models.steps import StepMixin


class Canary(StepMixin, Base):
    __tablename__ = "canaries"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"done"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", nullable=False)
    # The queue its step is published to (one canary per queue family).
    queue: Mapped[str] = mapped_column(String(40), default="ops", server_default="ops", nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now(), nullable=False
    )
    # Drill knobs: "transient" fails the first ``fault_times`` attempts, "permanent" always fails,
    # "hold" sleeps ``fault_times`` seconds inside the step (to kill a worker mid-step).
    fault: Mapped[str | None] = mapped_column(String(20))
    fault_times: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # The step's effect. It is incremented in the step's own transaction, so it counts committed
    # executions: anything but 1 for a done canary means work was doubled.
    executions: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    latency_ms: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_canaries_queue_completed", "queue", "completed_at"),
        Index("ix_canaries_created_at", "created_at"),
    )

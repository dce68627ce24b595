"""Every request to and answer from an external system, raw, because that is what people debug from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime


class ExchangeLog(Base):
    __tablename__ = "exchange_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), nullable=False, index=True
    )
    system: Mapped[str] = mapped_column(String(40), nullable=False)
    operation: Mapped[str] = mapped_column(String(120), nullable=False)
    direction: Mapped[str] = mapped_column(String(3), default="out", nullable=False)
    correlation_id: Mapped[str | None] = mapped_column(String(120))
    business_key: Mapped[str | None] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(Text)
    request_headers: Mapped[dict[str, Any] | None] = mapped_column()
    request_body: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_exchange_log_system_created", "system", "created_at"),
        # One system's exchanges, newest first, paged by id (the console's «Журнал обмена»).
        Index("ix_exchange_log_system_id", "system", "id"),
        Index("ix_exchange_log_correlation", "correlation_id"),
        # An EDO package's «XML» tab: every exchange about it, by its package key.
        Index("ix_exchange_log_business_key", "business_key"),
    )

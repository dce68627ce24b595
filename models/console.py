"""The console's registers: its users, the audit of everything they do, and failed logins (throttle)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime

# Roles, each allowed what the one before may do and more.
VIEWER = "viewer"  # reads
OPERATOR = "operator"  # acts on the flows
ADMIN = "admin"  # users, re-drive, settings view
ROLES = (VIEWER, OPERATOR, ADMIN)


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


class ConsoleUser(Base):
    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # argon2id, with its parameters and salt (the PHC string argon2-cffi writes).
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    # A session from before the last password change is void.
    password_changed_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), nullable=False
    )
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The start page's counts when the user last looked at it ("what changed since").
    seen_counts: Mapped[dict[str, Any] | None] = mapped_column()
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsoleAudit(Base):
    """Who did what, when, to which row, and how it ended: every action and every login."""

    __tablename__ = "console_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    login: Mapped[str] = mapped_column(String(64), nullable=False)
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(80), nullable=False)
    # The row acted on, as "<table>:<key>".
    target: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[dict[str, Any] | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(Text, nullable=False, default="ok")

    __table_args__ = (Index("ix_console_audit_login_id", "login", "id"),)


class ConsoleLoginFailure(Base):
    """A failed login, counted per login and per address over the throttle window."""

    __tablename__ = "console_login_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    login: Mapped[str] = mapped_column(String(64), nullable=False)
    address: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        Index("ix_console_login_failures_login_at", "login", "at"),
        Index("ix_console_login_failures_address_at", "address", "at"),
    )

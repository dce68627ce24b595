"""foundation: outbox, exchange log, dead letters, canaries

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-25 08:56:04.015331
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0001_foundation"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "canaries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("fault", sa.String(length=20), nullable=True),
        sa.Column("fault_times", sa.Integer(), nullable=False),
        sa.Column("executions", sa.Integer(), nullable=False),
        sa.Column("completed_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canaries")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("task_name", sa.String(length=200), nullable=False),
        sa.Column("task_id", sa.String(length=200), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_table(
        "exchange_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("system", sa.String(length=40), nullable=False),
        sa.Column("operation", sa.String(length=120), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("correlation_id", sa.String(length=120), nullable=True),
        sa.Column("business_key", sa.String(length=300), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column(
            "request_headers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("request_body", sa.Text(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_log")),
    )
    op.create_index("ix_exchange_log_correlation", "exchange_log", ["correlation_id"], unique=False)
    op.create_index("ix_exchange_log_system_created", "exchange_log", ["system", "created_at"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_name", sa.String(length=200), nullable=False),
        sa.Column(
            "kwargs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("business_key", sa.String(length=300), nullable=True),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "not_before", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("publish_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["not_before", "id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:

    op.drop_index(
        "ix_outbox_pending",
        table_name="outbox",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox")
    op.drop_index("ix_exchange_log_system_created", table_name="exchange_log")
    op.drop_index("ix_exchange_log_correlation", table_name="exchange_log")
    op.drop_table("exchange_log")
    op.drop_table("dead_letters")
    op.drop_table("canaries")

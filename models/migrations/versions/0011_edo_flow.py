"""edo flow: answer deadlines of incoming documents; the exchange log by business key (the «XML» tab)

Revision ID: 0011_edo_flow
Revises: 0010_invoice_flow
Create Date: 2026-12-02 17:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base
from models.migrations.steps import add_next_step_at, drop_next_step_at

revision: str = "0011_edo_flow"
down_revision: str | Sequence[str] | None = "0010_invoice_flow"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_STEP_TABLES = ("edo_answer_deadlines",)
# 0007_edo declared these defaults as the text ``now()``, which SQLite (the embedded demo) does not
# know: an insert there failed. SQLite gets them again as CURRENT_TIMESTAMP; Postgres is unchanged.
NOW_DEFAULTS = {
    "edo_boxes": ("created_at", "updated_at"),
    "edo_senders": ("created_at",),
    "edo_counterparties": ("created_at",),
    "edo_packages": ("created_at", "updated_at"),
    "edo_documents": ("created_at", "updated_at"),
    "edo_document_versions": ("created_at",),
    "edo_files": ("created_at",),
    "edo_cursors": ("updated_at",),
}


def upgrade() -> None:
    op.create_table(
        "edo_answer_deadlines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("due_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("fired_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["edo_documents.id"],
            name=op.f("fk_edo_answer_deadlines_document_id_edo_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edo_answer_deadlines")),
        sa.UniqueConstraint("document_id", name=op.f("uq_edo_answer_deadlines_document_id")),
    )
    op.create_index(
        "ix_edo_answer_deadlines_waiting_due",
        "edo_answer_deadlines",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'waiting'"),
        sqlite_where=sa.text("status = 'waiting'"),
    )
    # Step registers carry the due time of their next step (0009_machinery).
    add_next_step_at(NEW_STEP_TABLES)
    op.create_index("ix_exchange_log_business_key", "exchange_log", ["business_key"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        for table, columns in NOW_DEFAULTS.items():
            with op.batch_alter_table(table) as batch:
                for column in columns:
                    batch.alter_column(column, server_default=sa.func.now())


def downgrade() -> None:
    op.drop_index("ix_exchange_log_business_key", table_name="exchange_log")
    drop_next_step_at(NEW_STEP_TABLES)
    op.drop_index(
        "ix_edo_answer_deadlines_waiting_due",
        table_name="edo_answer_deadlines",
        postgresql_where=sa.text("status = 'waiting'"),
        sqlite_where=sa.text("status = 'waiting'"),
    )
    op.drop_table("edo_answer_deadlines")

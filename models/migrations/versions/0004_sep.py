"""sep exchange registers

Revision ID: 0004_sep
Revises: 0002_master_data
Create Date: 2026-11-25 09:41:36.501558
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0004_sep"
down_revision: str | Sequence[str] | None = "0003_mail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "sep_exchange_errors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("operation", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("application_number", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sep_exchange_errors")),
    )
    op.create_index(
        op.f("ix_sep_exchange_errors_application_number"),
        "sep_exchange_errors",
        ["application_number"],
        unique=False,
    )
    op.create_index(
        op.f("ix_sep_exchange_errors_correlation_id"), "sep_exchange_errors", ["correlation_id"], unique=False
    )
    op.create_index(
        op.f("ix_sep_exchange_errors_request_id"), "sep_exchange_errors", ["request_id"], unique=False
    )
    op.create_table(
        "sep_exchange_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("operation", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("queue_number", sa.String(length=64), nullable=True),
        sa.Column("business_key", sa.String(length=300), nullable=True),
        sa.Column("request_status", sa.String(length=40), nullable=False),
        sa.Column("sep_state", sa.String(length=20), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("exchange_log_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["exchange_log_id"],
            ["exchange_log.id"],
            name=op.f("fk_sep_exchange_history_exchange_log_id_exchange_log"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sep_exchange_history")),
    )
    op.create_index(
        op.f("ix_sep_exchange_history_queue_number"), "sep_exchange_history", ["queue_number"], unique=False
    )
    op.create_index(
        op.f("ix_sep_exchange_history_request_id"), "sep_exchange_history", ["request_id"], unique=False
    )
    op.create_table(
        "sep_applications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("application_number", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=60), nullable=False),
        sa.Column("registered_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("confirm_by", sa.Date(), nullable=True),
        sa.Column("epts", sa.String(length=15), nullable=True),
        sa.Column("vin", sa.String(length=17), nullable=True),
        sa.Column(
            "vehicles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "parties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("current_owner_inn", sa.String(length=12), nullable=True),
        sa.Column("new_owner_inn", sa.String(length=12), nullable=True),
        sa.Column("organization_inn", sa.String(length=12), nullable=True),
        sa.Column("our_role", sa.String(length=20), nullable=True),
        sa.Column("our_status", sa.String(length=20), nullable=True),
        sa.Column("asset_inventory_number", sa.String(length=64), nullable=True),
        sa.Column("responsible_id", sa.String(length=64), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("fetched_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("request_status", sa.String(length=40), nullable=True),
        sa.Column("last_request_id", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=120), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["asset_inventory_number"],
            ["assets.inventory_number"],
            name=op.f("fk_sep_applications_asset_inventory_number_assets"),
        ),
        sa.ForeignKeyConstraint(
            ["responsible_id"], ["employees.id"], name=op.f("fk_sep_applications_responsible_id_employees")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sep_applications")),
        sa.UniqueConstraint("application_number", name=op.f("uq_sep_applications_application_number")),
    )
    op.create_index(op.f("ix_sep_applications_epts"), "sep_applications", ["epts"], unique=False)
    op.create_index(op.f("ix_sep_applications_vin"), "sep_applications", ["vin"], unique=False)
    op.create_table(
        "sep_asset_statuses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("asset_inventory_number", sa.String(length=64), nullable=True),
        sa.Column("epts", sa.String(length=15), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("period", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("application_number", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["asset_inventory_number"],
            ["assets.inventory_number"],
            name=op.f("fk_sep_asset_statuses_asset_inventory_number_assets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sep_asset_statuses")),
        sa.UniqueConstraint(
            "epts",
            "application_number",
            "status",
            name=op.f("uq_sep_asset_statuses_epts_application_number_status"),
        ),
    )
    op.create_index(
        "ix_sep_asset_statuses_asset_period",
        "sep_asset_statuses",
        ["asset_inventory_number", "period"],
        unique=False,
    )
    op.create_table(
        "sep_lease_applications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lease_contract_number", sa.String(length=100), nullable=False),
        sa.Column("organization_inn", sa.String(length=12), nullable=False),
        sa.Column("lessee_inn", sa.String(length=12), nullable=False),
        sa.Column("document_name", sa.String(length=500), nullable=False),
        sa.Column("document_number", sa.String(length=100), nullable=False),
        sa.Column("document_date", sa.Date(), nullable=False),
        sa.Column("lease_term_end", sa.Date(), nullable=False),
        sa.Column(
            "epts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("lessor_status", sa.String(length=20), nullable=False),
        sa.Column("lessee_status", sa.String(length=20), nullable=False),
        sa.Column("confirm_by", sa.Date(), nullable=False),
        sa.Column("use_technical_mailbox", sa.Boolean(), nullable=False),
        sa.Column("notification_email", sa.String(length=320), nullable=False),
        sa.Column("application_number", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("request_status", sa.String(length=40), nullable=True),
        sa.Column("last_request_id", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=120), nullable=True),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["lease_contract_number"],
            ["lease_contracts.number"],
            name=op.f("fk_sep_lease_applications_lease_contract_number_lease_contracts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sep_lease_applications")),
        sa.UniqueConstraint("application_number", name=op.f("uq_sep_lease_applications_application_number")),
        sa.UniqueConstraint(
            "lease_contract_number", name=op.f("uq_sep_lease_applications_lease_contract_number")
        ),
    )
    op.create_table(
        "sep_exchange_queue",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operation", sa.String(length=40), nullable=False),
        sa.Column("business_key", sa.String(length=300), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("application_number", sa.String(length=64), nullable=True),
        sa.Column(
            "lease_application_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("source", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("request_status", sa.String(length=40), nullable=True),
        sa.Column("queue_number", sa.String(length=64), nullable=True),
        sa.Column("sends", sa.Integer(), server_default="0", nullable=False),
        sa.Column("submitted_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sep_accepted_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("polls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_polls", sa.Integer(), nullable=True),
        sa.Column("next_poll_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_polled_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("poll_task_id", sa.String(length=64), nullable=True),
        sa.Column("sep_state", sa.String(length=20), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("completed_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("applied_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["lease_application_id"],
            ["sep_lease_applications.id"],
            name=op.f("fk_sep_exchange_queue_lease_application_id_sep_lease_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sep_exchange_queue")),
        sa.UniqueConstraint("message_id", name=op.f("uq_sep_exchange_queue_message_id")),
        sa.UniqueConstraint("queue_number", name=op.f("uq_sep_exchange_queue_queue_number")),
    )
    op.create_index(
        op.f("ix_sep_exchange_queue_application_number"),
        "sep_exchange_queue",
        ["application_number"],
        unique=False,
    )
    op.create_index("ix_sep_exchange_queue_status", "sep_exchange_queue", ["status"], unique=False)
    op.create_index(
        "uq_sep_exchange_queue_open_business_key",
        "sep_exchange_queue",
        ["business_key"],
        unique=True,
        postgresql_where=sa.text("status IN ('pending', 'uncertain', 'queued', 'done', 'error')"),
        sqlite_where=sa.text("status IN ('pending', 'uncertain', 'queued', 'done', 'error')"),
    )
    op.add_column(
        "lease_contracts",
        sa.Column(
            "payment_schedule",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )
    op.add_column(
        "sep_confirmation_codes",
        sa.Column("refused_at", models.base.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("sep_confirmation_codes", sa.Column("refusal", sa.Text(), nullable=True))


def downgrade() -> None:

    op.drop_column("sep_confirmation_codes", "refusal")
    op.drop_column("sep_confirmation_codes", "refused_at")
    op.drop_column("lease_contracts", "payment_schedule")
    op.drop_index(
        "uq_sep_exchange_queue_open_business_key",
        table_name="sep_exchange_queue",
        postgresql_where=sa.text("status IN ('pending', 'uncertain', 'queued', 'done', 'error')"),
        sqlite_where=sa.text("status IN ('pending', 'uncertain', 'queued', 'done', 'error')"),
    )
    op.drop_index("ix_sep_exchange_queue_status", table_name="sep_exchange_queue")
    op.drop_index(op.f("ix_sep_exchange_queue_application_number"), table_name="sep_exchange_queue")
    op.drop_table("sep_exchange_queue")
    op.drop_table("sep_lease_applications")
    op.drop_index("ix_sep_asset_statuses_asset_period", table_name="sep_asset_statuses")
    op.drop_table("sep_asset_statuses")
    op.drop_index(op.f("ix_sep_applications_vin"), table_name="sep_applications")
    op.drop_index(op.f("ix_sep_applications_epts"), table_name="sep_applications")
    op.drop_table("sep_applications")
    op.drop_index(op.f("ix_sep_exchange_history_request_id"), table_name="sep_exchange_history")
    op.drop_index(op.f("ix_sep_exchange_history_queue_number"), table_name="sep_exchange_history")
    op.drop_table("sep_exchange_history")
    op.drop_index(op.f("ix_sep_exchange_errors_request_id"), table_name="sep_exchange_errors")
    op.drop_index(op.f("ix_sep_exchange_errors_correlation_id"), table_name="sep_exchange_errors")
    op.drop_index(op.f("ix_sep_exchange_errors_application_number"), table_name="sep_exchange_errors")
    op.drop_table("sep_exchange_errors")

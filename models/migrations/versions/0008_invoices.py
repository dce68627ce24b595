"""invoices: the register of 1C invoices, versions, files, requests, one-time links

Revision ID: 0008_invoices
Revises: 0006_acts
Create Date: 2026-12-02 12:55:37.337575
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0008_invoices"
down_revision: str | Sequence[str] | None = "0007_edo"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice_change_cursors",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("cursor", sa.String(length=200), nullable=True),
        sa.Column(
            "updated_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_invoice_change_cursors")),
    )
    op.create_table(
        "invoice_files",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_invoice_files")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("onec_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("number_key", sa.String(length=64), nullable=False),
        sa.Column("issued_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("customer_inn", sa.String(length=12), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("payment_status", sa.String(length=12), nullable=False),
        sa.Column("paid_amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("onec_data_version", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "payment_status IN ('unpaid', 'partly_paid', 'paid', 'cancelled')",
            name=op.f("ck_invoices_payment_status"),
        ),
        sa.ForeignKeyConstraint(
            ["file_sha256"], ["invoice_files.sha256"], name=op.f("fk_invoices_file_sha256_invoice_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
        sa.UniqueConstraint("onec_id", name=op.f("uq_invoices_onec_id")),
    )
    op.create_index(
        "ix_invoices_customer_list",
        "invoices",
        ["customer_inn", sa.literal_column("issued_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "ix_invoices_customer_number_key", "invoices", ["customer_inn", "number_key"], unique=False
    )
    op.create_index(op.f("ix_invoices_order_id"), "invoices", ["order_id"], unique=False)
    op.create_table(
        "invoice_download_links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("expires_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("used_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_download_links_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_download_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invoice_download_links_token_hash")),
    )
    op.create_index(
        op.f("ix_invoice_download_links_invoice_id"), "invoice_download_links", ["invoice_id"], unique=False
    )
    op.create_table(
        "invoice_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_key", sa.String(length=36), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("customer_inn", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("error_field", sa.String(length=40), nullable=True),
        sa.Column("done_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_requests_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_requests")),
        sa.UniqueConstraint(
            "order_id",
            "amount",
            "customer_inn",
            name=op.f("uq_invoice_requests_order_id_amount_customer_inn"),
        ),
        sa.UniqueConstraint("request_key", name=op.f("uq_invoice_requests_request_key")),
    )
    op.create_index(op.f("ix_invoice_requests_invoice_id"), "invoice_requests", ["invoice_id"], unique=False)
    op.create_index(
        "ix_invoice_requests_pending",
        "invoice_requests",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND parked_at IS NULL"),
        sqlite_where=sa.text("status = 'pending' AND parked_at IS NULL"),
    )
    op.create_table(
        "invoice_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("issued_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("customer_inn", sa.String(length=12), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("onec_data_version", sa.String(length=64), nullable=True),
        sa.Column(
            "received_at",
            models.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["file_sha256"],
            ["invoice_files.sha256"],
            name=op.f("fk_invoice_versions_file_sha256_invoice_files"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_versions_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_versions")),
        sa.UniqueConstraint("invoice_id", "version", name=op.f("uq_invoice_versions_invoice_id_version")),
    )
    op.create_index(
        op.f("ix_invoice_versions_file_sha256"), "invoice_versions", ["file_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_invoice_versions_file_sha256"), table_name="invoice_versions")
    op.drop_table("invoice_versions")
    op.drop_index(
        "ix_invoice_requests_pending",
        table_name="invoice_requests",
        postgresql_where=sa.text("status = 'pending' AND parked_at IS NULL"),
        sqlite_where=sa.text("status = 'pending' AND parked_at IS NULL"),
    )
    op.drop_index(op.f("ix_invoice_requests_invoice_id"), table_name="invoice_requests")
    op.drop_table("invoice_requests")
    op.drop_index(op.f("ix_invoice_download_links_invoice_id"), table_name="invoice_download_links")
    op.drop_table("invoice_download_links")
    op.drop_index(op.f("ix_invoices_order_id"), table_name="invoices")
    op.drop_index("ix_invoices_customer_number_key", table_name="invoices")
    op.drop_index("ix_invoices_customer_list", table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("invoice_files")
    op.drop_table("invoice_change_cursors")

"""mail registers: mail_messages, outgoing_letters; sep_confirmation_codes.source_message_id references mail_messages

Revision ID: 0003_mail
Revises: 0002_master_data
Create Date: 2026-11-25 09:25:32.611922
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0003_mail"
down_revision: str | Sequence[str] | None = "0002_master_data"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outgoing_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("business_key", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("to_name", sa.String(length=300), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column(
            "attachments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=300), nullable=False),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("smtp_response", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_letters")),
        sa.UniqueConstraint("business_key", name=op.f("uq_outgoing_letters_business_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outgoing_letters_message_id")),
    )
    op.create_table(
        "mail_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mailbox", sa.String(length=500), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="new", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("duplicate_of_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("received_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "fetched_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("application_number", sa.String(length=64), nullable=True),
        sa.Column("asset_inventory_number", sa.String(length=64), nullable=True),
        sa.Column("responsible_id", sa.String(length=64), nullable=True),
        sa.Column("match_reason", sa.Text(), nullable=True),
        sa.Column("processed_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["asset_inventory_number"],
            ["assets.inventory_number"],
            name=op.f("fk_mail_messages_asset_inventory_number_assets"),
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["mail_messages.id"],
            name=op.f("fk_mail_messages_duplicate_of_id_mail_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["responsible_id"], ["employees.id"], name=op.f("fk_mail_messages_responsible_id_employees")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_messages")),
        sa.UniqueConstraint(
            "mailbox", "uidvalidity", "uid", name=op.f("uq_mail_messages_mailbox_uidvalidity_uid")
        ),
    )
    op.create_index(
        op.f("ix_mail_messages_application_number"), "mail_messages", ["application_number"], unique=False
    )
    op.create_index(
        "ix_mail_messages_identity", "mail_messages", ["content_hash", "message_id"], unique=False
    )
    op.create_index("ix_mail_messages_status", "mail_messages", ["status"], unique=False)
    # Batch mode: SQLite (the embedded demo) adds a foreign key only by rebuilding the table.
    with op.batch_alter_table("sep_confirmation_codes") as batch:
        batch.create_foreign_key(
            op.f("fk_sep_confirmation_codes_source_message_id_mail_messages"),
            "mail_messages",
            ["source_message_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("sep_confirmation_codes") as batch:
        batch.drop_constraint(
            op.f("fk_sep_confirmation_codes_source_message_id_mail_messages"), type_="foreignkey"
        )
    op.drop_index("ix_mail_messages_status", table_name="mail_messages")
    op.drop_index("ix_mail_messages_identity", table_name="mail_messages")
    op.drop_index(op.f("ix_mail_messages_application_number"), table_name="mail_messages")
    op.drop_table("mail_messages")
    op.drop_table("outgoing_letters")

"""sep: counterparties registered in SEP, lease changes (termination, перенаём, end of lease), the
counterparty's ОГРН and address in master data

Revision ID: 0013_sep_seed
Revises: 0012_console
Create Date: 2026-12-03 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0013_sep_seed"
down_revision: str | Sequence[str] | None = "0012_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _stamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.add_column("counterparties", sa.Column("ogrn", sa.String(length=15), nullable=True))
    op.add_column("counterparties", sa.Column("address", sa.String(length=1000), nullable=True))
    op.create_table(
        "sep_counterparties",
        sa.Column("id", ID, nullable=False),
        sa.Column("inn", sa.String(length=12), nullable=False),
        sa.Column("kpp", sa.String(length=9), nullable=True),
        sa.Column("ogrn", sa.String(length=15), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("address", sa.String(length=1000), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("organization_inn", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("sep_id", sa.String(length=64), nullable=True),
        sa.Column("in_sep_since", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("request_status", sa.String(length=40), nullable=True),
        sa.Column("last_request_id", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=120), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sep_counterparties")),
        sa.UniqueConstraint("inn", name=op.f("uq_sep_counterparties_inn")),
    )
    op.create_table(
        "sep_lease_changes",
        sa.Column("id", ID, nullable=False),
        sa.Column("change_number", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("organization_inn", sa.String(length=12), nullable=False),
        sa.Column("lessee_inn", sa.String(length=12), nullable=False),
        sa.Column("new_lessee_inn", sa.String(length=12), nullable=True),
        sa.Column("document_name", sa.String(length=500), nullable=False),
        sa.Column("document_date", sa.Date(), nullable=False),
        sa.Column("epts", JSON, nullable=False),
        sa.Column("confirm_by", sa.Date(), nullable=False),
        sa.Column("notification_email", sa.String(length=320), nullable=False),
        sa.Column("application_number", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("parties", JSON, nullable=True),
        sa.Column("request_status", sa.String(length=40), nullable=True),
        sa.Column("last_request_id", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=120), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sep_lease_changes")),
        sa.UniqueConstraint("change_number", name=op.f("uq_sep_lease_changes_change_number")),
        sa.UniqueConstraint("application_number", name=op.f("uq_sep_lease_changes_application_number")),
    )
    # In a batch: SQLite (the embedded demo) alters constraints by copying the table.
    with op.batch_alter_table("sep_exchange_queue") as batch:
        batch.add_column(sa.Column("lease_change_id", ID, nullable=True))
        batch.add_column(sa.Column("counterparty_id", ID, nullable=True))
        batch.create_foreign_key(
            op.f("fk_sep_exchange_queue_lease_change_id_sep_lease_changes"),
            "sep_lease_changes",
            ["lease_change_id"],
            ["id"],
        )
        batch.create_foreign_key(
            op.f("fk_sep_exchange_queue_counterparty_id_sep_counterparties"),
            "sep_counterparties",
            ["counterparty_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("sep_exchange_queue") as batch:
        batch.drop_constraint(
            op.f("fk_sep_exchange_queue_counterparty_id_sep_counterparties"), type_="foreignkey"
        )
        batch.drop_constraint(
            op.f("fk_sep_exchange_queue_lease_change_id_sep_lease_changes"), type_="foreignkey"
        )
        batch.drop_column("counterparty_id")
        batch.drop_column("lease_change_id")
    op.drop_table("sep_lease_changes")
    op.drop_table("sep_counterparties")
    op.drop_column("counterparties", "address")
    op.drop_column("counterparties", "ogrn")

"""master data and SEP confirmation codes

Revision ID: 0002_master_data
Revises: 0001_foundation
Create Date: 2026-11-25 09:10:16.528483
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0002_master_data"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "counterparties",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("inn", sa.String(length=12), nullable=False),
        sa.Column("kpp", sa.String(length=9), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counterparties")),
        sa.UniqueConstraint("inn", "kpp", name=op.f("uq_counterparties_inn_kpp")),
    )
    op.create_table(
        "employees",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("bitrix24_user_id", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_employees")),
    )
    op.create_table(
        "organizations",
        sa.Column("inn", sa.String(length=12), nullable=False),
        sa.Column("kpp", sa.String(length=9), nullable=True),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("inn", name=op.f("pk_organizations")),
    )
    op.create_table(
        "tariffs",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("monthly_fee", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tariffs")),
    )
    op.create_table(
        "assets",
        sa.Column("inventory_number", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("vin", sa.String(length=17), nullable=True),
        sa.Column("epts", sa.String(length=15), nullable=True),
        sa.Column("responsible_id", sa.String(length=64), nullable=True),
        sa.Column("organization_inn", sa.String(length=12), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_inn"], ["organizations.inn"], name=op.f("fk_assets_organization_inn_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["responsible_id"], ["employees.id"], name=op.f("fk_assets_responsible_id_employees")
        ),
        sa.PrimaryKeyConstraint("inventory_number", name=op.f("pk_assets")),
    )
    op.create_index(op.f("ix_assets_epts"), "assets", ["epts"], unique=False)
    op.create_index(op.f("ix_assets_vin"), "assets", ["vin"], unique=False)
    op.create_table(
        "lease_contracts",
        sa.Column("number", sa.String(length=100), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("document_name", sa.String(length=500), nullable=False),
        sa.Column("lessee_inn", sa.String(length=12), nullable=False),
        sa.Column("lease_term_end", sa.Date(), nullable=False),
        sa.Column(
            "epts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("organization_inn", sa.String(length=12), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_inn"],
            ["organizations.inn"],
            name=op.f("fk_lease_contracts_organization_inn_organizations"),
        ),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_lease_contracts")),
    )
    op.create_table(
        "sep_settings",
        sa.Column("organization_inn", sa.String(length=12), nullable=False),
        sa.Column("technical_email", sa.String(length=320), nullable=True),
        sa.Column("responsible_id", sa.String(length=64), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["organization_inn"],
            ["organizations.inn"],
            name=op.f("fk_sep_settings_organization_inn_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["responsible_id"], ["employees.id"], name=op.f("fk_sep_settings_responsible_id_employees")
        ),
        sa.PrimaryKeyConstraint("organization_inn", name=op.f("pk_sep_settings")),
    )
    op.create_table(
        "subscribers",
        sa.Column("inn", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("tariff", sa.String(length=64), nullable=True),
        sa.Column("contract", sa.String(length=100), nullable=True),
        sa.Column("bitrix24_deal_id", sa.Integer(), nullable=True),
        sa.Column("responsible_id", sa.String(length=64), nullable=True),
        sa.Column(
            "updated_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["responsible_id"], ["employees.id"], name=op.f("fk_subscribers_responsible_id_employees")
        ),
        sa.ForeignKeyConstraint(["tariff"], ["tariffs.code"], name=op.f("fk_subscribers_tariff_tariffs")),
        sa.PrimaryKeyConstraint("inn", name=op.f("pk_subscribers")),
    )
    op.create_table(
        "sep_confirmation_codes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("application_number", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("epts", sa.String(length=15), nullable=True),
        sa.Column("vin", sa.String(length=17), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("source_message_id", sa.BigInteger(), nullable=True),
        sa.Column("asset_inventory_number", sa.String(length=64), nullable=True),
        sa.Column("responsible_id", sa.String(length=64), nullable=True),
        sa.Column("match_reason", sa.Text(), nullable=True),
        sa.Column("entered_by_hand", sa.Boolean(), nullable=False),
        sa.Column("used_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", models.base.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["asset_inventory_number"],
            ["assets.inventory_number"],
            name=op.f("fk_sep_confirmation_codes_asset_inventory_number_assets"),
        ),
        sa.ForeignKeyConstraint(
            ["responsible_id"],
            ["employees.id"],
            name=op.f("fk_sep_confirmation_codes_responsible_id_employees"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sep_confirmation_codes")),
        sa.UniqueConstraint(
            "application_number", "code", name=op.f("uq_sep_confirmation_codes_application_number_code")
        ),
    )
    op.create_index(
        op.f("ix_sep_confirmation_codes_application_number"),
        "sep_confirmation_codes",
        ["application_number"],
        unique=False,
    )


def downgrade() -> None:

    op.drop_index(op.f("ix_sep_confirmation_codes_application_number"), table_name="sep_confirmation_codes")
    op.drop_table("sep_confirmation_codes")
    op.drop_table("subscribers")
    op.drop_table("sep_settings")
    op.drop_table("lease_contracts")
    op.drop_index(op.f("ix_assets_vin"), table_name="assets")
    op.drop_index(op.f("ix_assets_epts"), table_name="assets")
    op.drop_table("assets")
    op.drop_table("tariffs")
    op.drop_table("organizations")
    op.drop_table("employees")
    op.drop_table("counterparties")

"""machinery: next_step_at on every step register, canary queues, created_at indexes of the log registers

Revision ID: 0009_machinery
Revises: 0008_invoices
Create Date: 2026-12-02 17:05:55.098503
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0009_machinery"
down_revision: str | Sequence[str] | None = "0008_invoices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every register whose rows a step works on (models.steps.StepMixin) at this revision.
STEP_TABLES = (
    "accruals",
    "act_crm_actions",
    "act_deadlines",
    "act_deals",
    "act_form_requests",
    "acts",
    "billing_deadlines",
    "canaries",
    "crm_deal_marks",
    "edo_documents",
    "edo_packages",
    "invoice_requests",
    "mail_messages",
    "outgoing_letters",
    "payments",
    "sep_exchange_queue",
    "subscriber_requests",
)
# The log registers the sweeper purges by age.
LOG_TABLES = ("dead_letters", "exchange_log", "outbox", "sep_exchange_errors", "sep_exchange_history")
IN_FLIGHT = "next_step_at IS NOT NULL"


def upgrade() -> None:
    for table in STEP_TABLES:
        op.add_column(table, sa.Column("next_step_at", models.base.UTCDateTime(timezone=True), nullable=True))
        op.create_index(
            f"ix_{table}_next_step_at",
            table,
            ["next_step_at"],
            unique=False,
            postgresql_where=sa.text(IN_FLIGHT),
            sqlite_where=sa.text(IN_FLIGHT),
        )
    for table in LOG_TABLES:
        op.create_index(f"ix_{table}_created_at", table, ["created_at"], unique=False)
    op.add_column("canaries", sa.Column("queue", sa.String(length=40), server_default="ops", nullable=False))
    op.create_index("ix_canaries_created_at", "canaries", ["created_at"], unique=False)
    op.create_index("ix_canaries_queue_completed", "canaries", ["queue", "completed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_canaries_queue_completed", table_name="canaries")
    op.drop_index("ix_canaries_created_at", table_name="canaries")
    op.drop_column("canaries", "queue")
    for table in LOG_TABLES:
        op.drop_index(f"ix_{table}_created_at", table_name=table)
    for table in STEP_TABLES:
        op.drop_index(f"ix_{table}_next_step_at", table_name=table)
        op.drop_column(table, "next_step_at")

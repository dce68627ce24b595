"""What a migration does to a register that a step works on (``models.steps.StepMixin``).

Since ``0009_machinery`` every step register carries the due time of its next step, with a partial
index the sweeper's query and the overdue gauge read; a migration that adds a step register adds
them with :func:`add_next_step_at` (the model declares the same, so autogenerate sees no drift).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op

import models.base

IN_FLIGHT = "next_step_at IS NOT NULL"


def add_next_step_at(tables: Iterable[str]) -> None:
    for table in tables:
        op.add_column(table, sa.Column("next_step_at", models.base.UTCDateTime(timezone=True), nullable=True))
        op.create_index(
            f"ix_{table}_next_step_at",
            table,
            ["next_step_at"],
            unique=False,
            postgresql_where=sa.text(IN_FLIGHT),
            sqlite_where=sa.text(IN_FLIGHT),
        )


def drop_next_step_at(tables: Iterable[str]) -> None:
    for table in tables:
        op.drop_index(f"ix_{table}_next_step_at", table_name=table)
        op.drop_column(table, "next_step_at")

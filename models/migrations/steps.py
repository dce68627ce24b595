"""What migrations share about step registers (``models.steps.StepMixin``).

Revisions call these helpers, so a helper's effect is part of every revision that uses it: change
one only in a way every such revision may replay (a new shape is a new helper).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op

import models.base

# The partial index covers the rows waiting for a step only: terminal rows are most of a register.
IN_FLIGHT = "next_step_at IS NOT NULL"


def add_next_step_at(tables: Iterable[str]) -> None:
    """Give each step register the due time of its next step, indexed where one is due."""
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
    """Undo ``add_next_step_at``."""
    for table in tables:
        op.drop_index(f"ix_{table}_next_step_at", table_name=table)
        op.drop_column(table, "next_step_at")

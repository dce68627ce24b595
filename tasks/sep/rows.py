"""Writing the SEP registers' rows: one kept under its business key, one locked for a result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

Row = TypeVar("Row")


def store(session: Session, row: Row | None, make: Callable[..., Row], values: dict[str, Any]) -> Row:
    """``row`` refilled with ``values``, or a new one made of them (and added): a register row kept
    under its business key, written again when asked again."""
    if row is None:
        row = make(**values)
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    session.flush()
    return row


def locked(session: Session, model: type[Row], row_id: int | None) -> Row:
    """The row a request is about, locked for the apply step's transaction."""
    row = session.get(model, row_id, with_for_update=True)
    if row is None:
        raise LookupError(f"{getattr(model, '__tablename__', model)} row {row_id} is gone")
    return row

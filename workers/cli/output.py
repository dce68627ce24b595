"""What every ``obmen`` command that reads or writes the registers shares: a session, and tables."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from config.logging import configure_logging
from config.settings import get_settings


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as a plain text table of ``columns``, long cells cut at 60 characters."""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text if len(text) <= 60 else text[:59] + "…"

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def publishing() -> None:
    """Commands that enqueue publish after their commit: the configured Celery app must be loaded."""
    from workers.app import app  # noqa: F401

    configure_logging(get_settings())


@contextmanager
def register_session() -> Iterator[Session]:
    """A transaction on the registers, for a command whose actions publish through the outbox."""
    from models.db import session_scope

    publishing()
    with session_scope() as session:
        yield session

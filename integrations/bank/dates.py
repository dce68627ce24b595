"""When a payment may have been made: one rule for the JSON API (``paid_at``) and OSMP (``txn_date``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def payment_date_problem(paid_at: datetime, now: datetime, tolerance_s: int) -> str | None:
    """Why ``paid_at`` cannot be when a payment was made, or None when it can.

    Never raises: a date near year 1 or 9999 is refused by its year before any arithmetic, which
    would overflow there (converting 0001-01-01 03:00+03:00 to UTC leaves the calendar).
    """
    if paid_at.year < EARLIEST.year:
        return "is before 2000"
    if paid_at.year > now.year + 1:
        return "is in the future"
    if paid_at.utcoffset() is None:
        return "has no time zone"
    if paid_at < EARLIEST:
        return "is before 2000"
    if paid_at > now + timedelta(seconds=tolerance_s):
        return "is in the future"
    return None

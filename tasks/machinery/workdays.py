"""Working days by the official Russian production calendar (производственный календарь), in Moscow time.

The ``holidays`` package carries the government's decrees: public holidays, the days off transferred
to other dates (2025-05-02, 2025-12-31 …) and the Saturdays made working days in exchange
(2025-11-01 …). A year's transfers are decreed the autumn before, so keep the package current;
for a year it does not know yet it applies the statutory holidays only.

Every deadline is computed in Europe/Moscow, the company's business time zone: an act sent at
00:30 Moscow time on a Tuesday was sent on Tuesday, although it was still Monday in UTC.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

MOSCOW = ZoneInfo("Europe/Moscow")
_lock = threading.Lock()


@lru_cache(maxsize=64)
def _year(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(days off that are not weekends or fall on them, weekend days made working) of ``year``."""
    with _lock:
        calendar = holidays.country_holidays("RU", years=year)
        return frozenset(calendar), frozenset(getattr(calendar, "weekend_workdays", ()))


def is_working_day(day: date) -> bool:
    days_off, working_weekends = _year(day.year)
    if day in working_weekends:
        return True
    return day.weekday() < 5 and day not in days_off


def add_working_days(day: date, count: int) -> date:
    """The ``count``-th working day after ``day`` (``day`` itself is not counted)."""
    if count < 1:
        raise ValueError("count the working days from 1")
    found = 0
    while found < count:
        day += timedelta(days=1)
        if is_working_day(day):
            found += 1
    return day


def working_days_between(start: date, end: date) -> int:
    """Working days in (start, end]: how many of the allowed days have passed by ``end``."""
    count = 0
    day = start
    while day < end:
        day += timedelta(days=1)
        count += is_working_day(day)
    return count


def moscow_date(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place in a deadline; give it a time zone")
    return moment.astimezone(MOSCOW).date()


def start_of(day: date) -> datetime:
    """Midnight Moscow time at the start of ``day``, in UTC."""
    return datetime.combine(day, time(0), MOSCOW).astimezone(UTC)


def working_deadline(start: datetime, working_days: int) -> datetime:
    """When ``working_days`` full working days after the Moscow day of ``start`` are over (UTC).

    The day of ``start`` does not count, however early it was: sent on Monday, the five days are
    Tuesday to the next Monday, and the deadline is Tuesday 00:00 Moscow time.
    """
    return start_of(add_working_days(moscow_date(start), working_days) + timedelta(days=1))


def end_of_next_working_day(now: datetime, hour: int = 18) -> datetime:
    """``hour`` o'clock Moscow time on the next working day after ``now`` (a task's due time)."""
    day = add_working_days(moscow_date(now), 1)
    return datetime.combine(day, time(hour), MOSCOW).astimezone(UTC)

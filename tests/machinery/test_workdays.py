"""Working-day deadlines by the Russian production calendar, in Moscow time, with a frozen clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine

from models.base import utcnow
from tasks.machinery.workdays import (
    MOSCOW,
    add_working_days,
    end_of_next_working_day,
    is_working_day,
    moscow_date,
    working_days_between,
    working_deadline,
)


def msk(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=MOSCOW)


@pytest.mark.parametrize(
    ("day", "working", "why"),
    [
        (date(2025, 10, 10), True, "an ordinary Friday"),
        (date(2025, 10, 11), False, "a Saturday"),
        (date(2025, 6, 12), False, "Russia Day"),
        (date(2025, 6, 13), False, "Friday off, transferred from Saturday 8 March"),
        (date(2025, 5, 2), False, "Friday off, transferred from Saturday 4 January"),
        (date(2025, 11, 1), True, "a working Saturday (exchanged for Monday 3 November)"),
        (date(2025, 11, 3), False, "Monday off, transferred from Saturday 1 November"),
        (date(2025, 12, 31), False, "New Year's Eve 2025, transferred from 5 January"),
        (date(2026, 1, 8), False, "New Year holidays"),
        (date(2026, 1, 9), False, "Friday off, transferred from Saturday 3 January 2026"),
        (date(2026, 1, 12), True, "the first working day of 2026"),
        (date(2024, 12, 28), True, "a working Saturday of 2024"),
    ],
)
def test_the_production_calendar(day: date, working: bool, why: str) -> None:
    assert is_working_day(day) is working, why


def test_weekends_are_skipped() -> None:
    # Sent on Friday 10 October 2025: Mon 13 … Fri 17 are the five days.
    assert add_working_days(date(2025, 10, 10), 5) == date(2025, 10, 17)
    assert working_deadline(msk(2025, 10, 10, 15, 0), 5) == msk(2025, 10, 18, 0, 0)


def test_a_public_holiday_and_its_transferred_day_off() -> None:
    # Sent on Wednesday 11 June 2025: 12 (Russia Day) and 13 (transferred) are off, then a weekend.
    assert add_working_days(date(2025, 6, 11), 5) == date(2025, 6, 20)
    assert working_days_between(date(2025, 6, 11), date(2025, 6, 16)) == 1


def test_a_working_saturday_counts() -> None:
    # Sent on Thursday 30 October 2025: Fri 31, Sat 1 Nov (working), [Mon 3, Tue 4 off], Wed 5, Thu 6, Fri 7.
    assert add_working_days(date(2025, 10, 30), 5) == date(2025, 11, 7)
    assert working_deadline(msk(2025, 10, 30, 12, 0), 5) == msk(2025, 11, 8, 0, 0)
    # Without the working Saturday it would have been Monday 10 November.
    assert working_days_between(date(2025, 10, 31), date(2025, 11, 2)) == 1


def test_new_year() -> None:
    # Sent on Monday 29 December 2025: Tue 30, then 31 Dec – 11 Jan off, then 12, 13, 14, 15 January.
    assert add_working_days(date(2025, 12, 29), 5) == date(2026, 1, 15)
    assert working_deadline(msk(2025, 12, 29, 17, 0), 5) == msk(2026, 1, 16, 0, 0)


def test_sent_on_a_day_off_counts_from_the_next_working_day() -> None:
    assert add_working_days(date(2025, 10, 11), 1) == date(2025, 10, 13)  # Saturday → Monday


def test_just_after_midnight_in_moscow_is_the_next_day_although_utc_is_still_yesterday() -> None:
    # 21:30 UTC on Monday 27 October 2025 is 00:30 on Tuesday in Moscow (UTC+3).
    with time_machine.travel(datetime(2025, 10, 27, 21, 30, tzinfo=UTC), tick=False):
        now = utcnow()
        assert now.date() == date(2025, 10, 27)
        assert moscow_date(now) == date(2025, 10, 28)
        # Tuesday does not count: Wed 29, Thu 30, Fri 31, Sat 1 Nov (working), Wed 5 Nov.
        assert working_deadline(now, 5) == msk(2025, 11, 6, 0, 0)


def test_one_second_before_midnight_in_moscow_is_still_that_day() -> None:
    # 20:59:59 UTC on Monday 27 October 2025 is 23:59:59 Monday in Moscow.
    with time_machine.travel(datetime(2025, 10, 27, 20, 59, 59, tzinfo=UTC), tick=False):
        now = utcnow()
        assert moscow_date(now) == date(2025, 10, 27)
        # Tue 28, Wed 29, Thu 30, Fri 31, Sat 1 Nov (working) → due at 00:00 Sunday 2 November Moscow.
        due = working_deadline(now, 5)
        assert due == msk(2025, 11, 2, 0, 0)
        assert due == datetime(2025, 11, 1, 21, 0, tzinfo=UTC)


def test_new_years_eve_at_midnight_moscow_against_utc() -> None:
    # 21:00:00 UTC on 30 December 2025 is already 31 December (a day off) in Moscow.
    with time_machine.travel(datetime(2025, 12, 30, 21, 0, tzinfo=UTC), tick=False):
        assert moscow_date(utcnow()) == date(2025, 12, 31)
        assert working_deadline(utcnow(), 5) == msk(2026, 1, 17, 0, 0)  # 12–16 January
    with time_machine.travel(datetime(2025, 12, 30, 20, 59, 59, tzinfo=UTC), tick=False):
        assert working_deadline(utcnow(), 5) == msk(2026, 1, 17, 0, 0)  # sent on the 30th: same five


def test_a_task_is_due_at_the_end_of_the_next_working_day() -> None:
    # Fired on Friday 2 May 2025 (a day off): the next working day is Monday 5 May.
    assert end_of_next_working_day(msk(2025, 5, 2, 10, 0)) == msk(2025, 5, 5, 18, 0)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        working_deadline(datetime(2025, 10, 10, 12, 0), 5)

"""СБИС wire details: dates, event names, document states.

Dates travel as ``ДД.ММ.ГГГГ`` and date-times as ``ДД.ММ.ГГГГ ЧЧ.ММ.СС`` (dots in the time too), in
Moscow time, where Saby's servers run. The feed names events in words; what they mean for an act
is decided here, in one place. A full table of state codes is not public: only «7» (completed:
the counterparty signed) is documented, so the event names decide, and the codes are kept for people.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

SBIS_TZ = ZoneInfo("Europe/Moscow")
DATE_FORMAT = "%d.%m.%Y"
DATETIME_FORMAT = "%d.%m.%Y %H.%M.%S"

# What an event means for the act, from its Название (СБИС words them «Утверждение», «Отклонение» …).
EVENT_SIGNED = "signed"
EVENT_REFUSED = "refused"
EVENT_SENT = "sent"
EVENT_DELIVERED = "delivered"
EVENT_OTHER = "other"

_EVENT_WORDS: tuple[tuple[str, str], ...] = (
    ("отклон", EVENT_REFUSED),
    ("отказ", EVENT_REFUSED),
    ("утвержд", EVENT_SIGNED),
    ("подписан", EVENT_SIGNED),
    ("доставк", EVENT_DELIVERED),
    ("получен", EVENT_DELIVERED),
    ("отправк", EVENT_SENT),
)


def format_date(day: date) -> str:
    return day.strftime(DATE_FORMAT)


def format_datetime(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("СБИС date-times are Moscow time; give the moment a time zone")
    return moment.astimezone(SBIS_TZ).strftime(DATETIME_FORMAT)


def parse_datetime(text: str) -> datetime:
    """``ДД.ММ.ГГГГ ЧЧ.ММ.СС`` (Moscow) as an aware UTC datetime; ``ValueError`` names the format."""
    try:
        naive = datetime.strptime(text.strip(), DATETIME_FORMAT)
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"СБИС date-time {text!r} is not ДД.ММ.ГГГГ ЧЧ.ММ.СС") from exc
    return naive.replace(tzinfo=SBIS_TZ).astimezone(UTC)


def event_kind(name: str) -> str:
    lowered = name.lower()
    for word, kind in _EVENT_WORDS:
        if word in lowered:
            return kind
    return EVENT_OTHER

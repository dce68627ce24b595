"""The one retry policy, declared once.

Everything a step raises is retried with capped exponential backoff, except the errors listed in
``NEVER_RETRY``: retrying a wrong request or a programming error only repeats it. A retry never
comes sooner than its computed delay (jitter only adds), and never later than the cap, which the
self-check keeps below the visibility timeout.
"""

from __future__ import annotations

import random

from pydantic import ValidationError

from config.settings import Settings, get_settings
from integrations.errors import PermanentError

NEVER_RETRY: tuple[type[BaseException], ...] = (
    PermanentError,
    ValidationError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    LookupError,
    NotImplementedError,
)


def is_retryable(exc: BaseException) -> bool:
    return not isinstance(exc, NEVER_RETRY)


def countdown(attempt: int, settings: Settings | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): base * 2^(n-1), capped, plus up to 25 % jitter."""
    s = settings or get_settings()
    base = min(float(s.retry_backoff_max_s), s.retry_backoff_s * 2.0 ** max(attempt - 1, 0))
    return min(float(s.retry_backoff_max_s), base * random.uniform(1.0, 1.25))


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

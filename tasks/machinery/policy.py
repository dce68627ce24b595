"""The one retry policy, declared once, and the ways work comes back after a failure.

Everything a step raises is retried with capped exponential backoff, except the errors listed in
``NEVER_RETRY``: retrying a wrong request or a programming error only repeats it. A retry never
comes sooner than its computed delay (jitter only adds), and never later than the cap, which the
self-check keeps below the visibility timeout.

Work comes back by exactly one of these paths; a new flow uses them and adds none:

=====================  ==========================================  =====================================
path                   when                                        how
=====================  ==========================================  =====================================
task retry             a step or entry raised a retryable error    ``task.retry(countdown=countdown(n))``
                       (timeout, 5xx, a database blip)             (``steps._failed``); the attempt is
                                                                   counted in the row; parked at
                                                                   ``OBMEN_MAX_ATTEMPTS``
outbox, delayed        the step itself knows when to come back:    ``enqueue(..., delay_s=…)`` or
                       a throttled portal (``RateLimited``: the    ``not_before`` in the step's own
                       attempt is given back), a SEP poll before   transaction; near delays become
                       its time, an uncertain SEP send             countdowns, far ones wait as rows
next beat run          a beat job failed (mail fetch, the СБИС      nothing: its cursor did not move,
                       feed, a reconciliation)                     the next period reads from there
sweeper                a message was lost (worker killed, Redis    ``ops.sweep`` re-drives a row
                       restarted without its data)                 ``OBMEN_LOST_AFTER_S`` past its
                                                                   ``next_step_at`` (held by no step,
                                                                   queue drained), else past its
                                                                   step's ``stale_after_s``
re-drive (a person)    a row was parked: its error needs a fix     ``obmen redrive`` / ``POST
                       (master data, a rejected request)           /ops/redrive`` un-parks and enqueues
=====================  ==========================================  =====================================
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

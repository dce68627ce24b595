"""The exchange record: what every client reports for each request it makes.

Clients take a ``recorder`` callable and hand it an :class:`Exchange` per request, success or not;
the task layer writes it to the ``exchange_log`` register in its own transaction, so the log
survives a step that rolls back. Integrations stay free of the database and of Celery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

BODY_LIMIT = 1_000_000
SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "x-sbissessionid", "x-sbisaccesstoken", "x-obmen-signature"}
)


@dataclass
class Exchange:
    system: str
    operation: str
    url: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str | None = None
    response_status: int | None = None
    response_body: str | None = None
    duration_ms: float | None = None
    error: str | None = None
    correlation_id: str | None = None
    business_key: str | None = None
    direction: str = "out"


Recorder = Callable[[Exchange], None]


def discard(_: Exchange) -> None:
    """A recorder for callers that keep no log (the sandbox's own checks, ad-hoc scripts)."""


def redact(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def clip(body: bytes | str | None) -> str | None:
    if body is None:
        return None
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + f"\n…[{len(text) - BODY_LIMIT} chars cut]"


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    yield lambda: round((time.perf_counter() - start) * 1000, 3)

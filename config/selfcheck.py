"""Start-up self-check: refuse to run with a configuration that loses or doubles work.

Each rule names the failure it prevents; see ``../docs/operations.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

from config.celery import QUEUE_NAMES, QUEUE_URLS
from config.settings import Settings

MIN_KOMBU = (5, 4)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


# What obmen's state lives on. Redis is more than the broker (redbeat's lock, the Bitrix24 bucket,
# 1C's session leases); the registers use Postgres features (ON CONFLICT, SKIP LOCKED).
BROKER_SCHEMES = ("redis", "rediss")
DATABASE_SCHEMES = ("postgresql", "postgresql+psycopg")
# The embedded demo only: an in-process broker and SQLite.
EMBEDDED_BROKER_SCHEMES = ("memory",)
EMBEDDED_DATABASE_SCHEMES = ("sqlite",)


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def store_problems(settings: Settings) -> list[str]:
    """The broker and the register store must be ones obmen runs on, or nothing else can work."""
    found: list[str] = []
    broker = _scheme(settings.broker_url)
    if broker not in BROKER_SCHEMES + EMBEDDED_BROKER_SCHEMES:
        found.append(
            f"OBMEN_BROKER_URL uses {broker or 'no'}:// ; obmen runs on Redis only (redis:// or rediss://): "
            "beat's lock, the outbox relay's publishing and the rate limits keep their state in Redis"
        )
    database = _scheme(settings.database_url)
    if database not in DATABASE_SCHEMES + EMBEDDED_DATABASE_SCHEMES:
        found.append(
            f"OBMEN_DATABASE_URL uses {database or 'no'}:// ; the registers need PostgreSQL "
            "(postgresql://…; sqlite:// only in the embedded demo)"
        )
    return found


def url_problems(settings: Settings, queues: Iterable[str]) -> list[str]:
    """The addresses the steps of ``queues`` call, each missing one named by its variable."""
    found: list[str] = []
    for queue in queues:
        for name in QUEUE_URLS.get(queue, ()):
            if not getattr(settings, name):
                found.append(
                    f"OBMEN_{name.upper()} is not set, and the {queue!r} queue's steps call it "
                    "(there is no default address; point it at the system, or at `obmen sandbox`)"
                )
    return found


def problems(
    settings: Settings,
    conf: Mapping[str, Any],
    kombu_version: str | None = None,
    queues: Iterable[str] = QUEUE_NAMES,
) -> list[str]:
    """Every rule the configuration breaks; ``queues`` are the queues the process will consume."""
    found = store_problems(settings) + url_problems(settings, queues)

    for key in ("task_serializer", "result_serializer"):
        if conf.get(key) != "json":
            found.append(
                f"{key} is {conf.get(key)!r}; only 'json' is allowed (pickle from the broker runs code)"
            )
    for key in ("accept_content", "result_accept_content"):
        if set(conf.get(key) or ()) != {"json"}:
            found.append(f"{key} is {conf.get(key)!r}; it must be exactly ['json']")

    vt = settings.visibility_timeout_s
    longest = settings.max_countdown_s + settings.task_time_limit_s
    if longest >= vt:
        found.append(
            f"longest countdown ({settings.max_countdown_s} s) + hard time limit "
            f"({settings.task_time_limit_s} s) = {longest} s is not below the visibility timeout "
            f"({vt} s): Redis would hand waiting or running tasks to a second worker and they would run twice"
        )
    for key in ("visibility_timeout",):
        if conf.get(key) not in (None, vt):
            found.append(f"{key} ({conf.get(key)}) differs from OBMEN_VISIBILITY_TIMEOUT_S ({vt})")
    transport_vt = (conf.get("broker_transport_options") or {}).get("visibility_timeout")
    if transport_vt is not None and transport_vt != vt:
        found.append(f"broker_transport_options.visibility_timeout ({transport_vt}) differs from {vt}")

    if settings.stale_after_s <= settings.retry_backoff_max_s * 1.25:
        found.append(
            f"OBMEN_STALE_AFTER_S ({settings.stale_after_s} s) must exceed the longest retry delay "
            f"({settings.retry_backoff_max_s * 1.25:.0f} s), or the sweeper re-drives rows that are only waiting"
        )
    if settings.task_soft_time_limit_s >= settings.task_time_limit_s:
        found.append(
            f"soft time limit ({settings.task_soft_time_limit_s} s) must be below the hard limit "
            f"({settings.task_time_limit_s} s), or tasks are killed without a chance to clean up"
        )
    deadlines = {
        "OBMEN_SEP_OPERATION_TIMEOUT_S": settings.sep_operation_timeout_s,
        "OBMEN_SYNERDOCS_DEADLINE_S": settings.synerdocs_deadline_s,
        "OBMEN_BITRIX24_TIMEOUT_S": settings.bitrix24_timeout_s,
        "OBMEN_SBIS_TIMEOUT_S": settings.sbis_timeout_s,
        "OBMEN_ONEC_TIMEOUT_S": settings.onec_timeout_s,
        "OBMEN_MAIL_TIMEOUT_S": settings.mail_timeout_s,
    }
    for name, deadline in deadlines.items():
        if deadline >= settings.task_soft_time_limit_s:
            found.append(
                f"{name} ({deadline} s) must be below the soft time limit ({settings.task_soft_time_limit_s} s): "
                "a call that outlives it is cut by Celery, not by its deadline, with no typed error and no "
                "exchange_log row"
            )
    if not conf.get("task_acks_late") or not conf.get("task_reject_on_worker_lost"):
        found.append(
            "task_acks_late and task_reject_on_worker_lost must both be on: otherwise a killed worker "
            "acknowledges the message it was working on and the step is lost"
        )
    if conf.get("worker_prefetch_multiplier") != 1:
        found.append("worker_prefetch_multiplier must be 1: prefetched messages die with their worker")
    if not conf.get("worker_eta_task_limit"):
        found.append(
            "worker_eta_task_limit must be set: countdown tasks ignore prefetch and can OOM a worker"
        )
    if conf.get("task_create_missing_queues", True):
        found.append(
            "task_create_missing_queues must be off: a mistyped route would fill a queue nobody reads"
        )

    for name, entry in (conf.get("beat_schedule") or {}).items():
        period = entry.get("schedule")
        expires = (entry.get("options") or {}).get("expires")
        if isinstance(period, int | float) and (expires is None or expires >= period):
            found.append(
                f"beat entry {name!r}: expires ({expires}) must be set and below its period ({period} s)"
            )

    if kombu_version is None:
        kombu_version = metadata.version("kombu")
    if _version(kombu_version) < MIN_KOMBU:
        found.append(
            f"kombu {kombu_version} is older than 5.4: workers stop consuming after a Redis reconnect"
        )
    return found


class ConfigurationRefused(SystemExit):
    def __init__(self, found: list[str]) -> None:
        lines = "\n".join(f"  - {p}" for p in found)
        super().__init__(
            f"obmen refuses to start; the configuration would fail, lose or double work:\n{lines}"
        )


def enforce(settings: Settings, conf: Mapping[str, Any], queues: Iterable[str] = QUEUE_NAMES) -> None:
    found = problems(settings, conf, queues=queues)
    if found:
        raise ConfigurationRefused(found)

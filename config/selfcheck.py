"""Start-up self-check: refuse to run with a configuration that loses or doubles work.

Each rule names the failure it prevents; see ``../docs/operations.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from config.settings import Settings

MIN_KOMBU = (5, 4)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def problems(settings: Settings, conf: Mapping[str, Any], kombu_version: str | None = None) -> list[str]:
    found: list[str] = []

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
        super().__init__(f"obmen refuses to start; the configuration would lose or double work:\n{lines}")


def enforce(settings: Settings, conf: Mapping[str, Any]) -> None:
    found = problems(settings, conf)
    if found:
        raise ConfigurationRefused(found)

"""The Celery app: ``celery -A workers.app worker|beat|flower`` and ``obmen worker|beat`` use it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import structlog
from celery import Celery, signals

import tasks  # noqa: F401  (registers every task with this app)
from config.celery import celery_config
from config.logging import configure_logging
from config.selfcheck import enforce
from config.settings import get_settings
from models.db import dispose_engines
from tasks.machinery import request_id
from workers import metrics
from workers.timers import CompactTimers

settings = get_settings()

app = Celery("obmen", set_as_current=True)
# Threads (the gateway's publisher, the demo) must find this app, not a default amqp one.
app.set_default()
app.conf.update(celery_config(settings))
# Every message no task can run becomes a dead letter (Celery would log it, or crash on it).
app.conf.worker_consumer = "workers.consumer:DeadLetteringConsumer"
# A finished task's time-limit timers leave the main process at once, not five minutes later.
app.steps["worker"].add(CompactTimers)


def require_flower_auth(argv: list[str]) -> None:
    """Flower reads ``FLOWER_*`` variables; fill basic auth from ours, and refuse to run open."""
    if settings.flower_basic_auth is not None:
        os.environ.setdefault("FLOWER_BASIC_AUTH", settings.flower_basic_auth.get_secret_value())
    given = " ".join(argv)
    if not (
        os.environ.get("FLOWER_BASIC_AUTH")
        or os.environ.get("FLOWER_AUTH")
        or any(option in given for option in ("--basic-auth", "--basic_auth", "--auth"))
    ):
        raise SystemExit(
            "obmen refuses to start Flower without authentication: set OBMEN_FLOWER_BASIC_AUTH=user:password "
            "(or FLOWER_AUTH with an OAuth provider, see docs/operations.md)"
        )


# `celery -A workers.app flower` imports this module first: the same rule holds for it.
if "flower" in sys.argv[1:]:
    require_flower_auth(sys.argv)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(settings)


@signals.worker_init.connect
def _self_check_worker(**_: Any) -> None:
    enforce(settings, app.conf, queues=list(app.amqp.queues.consume_from))
    if settings.worker_metrics_port is not None:
        metrics.start_exporter(settings.worker_metrics_port)


@signals.beat_init.connect
def _self_check_beat(**_: Any) -> None:
    enforce(settings, app.conf, queues=())


@signals.worker_ready.connect
@signals.heartbeat_sent.connect
def _ready(**_: Any) -> None:
    """The ready file is touched when the worker is ready and at every heartbeat (2 s) of its main
    loop: a probe that finds it fresh knows the worker consumes (``obmen healthcheck``)."""
    if settings.worker_ready_file:
        Path(settings.worker_ready_file).touch()


@signals.worker_shutdown.connect
def _not_ready(**_: Any) -> None:
    if settings.worker_ready_file:
        Path(settings.worker_ready_file).unlink(missing_ok=True)
    metrics.stop_exporter()


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    dispose_engines()


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        task_id=task_id, task_name=getattr(task, "name", None), **request_id.of_task(task)
    )


@signals.task_postrun.connect
def _unbind_task(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()

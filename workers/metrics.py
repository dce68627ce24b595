"""Task metrics of a worker, for Prometheus: counted in every pool process, served by the worker.

Why a worker-side exporter (and not celery-exporter or Flower's metrics): those read Celery's event
stream, which Redis carries as fire-and-forget pub/sub — events are lost whenever the exporter is
away or behind, and the stream knows nothing of obmen's outcomes (a step that *parked* its row or
was *deferred* by a throttled portal returns normally). Counting in the worker loses nothing, sees
those outcomes, and gives Prometheus one target per worker, so a worker that is down is a failed
scrape (``up == 0``) rather than a silence.

How: with ``OBMEN_WORKER_METRICS_PORT`` set, the worker's main process switches ``prometheus_client``
to its multiprocess mode before the pool forks (a fresh directory of its own), every pool process
counts into its own files through Celery's signals, and the main process serves their sum on the port.

The queue wait is measured from the time a message was published (the ``obmen_published_at``
header every obmen publisher adds) or, for a countdown, from its due time, to the moment a pool
process starts it. Messages from publishers that do not add the header count no wait.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import datetime
from typing import Any

from celery import signals
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector

from tasks.machinery.steps import Outcome

PUBLISHED_AT = "obmen_published_at"
RUNTIME_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class TaskMetrics:
    """The families a worker exports; every one labelled by task name (queue, for the wait)."""

    def __init__(self) -> None:
        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, ["task"], registry=None)

        self.started = counter("obmen_task_started", "Tasks a pool process started")
        self.succeeded = counter("obmen_task_succeeded", "Tasks that returned (whatever their outcome)")
        self.failed = counter("obmen_task_failed", "Tasks that raised and will not be retried by Celery")
        self.retried = counter("obmen_task_retried", "Tasks that asked Celery for a retry")
        self.outcomes = {
            Outcome.PARKED.value: counter("obmen_task_parked", "Steps that parked their row"),
            Outcome.DEFERRED.value: counter(
                "obmen_task_deferred", "Steps deferred by a throttled service (no attempt used)"
            ),
            Outcome.REJECTED.value: counter(
                "obmen_task_rejected", "Tasks whose arguments became a dead letter"
            ),
        }
        self.runtime = Histogram(
            "obmen_task_runtime_seconds",
            "Run time of a task",
            ["task"],
            buckets=RUNTIME_BUCKETS,
            registry=None,
        )
        self.queue_wait = Histogram(
            "obmen_task_queue_wait_seconds",
            "From publication (or a countdown's due time) to the start of a task",
            ["queue", "task"],
            buckets=WAIT_BUCKETS,
            registry=None,
        )
        self._started_at: dict[str, float] = {}

    def families(self) -> list[Counter | Histogram]:
        return [
            self.started,
            self.succeeded,
            self.failed,
            self.retried,
            *self.outcomes.values(),
            self.runtime,
            self.queue_wait,
        ]

    def started_task(self, task_id: str, name: str, request: Any) -> None:
        now = time.time()
        self._started_at[task_id] = time.monotonic()
        self.started.labels(name).inc()
        published = _number(getattr(request, PUBLISHED_AT, None))
        if published is None:
            return
        due = _timestamp(getattr(request, "eta", None))
        queue = (getattr(request, "delivery_info", None) or {}).get("routing_key") or ""
        self.queue_wait.labels(queue, name).observe(max(0.0, now - max(published, due or 0.0)))

    def finished_task(self, task_id: str, name: str, state: str | None, retval: Any) -> None:
        began = self._started_at.pop(task_id, None)
        if began is not None:
            self.runtime.labels(name).observe(time.monotonic() - began)
        if state == "RETRY":
            self.retried.labels(name).inc()
        elif state == "SUCCESS":
            self.succeeded.labels(name).inc()
            # A step returns its outcome; a batched step's message, each outcome's count of rows.
            counts = retval if isinstance(retval, dict) else {retval: 1} if isinstance(retval, str) else {}
            for value, n in counts.items():
                outcome = self.outcomes.get(value)
                if outcome is not None and isinstance(n, int):
                    outcome.labels(name).inc(n)
        else:
            self.failed.labels(name).inc()


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


_metrics: TaskMetrics | None = None
_directory: str | None = None


def start_exporter(port: int) -> None:
    """In the worker's main process, before the pool forks: count in shared files, serve them on ``port``."""
    global _metrics, _directory
    _directory = tempfile.mkdtemp(prefix="obmen-metrics-")
    # Pool processes inherit both: the directory, and the value class that writes into it.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _directory
    values.ValueClass = values.MultiProcessValue()
    _metrics = TaskMetrics()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=_directory)
    start_http_server(port, registry=registry)


def stop_exporter() -> None:
    if _directory is not None:
        shutil.rmtree(_directory, ignore_errors=True)


@signals.before_task_publish.connect
def _stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers[PUBLISHED_AT] = time.time()


@signals.task_prerun.connect
def _started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if _metrics is not None and task_id is not None and task is not None:
        _metrics.started_task(task_id, task.name, task.request)


@signals.task_postrun.connect
def _finished(
    task_id: str | None = None, task: Any = None, retval: Any = None, state: str | None = None, **_: Any
) -> None:
    if _metrics is not None and task_id is not None and task is not None:
        _metrics.finished_task(task_id, task.name, state, retval)

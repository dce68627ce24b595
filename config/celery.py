"""The Celery configuration, built from :class:`config.settings.Settings`.

Each reliability setting cites the reason it exists; ``config/selfcheck.py`` refuses to start a
process whose configuration breaks one of them.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from config.settings import Settings

# Task-name prefix -> queue. One queue per flow, so a slow SOAP service cannot starve payments.
ROUTES: dict[str, str] = {
    "ops": "ops",
    "outbox": "ops",
    "mail": "mail",
    "sep": "sep",
    "payments": "payments",
    "billing": "billing",
    "crm": "crm",
    "acts": "acts",
    "invoices": "invoices",
    "edo": "edo",
    "sms": "sms",
}
QUEUE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(ROUTES.values()))
# The address settings a queue's steps call: a worker consuming the queue refuses to start without
# them (``config/selfcheck.py``), instead of parking every row later.
QUEUE_URLS: dict[str, tuple[str, ...]] = {
    "sep": ("sep_url",),
    "acts": ("sbis_url",),
    "invoices": ("onec_url",),
    "edo": ("synerdocs_url",),
    "sms": ("sms_url", "sms_login", "sms_password"),
}
DEFAULT_QUEUE = "ops"
# Held (and renewed every tick) by the one active beat; `obmen healthcheck --beat` looks for it.
BEAT_LOCK_KEY = "obmen:redbeat:lock"


def queue_for(task_name: str) -> str:
    return ROUTES.get(task_name.split(".", 1)[0], DEFAULT_QUEUE)


def _route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, str]:
    return {"queue": queue_for(name)}


def is_embedded(settings: Settings) -> bool:
    """The embedded demo runs an in-process broker: no Redis, so no redbeat and no Redis options."""
    return settings.broker_url.startswith("memory://")


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """One schedule for every periodic job.

    ``expires`` is below each period so that a run stuck behind a stalled worker is dropped
    instead of piling up behind the next one (the jobs are idempotent, a skipped run loses nothing).
    """

    def every(task: str, period_s: float, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "task": task,
            "schedule": float(period_s),
            "kwargs": kwargs or {},
            "options": {"expires": round(period_s * 0.8, 3)},
        }

    return {
        "outbox-relay": every("outbox.relay", settings.outbox_relay_interval_s),
        "sweep": every("ops.sweep", settings.sweep_interval_s),
        "canary": every("ops.canary", settings.canary_interval_s),
        # Keeps sep_applications current (the seed's «запрос заявлений за период»).
        "sep-request-applications": every(
            "sep.request_applications", settings.sep_request_applications_interval_s, {"source": "beat"}
        ),
        # What waits for a person, to the SEP-responsible; once a day (keyed), checked every interval.
        "sep-digest": every("sep.send_digest", settings.sep_digest_interval_s, {"source": "beat"}),
        "mail-fetch": every("mail.fetch", settings.mail_poll_interval_s),
        "billing-escalate": every("billing.escalate", settings.billing_escalate_interval_s),
        "acts-track": every("acts.track", settings.acts_track_interval_s),
        "acts-deadlines": every("acts.deadlines.sweep", settings.acts_deadline_sweep_interval_s),
        "acts-reconcile": every("acts.deals.reconcile", settings.acts_reconcile_interval_s),
        "acts-items-reconcile": every("acts.items.reconcile", settings.acts_reconcile_interval_s),
        # The company box's incoming cursor, the answers' statuses, the answer deadlines (seed 002).
        "edo-fetch": every("edo.fetch", settings.edo_fetch_interval_s),
        "edo-track": every("edo.track", settings.edo_track_interval_s),
        "edo-deadlines": every("edo.deadlines.sweep", settings.edo_deadline_sweep_interval_s),
        # 1C's change list: payments, corrections, invoices made in 1C (docs/invoices.md).
        "invoices-poll": every("invoices.poll_changes", settings.invoice_poll_interval_s),
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    embedded = is_embedded(settings)
    # The in-process broker polls; the default second would dominate every step of the demo.
    transport_options: dict[str, Any] = {"polling_interval": 0.05}
    if not embedded:
        transport_options = {
            # Countdown tasks are held unacked; past this timeout Redis hands them to another
            # worker (celery/kombu#337). It is far above the longest countdown + hard time limit.
            "visibility_timeout": settings.visibility_timeout_s,
            # Producers give up fast when Redis is away: the outbox keeps the message, the relay
            # publishes it later, and an HTTP caller is never held hostage by the broker.
            "socket_timeout": settings.broker_socket_timeout_s,
            "socket_connect_timeout": settings.broker_socket_timeout_s,
            "socket_keepalive": True,
            "retry_on_timeout": True,
            "health_check_interval": 25,
            # Scan for orphaned unacked messages every 60 s instead of kombu's ~100 s default.
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 6,
        }
    exchange = Exchange("obmen", type="direct")
    conf: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
        # Celery reads the visibility timeout in three places; set them all (Redis caveats page).
        "visibility_timeout": settings.visibility_timeout_s,
        "result_backend_transport_options": dict(transport_options),
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # JSON only: pickle from the broker is code execution.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Postgres is the record of every step; Celery results would be a second, weaker one.
        "task_ignore_result": True,
        "result_backend": None,
        # Explicit queues: a typo in a route must fail, not create a queue nobody consumes.
        "task_queues": [Queue(name, exchange, routing_key=name) for name in QUEUE_NAMES],
        "task_default_queue": DEFAULT_QUEUE,
        "task_default_exchange": "obmen",
        "task_default_routing_key": DEFAULT_QUEUE,
        "task_create_missing_queues": False,
        "task_routes": (_route,),
        # Ack after the work, and requeue when the worker process dies mid-task: the steps are
        # idempotent and count their attempts in Postgres, which stops a poison message looping.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Countdown messages ignore prefetch limits; this caps how many one worker holds.
        "worker_eta_task_limit": settings.worker_eta_task_limit,
        # Each countdown task held also raises the prefetch count, so a worker holding thousands
        # would prefetch thousands of ordinary messages and run them before anything published
        # later, priorities included. Fetch only when a pool process is free (Redis only).
        "worker_disable_prefetch": not embedded,
        # A late-ack task still running when the broker connection drops would be redelivered
        # and run twice; cancel it instead (celery/celery#4671).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": 30.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_kb,
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_time_limit": settings.task_time_limit_s,
        # Publishing is retried only briefly; the outbox is the real guarantee.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        # Flower needs the workers' events. Producers send none ("task-sent"): it would double the
        # cost of every publish, and Flower shows a task as soon as a worker receives it.
        "worker_send_task_events": True,
        "worker_hijack_root_logger": False,
        "timezone": "Europe/Moscow",
        "enable_utc": True,
        "beat_schedule": beat_schedule(settings),
    }
    if embedded:
        conf["beat_scheduler"] = "celery.beat:PersistentScheduler"
    else:
        # redbeat keeps the schedule in Redis; our scheduler sends only under a lease it renews
        # every tick, so a second beat waits instead of sending every job twice (celery/celery#2856)
        # and a Redis outage, restart or FLUSHALL makes beat wait, never exit (workers/beat.py).
        conf["beat_scheduler"] = "workers.beat:LeasedScheduler"
        conf["redbeat_redis_url"] = settings.broker_url
        conf["redbeat_redis_options"] = {
            "socket_timeout": settings.broker_socket_timeout_s,
            "socket_connect_timeout": settings.broker_socket_timeout_s,
            "socket_keepalive": True,
            "health_check_interval": 25,
        }
        conf["redbeat_key_prefix"] = "obmen:redbeat:"
        conf["redbeat_lock_key"] = BEAT_LOCK_KEY
        conf["redbeat_lock_timeout"] = settings.beat_lease_s
        # Ticks (and lease renewals) at least four times a lease.
        conf["beat_max_loop_interval"] = min(5.0, settings.beat_lease_s / 4)
    return conf

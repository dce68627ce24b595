"""The EDO flow's beat jobs: read the incoming cursor, track the sent answers, sweep the deadlines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from celery import shared_task

from config.settings import get_settings
from integrations.errors import IntegrationError
from models.db import db_now, session_scope
from tasks.edo.answers import tracked_since
from tasks.edo.chain import DEADLINES_SWEEP, FETCH, TRACK, TRACK_ALL
from tasks.edo.deadlines import sweep_deadlines
from tasks.edo.incoming import fetch
from tasks.machinery.outbox import enqueue_many
from tasks.machinery.policy import describe

log = structlog.get_logger(__name__)

TRACK_LIMIT = 1000


@shared_task(name=FETCH, ignore_result=True)
def fetch_task(**_: Any) -> dict[str, Any]:
    """Beat: apply the company box's incoming messages after the cursor, each once."""
    try:
        report = fetch()
    except IntegrationError as exc:
        # Nothing is lost: the cursor is where the last applied message left it.
        log.warning("edo.fetch.failed", error=describe(exc))
        return {"error": describe(exc)}
    return {"pages": report.pages, "outcomes": dict(report.outcomes)}


def track_due() -> int:
    """Enqueue ``edo.package.track`` for every answer not asked about for OBMEN_EDO_TRACK_INTERVAL_S."""
    with session_scope() as session:
        before = db_now(session) - timedelta(seconds=get_settings().edo_track_interval_s)
        ids = tracked_since(session, before, TRACK_LIMIT)
        enqueue_many(session, TRACK, [{"id": i} for i in ids], business_keys=[f"edo:track:{i}" for i in ids])
    return len(ids)


@shared_task(name=TRACK_ALL, ignore_result=True)
def track_task(**_: Any) -> dict[str, int]:
    """Beat: ask the operator about the answers waiting for the customer's signature."""
    return {"enqueued": track_due()}


@shared_task(name=DEADLINES_SWEEP, ignore_result=True)
def sweep_task(**_: Any) -> dict[str, int]:
    """Beat: tell the responsibles about the answers that fell overdue."""
    return sweep_deadlines()

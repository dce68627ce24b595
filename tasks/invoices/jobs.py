"""The invoice flow's beat job: follow 1C's change list (payments, corrections, new invoices)."""

from __future__ import annotations

from typing import Any

import structlog
from celery import shared_task

from integrations.errors import IntegrationError
from tasks.invoices.chain import POLL_CHANGES
from tasks.invoices.changes import poll
from tasks.machinery.policy import describe

log = structlog.get_logger(__name__)


@shared_task(name=POLL_CHANGES, ignore_result=True)
def poll_changes_task(**_: Any) -> dict[str, Any]:
    """Beat (and a push from 1C): read 1C's change list from the stored cursor and apply it."""
    try:
        report = poll()
    except IntegrationError as exc:
        # Nothing is lost: the cursor stays at the last applied page and the next run reads from there.
        log.warning("invoices.poll.failed", error=describe(exc))
        return {"error": describe(exc)}
    if report.outcomes:
        log.info("invoices.poll.done", pages=report.pages, outcomes=dict(report.outcomes))
    return {"pages": report.pages, "outcomes": dict(report.outcomes), "cursor": report.cursor}

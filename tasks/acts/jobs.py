"""The acts flow's beat jobs: follow the СБИС change feed, sweep deadlines, reconcile Bitrix24 deals
and the acts' Bitrix24 items."""

from __future__ import annotations

from typing import Any

import structlog
from celery import shared_task

from integrations.errors import IntegrationError
from tasks.acts.deadlines import sweep_deadlines
from tasks.acts.deals import reconcile_deals
from tasks.acts.items import reconcile_items
from tasks.acts.sbis import track
from tasks.machinery.policy import describe

log = structlog.get_logger(__name__)


@shared_task(name="acts.track", ignore_result=True)
def track_task(**_: Any) -> dict[str, Any]:
    """Beat: follow ``СБИС.СписокИзменений`` from the stored cursor."""
    try:
        report = track()
    except IntegrationError as exc:
        # Nothing is lost: the cursor stays where it was and the next run reads from there.
        log.warning("acts.track.failed", error=describe(exc))
        return {"error": describe(exc)}
    if report.events:
        log.info("acts.track.done", pages=report.pages, events=report.events, outcomes=dict(report.outcomes))
    return {"pages": report.pages, "events": report.events, "outcomes": dict(report.outcomes)}


@shared_task(name="acts.deadlines.sweep", ignore_result=True)
def sweep_task(**_: Any) -> dict[str, int]:
    """Beat: fire the deadlines that are due (a task «Указать статус акта», a manager's notice)."""
    return sweep_deadlines()


@shared_task(name="acts.deals.reconcile", ignore_result=True)
def reconcile_task(**_: Any) -> dict[str, Any]:
    """Beat: find deals whose Bitrix24 events were lost (Bitrix24 never retries them)."""
    try:
        return dict(reconcile_deals())
    except IntegrationError as exc:
        log.warning("acts.reconcile.failed", error=describe(exc))
        return {"error": describe(exc)}


@shared_task(name="acts.items.reconcile", ignore_result=True)
def reconcile_items_task(**_: Any) -> dict[str, Any]:
    """Beat: find acts' items moved in Bitrix24 whose events were lost."""
    try:
        return dict(reconcile_items())
    except IntegrationError as exc:
        log.warning("acts.items.reconcile.failed", error=describe(exc))
        return {"error": describe(exc)}

"""The mail flow's beat job: read the mailbox."""

from __future__ import annotations

from typing import Any

import structlog
from celery import shared_task

from integrations.errors import IntegrationError
from tasks.machinery.policy import describe
from tasks.mail.chain import FETCH
from tasks.mail.intake import fetch_mail

log = structlog.get_logger(__name__)


@shared_task(name=FETCH, ignore_result=True)
def fetch_task(**_: Any) -> dict[str, Any]:
    """Beat: read the mailbox. A failure waits for the next poll, which is the retry."""
    try:
        report = fetch_mail()
    except IntegrationError as exc:
        log.error("mail.fetch_failed", error=describe(exc))
        return {"error": describe(exc)}
    if report.stored:
        log.info("mail.fetched", **report.as_dict())
    return report.as_dict()

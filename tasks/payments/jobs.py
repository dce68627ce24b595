"""The payments flow's beat job: fire the billing deadlines that came due."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from tasks.payments.billing import escalate


@shared_task(name="billing.escalate", ignore_result=True)
def escalate_task(**_: Any) -> dict[str, int]:
    return escalate()

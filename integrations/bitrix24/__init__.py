"""Bitrix24 REST over an inbound webhook: client, typed errors, batch command encoding. No Celery here."""

from integrations.bitrix24.client import BatchResult, Bitrix24Client, Page, deal_document, mask_webhook
from integrations.bitrix24.errors import (
    Bitrix24AuthError,
    Bitrix24Blocked,
    Bitrix24Error,
    Bitrix24MethodNotFound,
    Bitrix24NotFound,
    Bitrix24OperationTimeLimit,
    Bitrix24RequestError,
    Bitrix24Throttled,
    Bitrix24Unavailable,
)
from integrations.bitrix24.query import Ref, command

__all__ = [
    "BatchResult",
    "Bitrix24AuthError",
    "Bitrix24Blocked",
    "Bitrix24Client",
    "Bitrix24Error",
    "Bitrix24MethodNotFound",
    "Bitrix24NotFound",
    "Bitrix24OperationTimeLimit",
    "Bitrix24RequestError",
    "Bitrix24Throttled",
    "Bitrix24Unavailable",
    "Page",
    "Ref",
    "command",
    "deal_document",
    "mask_webhook",
]

"""The recorder clients report to: each exchange is committed on its own, so it survives a rollback."""

from __future__ import annotations

from dataclasses import fields

import structlog

from integrations.exchange import Exchange
from models.db import session_scope
from models.exchange_log import ExchangeLog
from tasks.machinery.policy import describe

log = structlog.get_logger(__name__)


def exchange_log_row(exchange: Exchange) -> ExchangeLog:
    """The ``exchange_log`` row of an exchange (also of a subclass carrying a flow's own fields)."""
    return ExchangeLog(**{f.name: getattr(exchange, f.name) for f in fields(Exchange)})


def record_exchange(exchange: Exchange) -> None:
    try:
        with session_scope() as session:
            session.add(exchange_log_row(exchange))
    except Exception as exc:  # a lost log line must not fail the business step
        log.warning(
            "exchange.not_recorded", system=exchange.system, operation=exchange.operation, error=describe(exc)
        )

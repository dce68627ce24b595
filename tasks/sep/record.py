"""The SEP recorder: each exchange goes to ``exchange_log`` (raw), ``sep_exchange_history``
(classified) and, when something went wrong, ``sep_exchange_errors`` — in a transaction of its own,
so the record survives a step that rolls back.

That commit does not wait for its WAL flush (``durable=False``): the step's own durable commit that
follows it flushes the WAL up to and past it, so the record is as durable as what the step did.
Only a step that then fails while Postgres itself crashes within its WAL writer's delay (200 ms)
could lose the record of its call — never work, and it saves every SEP step a second flush."""

from __future__ import annotations

import structlog

from integrations.exchange import Exchange
from integrations.sep.outcomes import SepExchange
from models.db import session_scope
from models.sep import SepExchangeError, SepExchangeHistory
from tasks.machinery.exchange import exchange_log_row
from tasks.machinery.policy import describe

log = structlog.get_logger(__name__)


def record_sep_exchange(exchange: Exchange) -> None:
    try:
        with session_scope(durable=False) as session:
            logged = exchange_log_row(exchange)
            session.add(logged)
            if not isinstance(exchange, SepExchange):
                return
            session.flush()
            session.add(
                SepExchangeHistory(
                    request_id=exchange.request_id,
                    operation=exchange.operation,
                    message_id=exchange.message_id,
                    queue_number=exchange.queue_number,
                    business_key=exchange.business_key,
                    request_status=exchange.request_status or "",
                    sep_state=exchange.sep_state,
                    http_status=exchange.response_status,
                    duration_ms=exchange.duration_ms,
                    error=exchange.error,
                    exchange_log_id=logged.id,
                )
            )
            for kind, code, message in exchange.failures:
                session.add(
                    SepExchangeError(
                        correlation_id=exchange.queue_number or exchange.message_id or "-",
                        request_id=exchange.request_id,
                        operation=exchange.operation,
                        kind=kind,
                        code=code,
                        message=message,
                        application_number=exchange.application_number,
                    )
                )
    except Exception as exc:  # a lost record must not fail the business step
        log.warning("sep.exchange_not_recorded", operation=exchange.operation, error=describe(exc))

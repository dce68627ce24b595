"""The SEP recorder: each exchange goes to ``exchange_log`` (raw), ``sep_exchange_history``
(classified) and, when something went wrong, ``sep_exchange_errors`` — in a transaction of its own,
so the record survives a step that rolls back.

On Postgres that transaction is one statement in autocommit (data-modifying CTEs: the log row, its
history row pointing at it, the errors), so it costs the step one round trip instead of a session's
six. It does not wait for its WAL flush (``synchronous_commit`` off for that one transaction): the
step's own durable commit that follows it flushes the WAL up to and past it, so the record is as
durable as what the step did. Only a step that then fails while Postgres itself crashes within its
WAL writer's delay (200 ms) could lose the record of its call — never work, and it saves every SEP
step a second flush."""

from __future__ import annotations

import functools
from typing import Any

import structlog
from sqlalchemy import Executable, insert, select
from sqlalchemy.orm import Session

from integrations.exchange import Exchange
from integrations.sep.outcomes import SepExchange
from models.db import engine_for, session_scope, typed_bind, without_flush_wait
from models.exchange_log import ExchangeLog
from models.sep import SepExchangeError, SepExchangeHistory
from tasks.machinery.exchange import EXCHANGE_COLUMNS, autocommit, exchange_columns, record_exchange
from tasks.machinery.policy import describe

log = structlog.get_logger(__name__)


def record_sep_exchange(exchange: Exchange) -> None:
    if not isinstance(exchange, SepExchange):
        record_exchange(exchange)
        return
    try:
        if engine_for().dialect.name == "postgresql":
            with autocommit() as connection:
                connection.execute(_one_statement(len(exchange.failures)), _parameters(exchange))
        else:  # SQLite (the embedded demo) has no data-modifying CTE
            with session_scope() as session:
                _one_by_one(session, exchange)
    except Exception as exc:  # a lost record must not fail the business step
        log.warning("sep.exchange_not_recorded", operation=exchange.operation, error=describe(exc))


def _history(exchange: SepExchange) -> dict[str, Any]:
    """The ``sep_exchange_history`` row, but for its ``exchange_log_id``."""
    return {
        "request_id": exchange.request_id,
        "operation": exchange.operation,
        "message_id": exchange.message_id,
        "queue_number": exchange.queue_number,
        "business_key": exchange.business_key,
        "request_status": exchange.request_status or "",
        "sep_state": exchange.sep_state,
        "http_status": exchange.response_status,
        "duration_ms": exchange.duration_ms,
        "error": exchange.error,
    }


def _errors(exchange: SepExchange) -> list[dict[str, Any]]:
    """The ``sep_exchange_errors`` rows, one per failure."""
    return [
        {
            "correlation_id": exchange.queue_number or exchange.message_id or "-",
            "request_id": exchange.request_id,
            "operation": exchange.operation,
            "kind": kind,
            "code": code,
            "message": message,
            "application_number": exchange.application_number,
        }
        for kind, code, message in exchange.failures
    ]


_HISTORY = [
    c.name for c in SepExchangeHistory.__table__.c if c.name not in ("id", "created_at", "exchange_log_id")
]
_ERRORS = [c.name for c in SepExchangeError.__table__.c if c.name not in ("id", "created_at")]


def _parameters(exchange: SepExchange) -> dict[str, Any]:
    """The bound values of :func:`_one_statement`: each table's columns under a prefix of its own."""
    values = {f"log_{k}": v for k, v in exchange_columns(exchange).items()}
    values.update({f"history_{k}": v for k, v in _history(exchange).items()})
    for n, error in enumerate(_errors(exchange)):
        values.update({f"error{n}_{k}": v for k, v in error.items()})
    return values


@functools.cache
def _one_statement(errors: int) -> Executable:
    """The whole record as one statement (Postgres), built once per number of errors: its compiled
    form is cached, and each exchange only binds its values."""
    logged = (
        insert(ExchangeLog)
        .values({c: typed_bind(ExchangeLog, c, "log_") for c in EXCHANGE_COLUMNS})
        .returning(ExchangeLog.id)
        .cte("logged")
    )
    history = insert(SepExchangeHistory).from_select(
        [*_HISTORY, "exchange_log_id"],
        without_flush_wait(
            select(*(typed_bind(SepExchangeHistory, c, "history_") for c in _HISTORY), logged.c.id),
            "postgresql",
        ),
    )
    if errors:
        rows = [{c: typed_bind(SepExchangeError, c, f"error{n}_") for c in _ERRORS} for n in range(errors)]
        history = history.add_cte(insert(SepExchangeError).values(rows).cte("errors"))
    return history


def _one_by_one(session: Session, exchange: SepExchange) -> None:
    logged = session.execute(
        insert(ExchangeLog).returning(ExchangeLog.id), exchange_columns(exchange)
    ).scalar_one()
    session.execute(insert(SepExchangeHistory), {**_history(exchange), "exchange_log_id": logged})
    if exchange.failures:
        session.execute(insert(SepExchangeError), _errors(exchange))

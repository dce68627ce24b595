"""The recorder clients report to: each exchange is committed on its own, so it survives a rollback.

On Postgres that commit does not wait for its WAL flush (``synchronous_commit`` off for the one
statement's transaction): a synchronous commit costs a flush (2.3 ms on the test machine's disk, 30
times the INSERT), paid once per SMTP letter and per client call. The record is committed and seen
at once, and survives the worker's death: only Postgres crashing within its WAL writer's delay
(≤ 3 × 200 ms) before any later durable commit could lose it — and a step that made the call
commits durably right after, flushing the WAL past it."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import structlog
from sqlalchemy import Connection, Executable, insert, select

from integrations.exchange import Exchange, Recorder
from models.db import engine_for, typed_bind, without_flush_wait
from models.exchange_log import ExchangeLog
from tasks.machinery.policy import describe

log = structlog.get_logger(__name__)

# The ``exchange_log`` columns an exchange fills (a subclass's own fields are a flow's register's).
EXCHANGE_COLUMNS = tuple(f.name for f in fields(Exchange))


def exchange_columns(exchange: Exchange) -> dict[str, Any]:
    return {name: getattr(exchange, name) for name in EXCHANGE_COLUMNS}


@functools.cache
def _log_statement(dialect: str) -> Executable:
    """The ``exchange_log`` INSERT, built once per dialect: its compiled form is cached, and each
    exchange only binds its values."""
    if dialect != "postgresql":
        return insert(ExchangeLog)
    values = select(*(typed_bind(ExchangeLog, name) for name in EXCHANGE_COLUMNS))
    return insert(ExchangeLog).from_select(EXCHANGE_COLUMNS, without_flush_wait(values, dialect))


def _record_on(connection: Connection, exchange: Exchange) -> None:
    connection.execute(_log_statement(connection.dialect.name), exchange_columns(exchange))


def record_exchange(exchange: Exchange) -> None:
    try:
        with autocommit() as connection:
            _record_on(connection, exchange)
    except Exception as exc:  # a lost log line must not fail the business step
        log.warning(
            "exchange.not_recorded", system=exchange.system, operation=exchange.operation, error=describe(exc)
        )


def autocommit() -> contextlib.AbstractContextManager[Connection]:
    """A connection on which each statement is its own transaction, committed in its one round trip:
    for records that must survive the caller's rollback, without a session's BEGIN and COMMIT."""
    return engine_for().connect().execution_options(isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def exchange_recorder() -> Iterator[Recorder]:
    """A recorder for exchanges made one after another (a batch's letters): each committed on its own,
    as :func:`record_exchange` does, but over one connection held for the block, not a connection each.
    One it cannot write there (the connection dropped) goes through :func:`record_exchange`."""
    with autocommit() as connection:

        def record(exchange: Exchange) -> None:
            try:
                _record_on(connection, exchange)
            except Exception:
                record_exchange(exchange)

        yield record

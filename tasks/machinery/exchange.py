"""The recorder clients report to: each exchange is committed on its own, so it survives a rollback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import fields

import structlog
from sqlalchemy import Connection, insert

from integrations.exchange import Exchange, Recorder
from models.db import engine_for, session_scope
from models.exchange_log import ExchangeLog
from tasks.machinery.policy import describe

log = structlog.get_logger(__name__)

# Built once: its compiled form is cached, and each exchange only binds its values.
_LOG = insert(ExchangeLog)
# The ``exchange_log`` columns an exchange fills (a subclass's own fields are a flow's register's).
EXCHANGE_COLUMNS = tuple(f.name for f in fields(Exchange))


def exchange_log_row(exchange: Exchange) -> ExchangeLog:
    """The ``exchange_log`` row of an exchange (also of a subclass carrying a flow's own fields)."""
    return ExchangeLog(**exchange_columns(exchange))


def exchange_columns(exchange: Exchange) -> dict[str, object]:
    return {name: getattr(exchange, name) for name in EXCHANGE_COLUMNS}


def record_exchange(exchange: Exchange) -> None:
    try:
        with session_scope() as session:
            session.add(exchange_log_row(exchange))
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
    as :func:`record_exchange` does, but over one connection held for the block, not a session each.
    One it cannot write there (the connection dropped) goes through :func:`record_exchange`."""
    with autocommit() as connection:

        def record(exchange: Exchange) -> None:
            try:
                connection.execute(_LOG, exchange_columns(exchange))
            except Exception:
                record_exchange(exchange)

        yield record

"""Engines and sessions. One engine per database URL per process; prefork children dispose theirs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    Select,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from models.base import UTCDateTime, utcnow

_lock = threading.Lock()
_factories: dict[str, sessionmaker[Session]] = {}


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    from config.settings import get_settings

    size = get_settings().db_pool_size
    engine = create_engine(
        url, pool_size=size, max_overflow=size, pool_recycle=1800, connect_args={"connect_timeout": 5}
    )
    _ping_when_idle(engine)
    return engine


# A pooled connection idle longer than this is pinged before it is handed out. One back sooner was
# alive a moment ago: pinging it would be a round trip a transaction (a step has two or three)
# spent to catch a server that died within that moment, whose first statement then fails instead,
# the pool is invalidated, and the caller's retry gets a new connection.
PING_IDLE_S = 1.0
_IDLE_SINCE = "obmen_idle_since"


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections idle longer than :data:`PING_IDLE_S` only."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _idle(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) <= PING_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc  # the pool connects anew
        if not alive:
            raise DisconnectionError("the connection did not answer a ping")


def default_url() -> str:
    from config.settings import get_settings

    return get_settings().database_url


def get_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    url = url or default_url()
    with _lock:
        factory = _factories.get(url)
        if factory is None:
            factory = sessionmaker(bind=_create_engine(url), expire_on_commit=False)
            _factories[url] = factory
        return factory


def engine_for(url: str | None = None) -> Engine:
    bind = get_sessionmaker(url).kw["bind"]
    assert isinstance(bind, Engine)
    return bind


@contextmanager
def session_scope(url: str | None = None, *, durable: bool = True) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any error.

    ``durable=False`` lets Postgres acknowledge the commit before its WAL is flushed. Only for
    bookkeeping whose loss a crash of Postgres itself cannot turn into lost or doubled work: an
    attempt counter, an outbox row marked published (it is published again, consumers are
    idempotent). Business changes and anything a caller is told about stay durable.
    """
    session = get_sessionmaker(url)()
    try:
        if not durable and session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def typed_bind(model: type[Any], column: str, prefix: str = "") -> BindParameter[Any]:
    """A bound value named ``prefix + column``, typed as ``model``'s column is (JSON is serialised, a
    time zone kept), for statements built once and bound per call."""
    return bindparam(prefix + column, type_=model.__table__.c[column].type)


def without_flush_wait(statement: Any, dialect: str) -> Any:
    """``statement`` (a ``WHERE``-taking one) also telling Postgres that its transaction's commit need
    not wait for the WAL flush, as ``session_scope(durable=False)`` does, without a round trip of its
    own: ``set_config(…, is_local => true)`` in its condition is ``SET LOCAL`` for the transaction.
    It is evaluated on the rows the statement finds: a statement that finds none leaves the commit
    durable, which costs a flush only if the transaction wrote something else.
    """
    if dialect != "postgresql":
        return statement
    return statement.where(func.set_config("synchronous_commit", "off", True) == "off")


_NOW = "obmen_db_now"


def db_now(session: Session) -> datetime:
    """The database clock: the one time authority every worker agrees on, whatever their clocks say.

    SQLite (the embedded demo: one process) keeps whole seconds only; there the process clock is
    the single authority and it is finer.
    """
    if session.get_bind().dialect.name == "sqlite":
        return utcnow()
    # now() is the transaction's start: asked once per transaction, not once per row of a batch.
    return _db_start(session)[0]


def _db_start(session: Session) -> tuple[datetime, float]:
    """The transaction's start by the database clock, and this process's monotonic clock when read."""
    cached = session.info.get(_NOW)
    if cached is not None and cached[0] is session.get_transaction():
        return cached[1], cached[2]
    now = session.execute(select(type_coerce(func.now(), UTCDateTime()))).scalar_one()
    # Taken after the query, which began the transaction if none was open.
    read_at = time.monotonic()
    session.info[_NOW] = (session.get_transaction(), now, read_at)
    return now, read_at


def locked_with_now(session: Session, statement: Select[Any]) -> list[Any]:
    """The entities ``statement`` selects (rows it locks, say), read with the database clock in the
    same round trip: ``db_now`` then answers from it for the rest of the transaction."""
    found = session.execute(statement.add_columns(type_coerce(func.now(), UTCDateTime()))).all()
    if found:
        session.info[_NOW] = (session.get_transaction(), found[0][-1], time.monotonic())
    return [row[0] for row in found]


def db_elapsed_now(session: Session) -> datetime:
    """The database clock at this instant without a round trip: the transaction's start plus the
    time this process has seen pass since it read it.

    Never later than the database's own clock (the start was read after it happened), so a check
    that something is due errs towards "not yet". A step that calls out inside its transaction (a
    batch of SEP polls, one call a row) reads each row's time here, where ``db_now`` would give
    every row the batch's start.
    """
    if session.get_bind().dialect.name == "sqlite":
        return utcnow()
    start, read_at = _db_start(session)
    return start + timedelta(seconds=time.monotonic() - read_at)


def db_clock(session: Session) -> datetime:
    """The database clock at this very instant (``clock_timestamp()``).

    ``db_now`` is the start of the transaction in Postgres; after a slow call inside the
    transaction, this is the time to record when something happened.
    """
    if session.get_bind().dialect.name == "sqlite":
        return utcnow()
    return session.execute(select(type_coerce(func.clock_timestamp(), UTCDateTime()))).scalar_one()


def dialect_insert(session: Session, model: type[Any] | Table) -> Any:
    """The session's database's own ``INSERT`` (Postgres or SQLite), which has ``on_conflict_do_…``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"no ON CONFLICT insert for {dialect}")


def insert_ignoring_conflicts(session: Session, model: type[Any]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` on the session's database (Postgres or SQLite).

    A row whose unique key is already there is skipped without an error that would end the
    transaction; with ``.returning(...)`` only the rows written come back.
    """
    return dialect_insert(session, model).on_conflict_do_nothing()


def dispose_engines() -> None:
    """Called in each prefork child: pooled connections must not be shared across a fork."""
    with _lock:
        for factory in _factories.values():
            factory.kw["bind"].dispose(close=False)


def forget_engines() -> None:
    """Close every engine (tests that drop their database, the demo at exit)."""
    with _lock:
        for factory in _factories.values():
            factory.kw["bind"].dispose()
        _factories.clear()

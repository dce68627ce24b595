"""The connection pool: a connection idle past PING_IDLE_S is pinged, and replaced when dead."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

import models.db
from models.db import _create_engine, default_url, session_scope


def test_a_dead_connection_idle_past_the_ping_time_is_replaced_before_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _create_engine(default_url())
    pings: list[int] = []
    original = engine.dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        return original(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)
    try:
        with engine.connect() as connection:
            dead = connection.scalar(text("SELECT pg_backend_pid()"))
        with engine.connect() as connection:  # back a moment ago: handed out without a ping
            assert connection.scalar(text("SELECT pg_backend_pid()")) == dead
        assert pings == []
        with session_scope() as other:  # another pool's connection
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
        monkeypatch.setattr(models.db, "PING_IDLE_S", 0.0)  # as if every connection had idled long
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT pg_backend_pid()")) != dead
        assert pings, "the idle connection was not pinged"
    finally:
        engine.dispose()

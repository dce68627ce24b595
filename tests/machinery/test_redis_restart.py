"""A Redis of the test's own is stopped and restarted: nothing waiting in the outbox is lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from models.base import utcnow
from models.canary import Canary
from models.db import session_scope
from models.outbox import Outbox
from tasks.machinery.canary import start_canary
from tasks.machinery.outbox import set_dispatch_mode
from tests.harness.processes import RedisServer, obmen, start_worker
from tests.harness.waiting import wait_for


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _relay_only_from_subprocesses(obmen_app):
    # This process publishes to the session's Redis; here only `obmen sweep` on the test's own Redis may.
    set_dispatch_mode("off")
    yield
    set_dispatch_mode("inline")


def _done() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).where(Canary.status == "done")) or 0


def _unpublished() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).where(Outbox.published_at.is_(None))) or 0


def test_rows_written_while_redis_is_down_are_published_when_it_is_back(own_redis: RedisServer) -> None:
    env = {"OBMEN_BROKER_URL": own_redis.url, "OBMEN_BROKER_SOCKET_TIMEOUT_S": "1"}
    worker = start_worker(env=env)
    try:
        own_redis.stop()
        with session_scope() as s:
            for _ in range(20):
                start_canary(s)
        relay_down = obmen("sweep", env=env)
        assert relay_down.returncode == 0, relay_down.stderr
        assert _unpublished() == 20
        with session_scope() as s:
            assert s.scalar(select(func.max(Outbox.publish_attempts))) == 1
            assert "Error" in (
                s.scalar(select(Outbox.last_error).where(Outbox.last_error.is_not(None))) or ""
            )

        own_redis.start()
        relay_up = obmen("sweep", env=env)
        assert relay_up.returncode == 0, relay_up.stderr
        assert _unpublished() == 0
        # The worker reconnected by itself (kombu >= 5.4) and consumes again.
        wait_for(lambda: _done() == 20, timeout=60, what="all 20 steps after Redis came back")
    finally:
        worker.stop()
    with session_scope() as s:
        assert set(s.scalars(select(Canary.executions))) == {1}


def test_messages_lost_in_a_restart_are_redriven_from_the_registers(own_redis: RedisServer) -> None:
    env = {"OBMEN_BROKER_URL": own_redis.url, "OBMEN_BROKER_SOCKET_TIMEOUT_S": "1"}
    with session_scope() as s:
        for _ in range(20):
            start_canary(s)
    assert obmen("sweep", env=env).returncode == 0
    assert _unpublished() == 0  # in Redis now, and Redis keeps nothing on disk
    own_redis.stop()
    own_redis.start()

    worker = start_worker(env=env)
    try:
        assert _done() == 0
        # Past their step's stale time, the sweeper re-drives the rows the broker forgot.
        with session_scope() as s:
            s.execute(update(Canary).values(updated_at=utcnow().replace(year=2020)))
        assert obmen("sweep", env=env).returncode == 0
        wait_for(lambda: _done() == 20, timeout=60, what="the re-driven steps")
    finally:
        worker.stop()
    with session_scope() as s:
        assert set(s.scalars(select(Canary.executions))) == {1}

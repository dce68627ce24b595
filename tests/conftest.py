"""Test session set-up: a throwaway Postgres database and a Redis database of this session's own.

Under pytest-xdist (``make test`` runs two processes) each process is such a session; the controller,
which runs no test, takes none.

The environment is set in ``pytest_configure``, before any test module imports the settings or the
Celery app, so every process the tests start (workers, the gateway, CLI commands) sees the same stores.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from tests.harness import stores

if TYPE_CHECKING:
    from sqlalchemy import CompoundSelect

_stores: stores.TestStores | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _stores
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # pytest-xdist's controller runs no test: each of its processes takes stores of its own
    _stores = stores.create()
    os.environ.update(
        {
            "OBMEN_DATABASE_URL": _stores.database_url,
            "OBMEN_BROKER_URL": _stores.broker_url,
            "OBMEN_LOG_JSON": "false",
            "OBMEN_API_TOKENS": "read+write:test-write-token,read:test-read-token",
            # Short backoff so retries happen within a test; the self-check still holds.
            "OBMEN_RETRY_BACKOFF_S": "1",
            "OBMEN_RETRY_BACKOFF_MAX_S": "4",
            "OBMEN_MAX_ATTEMPTS": "3",
            # External systems have no default address; nothing listens on these. A test that talks
            # to an emulator points the setting at it (``Sandbox.client_settings()``).
            "OBMEN_SEP_URL": "http://127.0.0.1:8700/sep",
            "OBMEN_SBIS_URL": "http://127.0.0.1:8700/sbis",
            "OBMEN_SYNERDOCS_URL": "http://127.0.0.1:8700/synerdocs/ExchangeService.svc",
            "OBMEN_ONEC_URL": "http://127.0.0.1:8700/onec/hs/obmen",
            "OBMEN_SMS_URL": "http://127.0.0.1:8700/smsc/sys",
            "OBMEN_SMS_LOGIN": "obmen",
            "OBMEN_SMS_PASSWORD": "unset",
            # The console's counts are read fresh on every page (tests compare them with the registers).
            "OBMEN_CONSOLE_COUNT_CACHE_S": "0",
        }
    )
    from models.migrate import upgrade

    upgrade(_stores.database_url)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _stores is not None:
        _stores.release()


# Emptying only the tables a test wrote to: a TRUNCATE of every table costs 0.5-1 s a test.
_RESTART_SEQUENCES = (
    "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, 1, false)"
    " FROM pg_sequences WHERE last_value IS NOT NULL"
)


@functools.cache
def _used_tables() -> CompoundSelect:
    """One statement naming every table that holds a row."""
    from sqlalchemy import exists, literal, select, union_all

    import models

    probes = [
        select(literal(table.name)).where(exists().select_from(table))
        for table in models.metadata.sorted_tables
    ]
    return union_all(*probes)


@pytest.fixture(autouse=True)
def clean_stores() -> Iterator[None]:
    """Every test starts with empty registers and an empty broker."""
    from sqlalchemy import text

    from models.db import engine_for

    with engine_for().begin() as conn:
        used = conn.execute(_used_tables()).scalars().all()
        if used:
            names = ", ".join(f'"{name}"' for name in used)
            conn.execute(text(f"TRUNCATE {names} CASCADE"))
            conn.execute(text(_RESTART_SEQUENCES))
    redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"]).flushdb()
    yield


@pytest.fixture(scope="session")
def obmen_app():
    """The configured app, so that in-process publishing (the outbox relay) reaches the test broker."""
    from workers.app import app

    return app

"""Test session set-up: a throwaway Postgres database and a Redis database of this session's own.

The environment is set in ``pytest_configure``, before any test module imports the settings or the
Celery app, so every process the tests start (workers, the gateway, CLI commands) sees the same stores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tests.harness import stores

_stores: stores.TestStores | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _stores
    if os.environ.get("PYTEST_XDIST_WORKER"):
        raise pytest.UsageError("run the suite in one process; workers and brokers are per session")
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
            # The console's counts are read fresh on every page (tests compare them with the registers).
            "OBMEN_CONSOLE_COUNT_CACHE_S": "0",
        }
    )
    from models.migrate import upgrade

    upgrade(_stores.database_url)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _stores is not None:
        _stores.release()


@pytest.fixture(autouse=True)
def clean_stores() -> Iterator[None]:
    """Every test starts with empty registers and an empty broker."""
    from sqlalchemy import text

    import models
    from models.db import engine_for

    tables = ", ".join(f'"{t.name}"' for t in models.metadata.sorted_tables)
    with engine_for().begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"]).flushdb()
    yield


@pytest.fixture(scope="session")
def obmen_app():
    """The configured app, so that in-process publishing (the outbox relay) reaches the test broker."""
    from workers.app import app

    return app

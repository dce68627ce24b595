"""Each test session gets its own throwaway Postgres database and its own Redis database.

Several sessions may run at once on one machine (CI beside a developer), so the Redis database
number is taken with a lock key, and the Postgres database name is unique.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

LOCK_TTL_S = 3600


@dataclass
class TestStores:
    admin_url: str
    database: str
    database_url: str
    broker_url: str
    redis_base: str
    redis_db: int | None

    def release(self) -> None:
        from models.db import forget_engines

        forget_engines()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if self.redis_db is not None:
            client = redis.Redis.from_url(self.redis_base)
            client.delete(_lock_key(self.redis_db))


def _lock_key(db: int) -> str:
    return f"obmen-test-lock:{db}"


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def create() -> TestStores:
    admin = os.environ.get("OBMEN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    admin = admin.replace("postgresql+psycopg://", "postgresql://")
    name = f"obmen_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = _with_path(admin, "/" + name).replace("postgresql://", "postgresql+psycopg://", 1)

    broker = os.environ.get("OBMEN_TEST_BROKER_URL", "redis://127.0.0.1:6379")
    path = urlsplit(broker).path.strip("/")
    if path.isdigit():
        db, base = None, broker
        redis.Redis.from_url(broker).flushdb()
        broker_url = broker
    else:
        base = _with_path(broker, "/0")
        client = redis.Redis.from_url(base)
        for candidate in range(1, 16):
            if client.set(_lock_key(candidate), os.getpid(), nx=True, ex=LOCK_TTL_S):
                db = candidate
                break
        else:
            raise RuntimeError("all Redis databases 1-15 are taken by other test sessions")
        broker_url = _with_path(broker, f"/{db}")
        redis.Redis.from_url(broker_url).flushdb()
    return TestStores(admin, name, database_url, broker_url, base, db)

"""``python -m tests.services``: make sure the services the suite talks to are there.

Postgres and Redis are real (never mocked); this says clearly what is missing instead of letting
fifty tests fail on a refused connection.
"""

from __future__ import annotations

import os
import sys

import psycopg
import redis


def main() -> int:
    problems = []
    db = os.environ.get("OBMEN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    db = db.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(db, connect_timeout=5).close()
    except Exception as exc:
        problems.append(f"Postgres at {db} is not reachable ({exc}); start it or set OBMEN_TEST_DATABASE_URL")
    broker = os.environ.get("OBMEN_TEST_BROKER_URL", "redis://127.0.0.1:6379")
    try:
        redis.Redis.from_url(broker, socket_connect_timeout=5).ping()
    except Exception as exc:
        problems.append(f"Redis at {broker} is not reachable ({exc}); start it or set OBMEN_TEST_BROKER_URL")
    for line in problems:
        print(f"tests need: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

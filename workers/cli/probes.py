"""What ``obmen healthcheck`` probes: each check returns None when healthy, else the reason.

A probe runs every few seconds in every container, so it imports no task and no model: a URL, a
file's age, one Redis command, one database connection.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import redis

from config.celery import BEAT_LOCK_KEY
from config.settings import Settings
from integrations.bounded_http import BoundedClient
from integrations.errors import PermanentError, TransientError
from integrations.exchange import Exchange

TIMEOUT_S = 3.0


def url_answers(url: str) -> str | None:
    # Through the one bounded HTTP module: a probe that hangs on a dripping answer is a probe that lies.
    client = BoundedClient(deadline_s=TIMEOUT_S, max_bytes=64_000)
    try:
        answer = client.exchange(client.build_request("GET", url), Exchange(system="probe", operation="GET"))
    except (TransientError, PermanentError) as exc:
        return f"GET {url}: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    if 200 <= answer.status_code < 300:
        return None
    return f"GET {url}: {answer.status_code} {answer.content[:200].decode('utf-8', 'replace')}"


def file_is_fresh(path: str, max_age_s: float) -> str | None:
    try:
        age = time.time() - Path(path).stat().st_mtime
    except OSError:
        return f"{path} does not exist (the worker is not ready yet, or has stopped)"
    if age > max_age_s:
        return f"{path} was last touched {age:.0f} s ago (over {max_age_s:.0f} s): the worker's main loop is stuck"
    return None


def beat_holds_lock(broker_url: str) -> str | None:
    try:
        held = redis.Redis.from_url(broker_url, socket_timeout=TIMEOUT_S).exists(BEAT_LOCK_KEY)
    except redis.RedisError as exc:
        return f"OBMEN_BROKER_URL does not answer: {exc}"
    return None if held else f"no beat holds {BEAT_LOCK_KEY} (beat is down or stuck)"


def stores_answer(settings: Settings) -> str | None:
    try:
        redis.Redis.from_url(settings.broker_url, socket_timeout=TIMEOUT_S).ping()
    except redis.RedisError as exc:
        return f"OBMEN_BROKER_URL does not answer: {exc}"
    if settings.database_url.startswith("postgresql"):
        dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            psycopg.connect(dsn, connect_timeout=int(TIMEOUT_S)).close()
        except psycopg.Error as exc:
            return f"OBMEN_DATABASE_URL does not answer: {exc}"
    return None


def probe(
    settings: Settings, *, url: str | None, ready_file: str | None, max_age_s: float, beat: bool
) -> str | None:
    if url:
        return url_answers(url)
    if beat:
        return beat_holds_lock(settings.broker_url)
    path = ready_file or settings.worker_ready_file
    if path:
        return file_is_fresh(path, max_age_s)
    return stores_answer(settings)

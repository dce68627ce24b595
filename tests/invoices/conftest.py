"""Invoice test set-up: the 1C emulator over real HTTP, and obmen's 1C client pointed at it with its
session leases in this test session's Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from pydantic import SecretStr

from integrations.exchange import Exchange
from integrations.onec.client import OnecClient
from integrations.onec.sessions import RedisSessions
from sandbox.harness import SandboxClock
from sandbox.onec import OnecEmulator
from sandbox.server import Sandbox

INN = "7707083893"
OTHER_INN = "7702070139"
MAX_FILE_BYTES = 256 * 1024


@pytest.fixture(scope="session")
def _sandbox() -> Iterator[Sandbox]:
    with Sandbox([OnecEmulator(SandboxClock())]) as box:
        yield box


@pytest.fixture
def onec(_sandbox: Sandbox) -> OnecEmulator:
    emulator = _sandbox.emulator("onec")
    assert isinstance(emulator, OnecEmulator)
    emulator.reset()
    emulator.clock = SandboxClock()
    return emulator


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    yield client
    client.close()


@pytest.fixture
def exchanges() -> list[Exchange]:
    return []


def make_client(
    box: Sandbox,
    sessions: RedisSessions,
    recorder: list[Exchange],
    *,
    password: str | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    deadline_s: float = 5.0,
    max_wait_s: float = 0.1,
) -> OnecClient:
    settings = box.client_settings()
    return OnecClient(
        settings["OBMEN_ONEC_URL"],
        settings["OBMEN_ONEC_USER"],
        SecretStr(password if password is not None else settings["OBMEN_ONEC_PASSWORD"]),
        sessions=sessions,
        max_file_bytes=max_file_bytes,
        recorder=recorder.append,
        deadline_s=deadline_s,
        max_wait_s=max_wait_s,
        busy_retry_s=2.0,
    )


@pytest.fixture
def client(
    _sandbox: Sandbox, onec: OnecEmulator, redis_client: redis.Redis, exchanges: list[Exchange]
) -> Iterator[OnecClient]:
    c = make_client(_sandbox, RedisSessions(redis_client, "onec", 4), exchanges)
    yield c
    c.close()


INVOICES_TOKEN = "test-invoices-token"
SITE = {"Authorization": f"Bearer {INVOICES_TOKEN}"}


@pytest.fixture
def flow(
    _sandbox: Sandbox, onec: OnecEmulator, monkeypatch: pytest.MonkeyPatch, obmen_app: object
) -> Iterator[Sandbox]:
    """This process's settings pointed at the 1C emulator, with a token of the site's scope."""
    from config.settings import get_settings
    from tasks.invoices.clients import forget_clients

    for key, value in {
        **_sandbox.client_settings(),
        "OBMEN_API_TOKENS": f"{os.environ['OBMEN_API_TOKENS']},invoices:{INVOICES_TOKEN}",
        "OBMEN_ONEC_TIMEOUT_S": "5",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    forget_clients()
    yield _sandbox
    monkeypatch.undo()
    get_settings.cache_clear()
    forget_clients()

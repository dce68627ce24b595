"""schemathesis against the gateway's own OpenAPI text, over real HTTP: no operation answers 5xx.

Every operation is called with the credentials its ``security`` names (so the fuzzing reaches the
handlers, not only the access rules), with data that fits the schema and data that does not, a
bounded number of examples each and a fixed seed. A bank that gets a 500 retries; a 4xx is the
answer for anything a caller can send.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from sqlalchemy import text

import models
from models.db import engine_for
from tasks.machinery.outbox import set_dispatch_mode
from tests.harness.bank import SECRETS_ENV, signed
from tests.harness.gateway import GatewayThread
from workers.gateway.access import BITRIX24_TOKEN_FIELD
from workers.gateway.app import gateway_api

PORTAL_TOKEN = "portal-token"
MAX_EXAMPLES = 8


@pytest.fixture(autouse=True)
def clean_stores() -> Iterator[None]:
    """The registers are emptied once for the module (below), not before each operation."""
    yield


@pytest.fixture(scope="module")
def gateway(obmen_app: Any) -> Iterator[GatewayThread]:
    tables = ", ".join(f'"{t.name}"' for t in models.metadata.sorted_tables)
    with engine_for().begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    with pytest.MonkeyPatch.context() as mp:
        from config.settings import get_settings

        mp.setenv("OBMEN_BANK_HMAC_SECRETS", SECRETS_ENV)
        mp.setenv("OBMEN_BITRIX24_APPLICATION_TOKEN", PORTAL_TOKEN)
        get_settings.cache_clear()
        try:
            with GatewayThread() as gw:
                set_dispatch_mode("off")
                yield gw
        finally:
            set_dispatch_mode("inline")
            get_settings.cache_clear()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


class BankSigner(requests.auth.AuthBase):
    """Signs the request as the bank does, over the bytes requests is about to send."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes) and request.method is not None
        request.headers.update(signed(request.method, request.path_url, raw))
        return request


# The text /openapi.json serves (test_edge.py checks that the served text says what the routes do).
schema = schemathesis.openapi.from_dict(gateway_api().openapi())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    allow_x00=True,
)
schema.config.phases.update(phases=["examples", "fuzzing"])


@schema.parametrize()
@settings(deadline=None, database=None, suppress_health_check=list(HealthCheck), max_examples=MAX_EXAMPLES)
def test_no_operation_answers_5xx(case: Any, gateway: GatewayThread, http: requests.Session) -> None:
    access = case.operation.definition.raw["x-obmen-access"]["kind"]
    kwargs: dict[str, Any] = {"timeout": 30}
    if access == "api_token":
        kwargs["headers"] = {"Authorization": "Bearer test-write-token"}
    elif access == "bank_signature":
        kwargs["auth"] = BankSigner()
    elif access == "bitrix24_application_token" and isinstance(case.body, dict):
        case.body[BITRIX24_TOKEN_FIELD] = PORTAL_TOKEN
    response = case.call(base_url=gateway.url, session=http, **kwargs)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"

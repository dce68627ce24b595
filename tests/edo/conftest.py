"""EDO test set-up: the Synerdocs emulator over real HTTP, a client of the company's account, and the
exchanges it recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.exchange import Exchange
from integrations.synerdocs.client import Credentials, SynerdocsClient, SynerdocsConfig
from sandbox.harness import SandboxClock
from sandbox.server import Sandbox
from sandbox.synerdocs.emulator import APPLICATION_ID, COMPANY, SynerdocsEmulator

ENDPOINT = "/synerdocs/ExchangeService.svc"


@pytest.fixture(scope="session")
def _sandbox() -> Iterator[Sandbox]:
    with Sandbox([SynerdocsEmulator(SandboxClock())]) as box:
        yield box


@pytest.fixture
def box(_sandbox: Sandbox) -> Sandbox:
    """The sandbox with the emulator reset: the two seeded accounts, no messages, default knobs."""
    emulator(_sandbox).reset()
    emulator(_sandbox).clock = SandboxClock()  # a test may have moved the operator's clock
    return _sandbox


def emulator(box: Sandbox) -> SynerdocsEmulator:
    found = box.emulator("synerdocs")
    assert isinstance(found, SynerdocsEmulator)
    return found


def url(box: Sandbox) -> str:
    return box.url + ENDPOINT


def make_client(
    box: Sandbox,
    recorded: list[Exchange],
    *,
    login: str = COMPANY["login"],
    password: str = COMPANY["password"],
    **config: object,
) -> SynerdocsClient:
    settings = {
        "url": url(box),
        "application_id": APPLICATION_ID,
        "deadline_s": 3.0,
        "connect_timeout_s": 2.0,
        **config,
    }
    return SynerdocsClient(
        SynerdocsConfig(**settings),  # type: ignore[arg-type]
        Credentials(login, password),
        recorder=recorded.append,
    )


@pytest.fixture
def recorded() -> list[Exchange]:
    return []


@pytest.fixture
def client(box: Sandbox, recorded: list[Exchange]) -> Iterator[SynerdocsClient]:
    company = make_client(box, recorded)
    yield company
    company.close()

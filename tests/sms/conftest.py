"""The SMSC and Bitrix24 emulators, and this process's settings pointed at them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.harness import SandboxClock
from sandbox.server import Sandbox
from sandbox.sms import SmscEmulator
from tests.harness.bank import bank_settings


@pytest.fixture(scope="package")
def box() -> Iterator[Sandbox]:
    clock = SandboxClock()
    with Sandbox([SmscEmulator(clock), Bitrix24Emulator(clock)]) as sandbox:
        yield sandbox


@pytest.fixture
def smsc(box: Sandbox, obmen_app: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The emulators reset, the settings at them, steps run by hand (the outbox rows stay)."""
    from tasks.machinery.outbox import set_dispatch_mode
    from tasks.sms.clients import forget_clients

    for emulator in box.emulators:
        emulator.reset()
    set_dispatch_mode("off")
    forget_clients()
    with bank_settings(monkeypatch, **box.client_settings(), OBMEN_SMS_STATUS_INTERVAL_S="1"):
        yield f"{box.url}/_sandbox/sms"
    forget_clients()
    set_dispatch_mode("inline")

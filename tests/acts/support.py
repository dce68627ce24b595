"""Shared set-up of the acts tests: drafting acts, reading the register, sandboxes with settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from config.settings import get_settings
from models.acts import Act, ActCrmAction, ActDeadline, ActHistory
from models.db import session_scope
from models.outbox import Outbox
from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.harness import Emulator, SandboxClock
from sandbox.sbis import SbisEmulator
from sandbox.server import Sandbox
from tasks.acts.register import ActIn, Upload, create_act
from tasks.machinery.bitrix24 import forget_clients
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import STEPS, Outcome, run_step
from tests.harness.gateway import GatewayThread
from tests.harness.waiting import wait_for

PDF = Upload("act.pdf", "application/pdf", b"%PDF-1.4 act of completed work")
SCAN = Upload("scan.pdf", "application/pdf", b"%PDF-1.4 scan")
UL_INN, UL_KPP = "7728168971", "772801001"
IP_INN = "500100732259"


def draft(**fields: Any) -> int:
    values: dict[str, Any] = {
        "number": "А-1",
        "deal_id": 101,
        "act_type": "paper_ul",
        "counterparty_inn": UL_INN,
        "counterparty_kpp": UL_KPP,
        "products": ["Экспертиза"],
    }
    values.update(fields)
    with session_scope() as s:
        act, _ = create_act(s, ActIn(**values), PDF)
        return act.id


def act(act_id: int) -> Act:
    with session_scope() as s:
        row = s.get(Act, act_id)
        assert row is not None
        return row


def history(act_id: int) -> list[tuple[str | None, str, str]]:
    with session_scope() as s:
        rows = s.scalars(select(ActHistory).where(ActHistory.act_id == act_id).order_by(ActHistory.id))
        return [(r.from_status, r.to_status, r.actor) for r in rows]


def deadlines() -> list[ActDeadline]:
    with session_scope() as s:
        return list(s.scalars(select(ActDeadline).order_by(ActDeadline.id)))


def crm_actions() -> list[ActCrmAction]:
    with session_scope() as s:
        return list(s.scalars(select(ActCrmAction).order_by(ActCrmAction.id)))


def outbox_tasks() -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Outbox.task_name).order_by(Outbox.id)))


@contextmanager
def sandbox_settings(
    monkeypatch: pytest.MonkeyPatch, *emulators: Emulator, **extra: str
) -> Iterator[Sandbox]:
    """Serve ``emulators`` and point obmen's settings at them (plus ``extra``) for the test."""
    with Sandbox(list(emulators)) as box:
        for key, value in {**box.client_settings(), **extra}.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        try:
            yield box
        finally:
            monkeypatch.undo()
            get_settings.cache_clear()


def clock() -> SandboxClock:
    return SandboxClock()


@contextmanager
def portals(monkeypatch: pytest.MonkeyPatch, **extra: str) -> Iterator[Sandbox]:
    """The Bitrix24 and СБИС emulators, the portal's limits out of the way, steps run by hand (``drain``)."""
    with sandbox_settings(
        monkeypatch,
        Bitrix24Emulator(clock()),
        SbisEmulator(clock()),
        OBMEN_BITRIX24_RATE_PER_S="1000",
        OBMEN_BITRIX24_BURST="1000",
        **extra,
    ) as sandbox:
        httpx.put(sandbox.url + "/_sandbox/bitrix24/limits", json={"bucket_size": 1000, "drain_per_s": 1000})
        forget_clients()
        set_dispatch_mode("off")
        yield sandbox
    set_dispatch_mode("inline")
    forget_clients()


@contextmanager
def events_gateway(box: Sandbox, *events: str) -> Iterator[GatewayThread]:
    """The gateway, with the portal's outbound ``events`` (default: the deal's) bound to it."""
    with GatewayThread() as gw:
        set_dispatch_mode("off")  # the gateway's own mode is "background": steps run by hand here
        bound = list(events) or ["ONCRMDEALADD", "ONCRMDEALUPDATE"]
        httpx.put(
            box.url + "/_sandbox/bitrix24/events",
            json={"handler": gw.url + "/bitrix24/events", "events": bound},
        )
        yield gw


class SmtpSink:
    """A real SMTP server on loopback that keeps what it receives (letters to counterparties)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        from tests.harness.processes import free_port

        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        )
        return "250 OK"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


MANAGER = 7  # the deals' responsible in the portal


def bitrix(box: Sandbox) -> Bitrix24Emulator:
    found = box.emulator("bitrix24")
    assert isinstance(found, Bitrix24Emulator)
    return found


def seed_deal(box: Sandbox, deal_id: int = 101, stage: str = "PREPARATION") -> None:
    emulator = bitrix(box)
    emulator.add_company(
        {
            "ID": 55,
            "TITLE": "ООО «Ромашка»",
            "EMAIL": [{"VALUE": "buh@romashka.example", "VALUE_TYPE": "WORK"}],
        }
    )
    emulator.add_deal(
        {
            "ID": deal_id,
            "TITLE": "Экспорт сыра",
            "STAGE_ID": stage,
            "COMPANY_ID": 55,
            "ASSIGNED_BY_ID": MANAGER,
        }
    )


def events_delivered(box: Sandbox) -> list[dict[str, Any]]:
    emulator = bitrix(box)
    wait_for(emulator.events.idle, timeout=30, what="the portal to deliver its events")
    return [d for d in emulator.events.state()["deliveries"] if not d["dropped"]]


def drain() -> dict[str, int]:
    """Run every acts step (and ``mail.send``) that has a row waiting, until none has (a worker, without Celery)."""
    done: dict[str, int] = {}
    progress = True
    while progress:
        progress = False
        for name, spec in STEPS.items():
            if not name.startswith(("acts.", "mail.send")):
                continue
            with session_scope() as s:
                ids = s.scalars(
                    select(spec.model.id)
                    .where(spec.model.status.in_(spec.statuses), spec.model.parked_at.is_(None))
                    .order_by(spec.model.id)
                ).all()
            for row_id in ids:
                if run_step(spec, row_id) is Outcome.DONE:
                    done[name] = done.get(name, 0) + 1
                    progress = True
    return done

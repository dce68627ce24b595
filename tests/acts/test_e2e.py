"""The acts flow end to end through a real worker: gateway → outbox → Redis → worker → СБИС and
Bitrix24 emulators → register, with the change feed read by ``acts.track``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from models.acts import REFUSED, SENT, SIGNED
from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.sbis import SbisEmulator
from sandbox.server import Sandbox
from tasks.acts.sbis import track
from tasks.machinery.bitrix24 import forget_clients
from tests.acts.support import UL_INN, UL_KPP, act, clock, sandbox_settings
from tests.harness.gateway import GatewayThread
from tests.harness.processes import start_worker
from tests.harness.waiting import wait_for

WRITE = {"Authorization": "Bearer test-write-token"}
LIMITS = {"OBMEN_BITRIX24_RATE_PER_S": "1000", "OBMEN_BITRIX24_BURST": "1000"}


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch, obmen_app: Any) -> Iterator[Sandbox]:
    with sandbox_settings(monkeypatch, Bitrix24Emulator(clock()), SbisEmulator(clock()), **LIMITS) as sandbox:
        httpx.put(sandbox.url + "/_sandbox/bitrix24/limits", json={"bucket_size": 1000, "drain_per_s": 1000})
        forget_clients()
        yield sandbox
    forget_clients()


def stage(box: Sandbox, deal_id: int) -> str:
    return str(httpx.get(f"{box.url}/_sandbox/bitrix24/deals/{deal_id}").json()["STAGE_ID"])


def test_electronic_acts_are_sent_signed_or_refused_and_the_deals_follow(box: Sandbox) -> None:
    emulator = box.emulator("bitrix24")
    assert isinstance(emulator, Bitrix24Emulator)
    for deal_id in (301, 302):
        emulator.add_deal(
            {"ID": deal_id, "TITLE": f"Сделка {deal_id}", "STAGE_ID": "PREPARATION", "ASSIGNED_BY_ID": 7}
        )
    worker = start_worker(env={**box.client_settings(), **LIMITS}, concurrency=2, queues="acts")
    try:
        with GatewayThread() as gw:
            ids = []
            for number, deal_id in (("Э-301", 301), ("Э-302", 302)):
                created = httpx.post(
                    gw.url + "/acts",
                    data={
                        "number": number,
                        "deal_id": str(deal_id),
                        "act_type": "electronic_ul",
                        "counterparty_inn": UL_INN,
                        "counterparty_kpp": UL_KPP,
                        "send": "true",
                    },
                    files={"file": ("act.pdf", b"%PDF-1.4 act", "application/pdf")},
                    headers=WRITE,
                )
                assert created.status_code == 201, created.text
                ids.append(created.json()["id"])
            wait_for(
                lambda: all(act(i).status == SENT for i in ids), timeout=60, what="both acts sent to СБИС"
            )
            wait_for(
                lambda: stage(box, 301) == stage(box, 302) == "UC_ACT_SENT",
                timeout=60,
                what="the deals at «Акт направлен Заявителю»",
            )
            for act_id, action in zip(ids, ("sign", "refuse"), strict=True):
                httpx.post(
                    box.url + "/_sandbox/sbis/scenario",
                    json={"document": act(act_id).sbis_document_id, "action": action},
                ).raise_for_status()
            track()  # what beat runs every OBMEN_ACTS_TRACK_INTERVAL_S
            assert (act(ids[0]).status, act(ids[1]).status) == (SIGNED, REFUSED)
            wait_for(
                lambda: (stage(box, 301), stage(box, 302)) == ("WON", "UC_REMARKS"),
                timeout=60,
                what="the deals closed («Услуга оказана») and with remarks",
            )
    finally:
        worker.stop()
    history = httpx.get(f"{box.url}/_sandbox/bitrix24/deals/301").json()["stage_history"]
    assert [h["to"] for h in history] == ["UC_ACT_SENT", "WON"]

"""Acts as Bitrix24 smart-process items, and acts by e-mail, against the Bitrix24 emulator over HTTP.

Steps run in-process (``drain``) so each test can look between them; ``test_items_workers.py``
kills real workers in the middle of the new steps.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from config.settings import Settings, get_settings
from integrations.bitrix24 import Bitrix24Client, Bitrix24RequestError
from models.acts import CREATED, EMAILING, SENT, SIGNED_BY_US, ActItem
from models.db import session_scope
from models.mail import OutgoingLetter
from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.bitrix24.events import APPLICATION_TOKEN
from sandbox.server import Sandbox
from tasks.acts import machine
from tasks.acts.items import reconcile_items
from tasks.acts.register import change_status, lock_act
from tasks.machinery.steps import STEPS, Outcome, run_step
from tests.acts.support import (
    PDF,
    SCAN,
    SmtpSink,
    act,
    deadlines,
    draft,
    drain,
    events_delivered,
    events_gateway,
    history,
    portals,
    seed_deal,
)
from tests.harness.gateway import GatewayThread

TYPE = 1038
NEW, SIGNED_BY_US_STAGE, SENT_STAGE = (f"DT{TYPE}_0:{code}" for code in ("NEW", "SIGNED_BY_US", "SENT"))
MANAGER, STRANGER = 7, 9
ITEMS = {
    "OBMEN_ACTS_ITEM_ENTITY_TYPE_ID": str(TYPE),
    "OBMEN_ACTS_GROUP_USER_IDS": f"{MANAGER}, 8",
}


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch, smtp: SmtpSink, obmen_app: Any) -> Iterator[Sandbox]:
    with portals(monkeypatch, OBMEN_SMTP_URL=smtp.url, **ITEMS) as sandbox:
        httpx.put(sandbox.url + "/_sandbox/bitrix24/types", json={str(TYPE): "Акты"})
        yield sandbox


@pytest.fixture
def gateway(box: Sandbox) -> Iterator[GatewayThread]:
    with events_gateway(box, "ONCRMDEALUPDATE", "ONCRMDYNAMICITEMUPDATE") as gw:
        yield gw


def items(box: Sandbox) -> list[dict[str, Any]]:
    return list(httpx.get(f"{box.url}/_sandbox/bitrix24/items/{TYPE}").json())


def file_of(item: dict[str, Any]) -> bytes:
    return httpx.get(item["ufCrmObmenActFile"]["urlMachine"]).content


def manager_moves(box: Sandbox, item_id: int, user: int, **fields: Any) -> None:
    httpx.post(
        f"{box.url}/_sandbox/bitrix24/items/{TYPE}/{item_id}/update", json={"fields": fields, "user": user}
    ).raise_for_status()
    events_delivered(box)


def item_updates(box: Sandbox) -> int:
    emulator = box.emulator("bitrix24")
    assert isinstance(emulator, Bitrix24Emulator)
    return sum(e.path.endswith("crm.item.update.json") for e in emulator.log.since())


def _move(act_id: int, target: str, **kwargs: Any) -> str:
    with session_scope() as s:
        return change_status(s, lock_act(s, act_id), target, actor=machine.MANAGER, **kwargs)


def test_each_act_is_an_item_of_its_deal_and_company_that_follows_it(box: Sandbox) -> None:
    seed_deal(box)
    act_id = draft(company_id=55)
    drain()
    [item] = items(box)
    assert (item["xmlId"], item["parentId2"], item["companyId"], item["stageId"]) == (
        f"obmen-act-{act_id}",
        101,
        55,
        NEW,
    )
    assert item["title"] == "Акт А-1 (Бумажный акт для юридических лиц)"
    assert file_of(item) == PDF.content
    deal = httpx.get(f"{box.url}/_sandbox/bitrix24/deals/101").json()
    assert deal["STAGE_ID"] == "PREPARATION"  # «Подготовка акта»: a draft exists

    _move(act_id, SIGNED_BY_US, upload=SCAN)
    drain()
    [item] = items(box)
    assert item["stageId"] == SIGNED_BY_US_STAGE and file_of(item) == SCAN.content
    with session_scope() as s:
        row = s.scalars(select(ActItem)).one()
        assert (row.status, row.item_id, row.stage_id) == ("synced", item["id"], SIGNED_BY_US_STAGE)


def test_a_manager_moves_the_act_in_bitrix24_and_refused_moves_are_put_back(
    box: Sandbox, gateway: GatewayThread
) -> None:
    seed_deal(box)
    act_id = draft(company_id=55)
    drain()
    events_delivered(box)
    drain()  # our own update's event: nothing to write, so no loop
    [item] = items(box)
    item_id = item["id"]
    updates = item_updates(box)

    manager_moves(box, item_id, STRANGER, stageId=SIGNED_BY_US_STAGE)
    drain()
    [item] = items(box)
    assert act(act_id).status == CREATED and item["stageId"] == NEW
    assert f"user {STRANGER} is not in the acts group" in item["ufCrmObmenActNote"]

    manager_moves(box, item_id, MANAGER, stageId=SENT_STAGE)
    drain()
    [item] = items(box)
    assert act(act_id).status == CREATED and item["stageId"] == NEW
    assert item["ufCrmObmenActNote"] == (
        "act А-1 (paper): the manager cannot move it from «Создан» to «Акт направлен заявителю»; "
        "allowed: «Подписан с нашей стороны»"
    )

    manager_moves(box, item_id, MANAGER, stageId=SIGNED_BY_US_STAGE)  # without the scan
    drain()
    [item] = items(box)
    assert item["stageId"] == NEW and "needs the scan" in item["ufCrmObmenActNote"]

    scan = base64.b64encode(b"%PDF-1.4 signed by us, uploaded in Bitrix24").decode()
    manager_moves(box, item_id, MANAGER, stageId=SIGNED_BY_US_STAGE, ufCrmObmenActFile=["scan.pdf", scan])
    drain()
    [item] = items(box)
    assert act(act_id).status == SIGNED_BY_US
    assert (item["stageId"], item["ufCrmObmenActNote"]) == (SIGNED_BY_US_STAGE, "")
    assert file_of(item) == b"%PDF-1.4 signed by us, uploaded in Bitrix24"
    assert history(act_id)[-1] == (CREATED, SIGNED_BY_US, machine.MANAGER)

    manager_moves(box, item_id, MANAGER, stageId=SENT_STAGE)
    drain()
    assert act(act_id).status == SENT and [d.kind for d in deadlines()] == ["signature"]
    assert httpx.get(f"{box.url}/_sandbox/bitrix24/deals/101").json()["STAGE_ID"] == "UC_ACT_SENT"
    # Three refusals put back (the stage and the note), the scan's note cleared; the moves that went
    # through wrote nothing (the item already showed them).
    assert item_updates(box) - updates == 4
    # The company's list of acts (its card), with each act's item.
    listed = httpx.get(
        gateway.url + "/companies/55/acts", headers={"Authorization": "Bearer test-read-token"}
    )
    assert [(a["number"], a["status"], a["bitrix24_item_id"]) for a in listed.json()["acts"]] == [
        ("А-1", SENT, item_id)
    ]


def test_item_events_with_bad_input_are_refused_or_ignored(box: Sandbox, gateway: GatewayThread) -> None:
    def post(**fields: str) -> httpx.Response:
        body = {"event": "ONCRMDYNAMICITEMUPDATE", "auth[application_token]": APPLICATION_TOKEN, **fields}
        return httpx.post(gateway.url + "/bitrix24/events", data=body)

    bad = post(**{"data[FIELDS][ID]": "x1", "data[FIELDS][ENTITY_TYPE_ID]": str(TYPE)})
    assert bad.status_code == 422 and "item's id" in bad.text
    other = post(**{"data[FIELDS][ID]": "5", "data[FIELDS][ENTITY_TYPE_ID]": "31"})
    assert other.json() == {"ignored": "ONCRMDYNAMICITEMUPDATE: not the acts' smart process"}
    unknown = post(**{"data[FIELDS][ID]": "5", "data[FIELDS][ENTITY_TYPE_ID]": str(TYPE)})
    assert unknown.json() == {"ignored": "item 5 is no act's"}
    forged = post(**{"data[FIELDS][ID]": "5", "auth[application_token]": "forged"})
    assert forged.status_code == 401


def test_lost_item_events_are_found_by_the_reconciliation_and_bad_answers_retried(box: Sandbox) -> None:
    seed_deal(box)
    act_id = draft(company_id=55)
    drain()
    assert reconcile_items()["marked"] == 0  # no event handler here: every event is lost
    [item] = items(box)
    scan = base64.b64encode(SCAN.content).decode()
    manager_moves(box, item["id"], MANAGER, stageId=SIGNED_BY_US_STAGE, ufCrmObmenActFile=["s.pdf", scan])
    assert act(act_id).status == CREATED
    assert reconcile_items()["marked"] == 1
    # Bitrix24 answers the read with an error page first: the step records it and retries.
    httpx.put(box.url + "/_sandbox/bitrix24/knobs", json={"fault": "internal_error", "fault_next": 1})
    with session_scope() as s:
        row_id = s.scalars(select(ActItem.id)).one()
    assert run_step(STEPS["acts.item.sync"], row_id) is Outcome.RETRY
    with session_scope() as s:
        row = s.get(ActItem, row_id)
        assert (
            row is not None and row.status == "pending" and "INTERNAL_SERVER_ERROR" in (row.last_error or "")
        )
    httpx.put(box.url + "/_sandbox/bitrix24/knobs", json={"fault": "wrong_shape", "fault_next": 1})
    assert run_step(STEPS["acts.item.sync"], row_id) is Outcome.RETRY
    with session_scope() as s:
        row = s.get(ActItem, row_id)
        assert row is not None and "a crm.item answer without its item" in (row.last_error or "")
    drain()
    assert act(act_id).status == SIGNED_BY_US
    assert reconcile_items()["marked"] == 0


def test_an_act_by_email_goes_with_its_file_and_is_sent_when_the_letter_left(
    box: Sandbox, smtp: SmtpSink
) -> None:
    seed_deal(box)
    act_id = draft(company_id=55, exchange_method="email")
    _move(act_id, SIGNED_BY_US, upload=SCAN)
    assert _move(act_id, SENT) == EMAILING
    done = drain()
    assert done["acts.email.send"] >= 2 and done["mail.send"] == 1
    [letter] = smtp.messages
    assert letter["To"] == "ООО «Ромашка» <buh@romashka.example>"
    assert letter["Subject"].startswith("Акт выполненных работ № А-1 от ")
    [attachment] = list(letter.iter_attachments())
    assert attachment.get_content() == SCAN.content
    sent = act(act_id)
    with session_scope() as s:
        queued = s.scalars(select(OutgoingLetter)).one()
    assert sent.status == SENT and sent.sent_at == queued.sent_at
    assert [(d.kind, d.status) for d in deadlines()] == [("signature", "waiting")]
    assert history(act_id)[-2:] == [
        (SIGNED_BY_US, EMAILING, machine.MANAGER),
        (EMAILING, SENT, machine.OBMEN),
    ]
    [item] = items(box)
    assert item["stageId"] == SENT_STAGE


def test_an_act_by_email_to_a_company_without_an_address_is_parked_with_the_reason(box: Sandbox) -> None:
    emulator = box.emulator("bitrix24")
    assert isinstance(emulator, Bitrix24Emulator)
    emulator.add_company({"ID": 56, "TITLE": "ООО «Без почты»"})
    emulator.add_deal({"ID": 102, "TITLE": "Сделка", "COMPANY_ID": 56, "ASSIGNED_BY_ID": MANAGER})
    act_id = draft(deal_id=102, number="А-2", exchange_method="email")
    _move(act_id, SIGNED_BY_US, upload=SCAN)
    _move(act_id, SENT)
    drain()
    parked = act(act_id)
    assert parked.status == EMAILING and parked.parked_at is not None
    assert "company 56 of deal 102 has no e-mail in Bitrix24" in (parked.last_error or "")


def test_the_products_marked_on_the_deal_are_the_acts_products(box: Sandbox) -> None:
    emulator = box.emulator("bitrix24")
    assert isinstance(emulator, Bitrix24Emulator)
    emulator.add_company({"ID": 55, "TITLE": "ООО «Ромашка»"})
    emulator.add_deal({"ID": 101, "COMPANY_ID": 55, "UF_CRM_OBMEN_ACT_PRODUCTS": ["11", "13"]})
    rows = [
        {"PRODUCT_ID": 11, "PRODUCT_NAME": "Экспертиза", "PRICE": "1000.00"},
        {"PRODUCT_ID": 12, "PRODUCT_NAME": "Доставка образцов", "PRICE": "200.00"},
        {"PRODUCT_ID": 13, "PRODUCT_NAME": "Сертификация", "PRICE": "3000.00"},
    ]
    httpx.post(f"{box.url}/_sandbox/bitrix24/deals/101/productrows", json=rows).raise_for_status()
    first = draft(products=[])
    assert act(first).products == []  # drafted before obmen read the deal
    drain()
    assert act(first).products == ["Экспертиза", "Сертификация"]
    assert act(draft(number="А-2", products=[])).products == ["Экспертиза", "Сертификация"]
    assert act(draft(number="А-3", products=["Другое"])).products == ["Другое"]  # given: kept


def test_a_smart_process_the_portal_lacks_parks_the_item_with_its_word(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBMEN_ACTS_ITEM_ENTITY_TYPE_ID", "1040")  # a typo: the portal's is 1038
    get_settings.cache_clear()
    seed_deal(box)
    act_id = draft(company_id=55)
    drain()
    with session_scope() as s:
        row = s.scalars(select(ActItem).where(ActItem.act_id == act_id)).one()
    assert row.parked_at is not None and "Смарт-процесс не найден" in (row.last_error or "")
    assert items(box) == [] and act(act_id).status == CREATED  # the act itself goes on


def test_bad_settings_and_files_off_the_portal_are_refused() -> None:
    with pytest.raises(ValidationError, match="OBMEN_ACTS_GROUP_USER_IDS"):
        Settings(acts_group_user_ids="7, twelve")
    assert Settings(acts_group_user_ids=" 7,12 ,").acts_group == frozenset({7, 12})
    client = Bitrix24Client("https://portal.example/rest/1/code/")
    with pytest.raises(Bitrix24RequestError, match="not on the portal portal.example"):
        client.download("https://elsewhere.example/scan.pdf")

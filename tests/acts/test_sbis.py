"""Electronic acts through the СБИС emulator: the send step and ``acts.track`` over the change feed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from config.settings import get_settings
from models.acts import REFUSED, SENDING, SENT, SIGNED, ActSyncCursor, SbisEvent
from models.db import session_scope
from models.exchange_log import ExchangeLog
from sandbox.sbis import SbisEmulator
from sandbox.server import Sandbox
from tasks.acts import machine
from tasks.acts.register import change_status, deal_stage, lock_act
from tasks.acts.sbis import ACTION, STAGE, sbis_client, track
from tasks.acts.steps import send_to_sbis
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import Outcome, run_step
from tests.acts.support import act, clock, deadlines, draft, history, sandbox_settings


@pytest.fixture(autouse=True)
def _no_publish(obmen_app) -> Iterator[None]:
    set_dispatch_mode("off")
    yield
    set_dispatch_mode("inline")


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with sandbox_settings(monkeypatch, SbisEmulator(clock())) as sandbox:
        yield sandbox


def emulator(box: Sandbox) -> SbisEmulator:
    found = box.emulator("sbis")
    assert isinstance(found, SbisEmulator)
    return found


def sending(number: str = "Э-1", deal_id: int = 101) -> int:
    act_id = draft(number=number, deal_id=deal_id, act_type="electronic_ul")
    with session_scope() as s:
        assert change_status(s, lock_act(s, act_id), SENT, actor=machine.MANAGER) == SENDING
    return act_id


def sent(number: str = "Э-1", deal_id: int = 101) -> int:
    act_id = sending(number, deal_id)
    assert run_step(send_to_sbis.spec, act_id) is Outcome.DONE
    return act_id


def scenario(box: Sandbox, act_id: int, action: str, after_s: float = 0) -> None:
    response = httpx.post(
        box.url + "/_sandbox/sbis/scenario",
        json={"document": act(act_id).sbis_document_id, "action": action, "after_s": after_s},
    )
    response.raise_for_status()


def events() -> list[SbisEvent]:
    with session_scope() as s:
        return list(s.scalars(select(SbisEvent).order_by(SbisEvent.happened_at, SbisEvent.event_id)))


def test_an_electronic_act_is_written_prepared_and_sent(box: Sandbox) -> None:
    act_id = sent()
    row = act(act_id)
    assert row.status == SENT and row.sent_at is not None
    [doc] = httpx.get(box.url + "/_sandbox/sbis/documents").json()
    assert (doc["id"], doc["number"], doc["state"]) == (row.sbis_document_id, "Э-1", "Отправлен")
    assert [d.kind for d in deadlines()] == ["signature"]
    assert history(act_id)[-2:] == [("Создан", SENDING, "manager"), (SENDING, SENT, "obmen")]
    with session_scope() as s:
        operations = s.scalars(select(ExchangeLog.operation).where(ExchangeLog.system == "sbis")).all()
    assert operations == [
        "СБИС.Аутентифицировать",
        "СБИС.ПрочитатьДокумент",
        "СБИС.ЗаписатьДокумент",
        "СБИС.ПодготовитьДействие",
        "СБИС.ВыполнитьДействие",
    ]
    assert run_step(send_to_sbis.spec, act_id) is Outcome.NOTHING_TO_DO


def test_a_send_repeated_after_a_crash_does_not_send_twice(box: Sandbox) -> None:
    act_id = sending()
    # The step's first run reached СБИС, then the worker died before its commit.
    doc_id = act(act_id).sbis_document_id
    assert doc_id
    client = sbis_client()
    with session_scope() as s:
        from tasks.acts.sbis import sbis_document

        client.write_document(sbis_document(s, act(act_id)))
    client.prepare_action(doc_id, STAGE, ACTION)
    client.execute_action(doc_id, STAGE, ACTION)
    executes = sum("ВыполнитьДействие" in e.body for e in emulator(box).log.since())
    assert run_step(send_to_sbis.spec, act_id) is Outcome.DONE
    assert act(act_id).status == SENT
    assert sum("ВыполнитьДействие" in e.body for e in emulator(box).log.since()) == executes == 1


def test_an_expired_session_is_renewed_in_the_middle_of_the_flow(box: Sandbox) -> None:
    first = sent("Э-1")
    httpx.post(box.url + "/_sandbox/sbis/sessions/expire").raise_for_status()
    second = sent("Э-2", deal_id=102)
    assert act(second).status == SENT
    statuses = [e.status for e in emulator(box).log.since() if e.path.endswith("/service/")]
    assert 401 in statuses
    httpx.post(box.url + "/_sandbox/sbis/sessions/expire").raise_for_status()
    scenario(box, first, "sign")
    track()
    assert act(first).status == SIGNED


def test_signed_in_sbis_closes_the_act_and_the_deal(box: Sandbox) -> None:
    act_id = sent()
    scenario(box, act_id, "sign", after_s=30)
    report = track()
    assert act(act_id).status == SENT  # not yet: the counterparty signs in 30 s of sandbox time
    assert report.outcomes["noted"] == 1  # our own «Отправка документа»
    box.clock.advance(60)
    report = track()
    assert report.outcomes["applied"] == 1
    row = act(act_id)
    assert row.status == SIGNED
    assert row.closed_at is not None and row.sbis_last_event_at is not None
    assert deadlines()[0].status == "cancelled"
    with session_scope() as s:
        assert deal_stage(s, 101) == "WON"
    assert history(act_id)[-1] == (SENT, SIGNED, "sbis")
    assert [(e.kind, e.outcome.split(":")[0]) for e in events()] == [
        ("sent", "noted"),
        ("delivered", "noted"),
        ("signed", "applied"),
    ]
    assert track().events == 0  # the cursor moved on


def test_refused_in_sbis_gives_remarks(box: Sandbox) -> None:
    act_id = sent()
    scenario(box, act_id, "refuse")
    track()
    assert act(act_id).status == REFUSED
    with session_scope() as s:
        assert deal_stage(s, 101) == "UC_REMARKS"


def test_a_repeating_feed_applies_each_event_once(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [sent(f"Э-{i}", deal_id=100 + i) for i in range(4)]
    for act_id in ids:
        scenario(box, act_id, "sign")
    box.clock.advance(5)  # the delivery notices are in the feed too: 12 events
    # Small pages, and every answer repeats the three events before the cursor.
    monkeypatch.setenv("OBMEN_SBIS_PAGE_SIZE", "5")
    get_settings.cache_clear()
    httpx.put(box.url + "/_sandbox/sbis/knobs", json={"extra": {"feed_repeat": 3}})
    report = track()
    assert report.pages >= 4
    assert report.outcomes["repeated"] > 0
    assert report.outcomes["applied"] == 4
    for act_id in ids:
        assert act(act_id).status == SIGNED
        assert [h for h in history(act_id) if h[1] == SIGNED] == [(SENT, SIGNED, "sbis")]
    assert len(events()) == 4 * 3  # sent, delivered, signed — each recorded once
    again = track()
    assert again.outcomes["applied"] == 0 and again.outcomes["repeated"] == again.events


def test_a_reordered_feed_keeps_the_latest_decision(box: Sandbox) -> None:
    act_id = sent()
    doc_id = act(act_id).sbis_document_id
    now = box.clock.now()
    # The signature arrives first; a refusal dated a minute earlier comes in later (late delivery).
    httpx.post(
        box.url + "/_sandbox/sbis/events",
        json={"document": doc_id, "name": "Утверждение документа", "at": now.isoformat()},
    ).raise_for_status()
    track()
    assert act(act_id).status == SIGNED
    httpx.post(
        box.url + "/_sandbox/sbis/events",
        json={
            "document": doc_id,
            "name": "Отклонение документа",
            "at": (now - timedelta(minutes=1)).isoformat(),
        },
    ).raise_for_status()
    track()
    assert act(act_id).status == SIGNED
    refusal = next(e for e in events() if e.kind == "refused")
    assert refusal.outcome == "stale: older than the signature or refusal already applied"


def test_a_shuffled_page_is_applied_in_time_order(box: Sandbox) -> None:
    act_id = sent()
    doc_id = act(act_id).sbis_document_id
    now = box.clock.now()
    for minutes, name in ((3, "Отклонение документа"), (1, "Утверждение документа")):
        httpx.post(
            box.url + "/_sandbox/sbis/events",
            json={"document": doc_id, "name": name, "at": (now + timedelta(minutes=minutes)).isoformat()},
        ).raise_for_status()
    httpx.put(box.url + "/_sandbox/sbis/knobs", json={"extra": {"feed_shuffle": True}})
    track()
    # Signed at +1 min, refused at +3 min: the act was signed first, then СБИС reported a refusal
    # that the machine does not allow after a signature; the signature stands, the refusal is noted.
    assert act(act_id).status == SIGNED
    outcomes = {e.name: e.outcome for e in events()}
    assert outcomes["Утверждение документа"].startswith("applied")
    assert outcomes["Отклонение документа"].startswith("ignored")


def test_an_answer_before_the_send_was_recorded_is_not_lost(box: Sandbox) -> None:
    act_id = sending()
    doc_id = act(act_id).sbis_document_id
    assert doc_id
    client = sbis_client()
    with session_scope() as s:
        from tasks.acts.sbis import sbis_document

        client.write_document(sbis_document(s, act(act_id)))
    client.prepare_action(doc_id, STAGE, ACTION)
    client.execute_action(doc_id, STAGE, ACTION)
    scenario(box, act_id, "sign")
    track()  # the send step has not committed yet (its worker died); the feed shows it signed
    assert act(act_id).status == SIGNED
    assert [h[1] for h in history(act_id)][-2:] == [SENT, SIGNED]
    assert run_step(send_to_sbis.spec, act_id) is Outcome.NOTHING_TO_DO


def test_an_unknown_cursor_falls_back_to_the_date(box: Sandbox) -> None:
    act_id = sent()
    track()
    with session_scope() as s:
        cursor = s.get(ActSyncCursor, "sbis_changes")
        assert cursor is not None and cursor.position
        cursor.position = "00000000-0000-0000-0000-000000000000"
    scenario(box, act_id, "sign")
    report = track()
    assert act(act_id).status == SIGNED
    assert report.outcomes["repeated"] >= 1  # read again from the date: harmless


def test_a_second_tracker_waits_its_turn(box: Sandbox) -> None:
    sent()
    track()
    with session_scope() as s:
        from tasks.acts.register import claim_cursor

        assert claim_cursor(s, "sbis_changes") is not None
        assert track().skipped == "another acts.track holds the cursor"

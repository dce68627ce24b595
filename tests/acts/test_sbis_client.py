"""The СБИС client against the СБИС emulator over real HTTP: JSON-RPC, sessions, errors, the feed."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from integrations.errors import PermanentError, TransientError
from integrations.exchange import Exchange
from integrations.sbis.client import DocumentNotFound, SbisClient, SbisRequestError, SbisTransientError
from integrations.sbis.wire import format_datetime, parse_datetime
from sandbox.harness import SandboxClock
from sandbox.sbis import LOGIN, PASSWORD, SbisEmulator
from sandbox.server import Sandbox
from tests.harness.waiting import wait_for


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with Sandbox([SbisEmulator(SandboxClock())]) as sandbox:
        yield sandbox


@pytest.fixture
def exchanges() -> list[Exchange]:
    return []


@pytest.fixture
def client(box: Sandbox, exchanges: list[Exchange]) -> SbisClient:
    # A login of its own per test: sessions are shared per process and login.
    emulator = box.emulator("sbis")
    assert isinstance(emulator, SbisEmulator)
    login = f"user-{uuid.uuid4().hex[:8]}"
    emulator.accounts[login] = PASSWORD
    return SbisClient(box.url + "/sbis", login, PASSWORD, recorder=exchanges.append, timeout=10)


def document(doc_id: str, number: str = "А-1", inn: str = "7728168971") -> dict:
    return {
        "Идентификатор": doc_id,
        "Номер": number,
        "Дата": "27.10.2025",
        "Тип": "ДокОтгрИсх",
        "НашаОрганизация": {"СвЮЛ": {"ИНН": "7707083893", "КПП": "773601001"}},
        "Контрагент": {"СвЮЛ": {"ИНН": inn, "КПП": "772801001"}},
        "Вложение": [{"Файл": {"Имя": "act.pdf", "ДвоичныеДанные": base64.b64encode(b"%PDF act").decode()}}],
    }


def send(client: SbisClient, doc_id: str, number: str = "А-1") -> None:
    client.write_document(document(doc_id, number))
    client.prepare_action(doc_id, "Отправка", "Отправить")
    client.execute_action(doc_id, "Отправка", "Отправить")


def test_dates_are_moscow_time_with_dots() -> None:
    moment = datetime(2025, 10, 27, 21, 30, 5, tzinfo=UTC)
    assert format_datetime(moment) == "28.10.2025 00.30.05"
    assert parse_datetime("28.10.2025 00.30.05") == moment
    with pytest.raises(ValueError, match="ДД.ММ.ГГГГ ЧЧ.ММ.СС"):
        parse_datetime("2025-10-28 00:30:05")


def test_write_prepare_execute_read(client: SbisClient, exchanges: list[Exchange]) -> None:
    doc_id = str(uuid.uuid4())
    written = client.write_document(document(doc_id))
    assert written["Идентификатор"] == doc_id
    assert [s["Название"] for s in written["Этап"]] == ["Отправка"]
    prepared = client.prepare_action(doc_id, "Отправка", "Отправить")
    assert prepared["Этап"][0]["Вложение"][0]["Файл"]["Хеш"]
    client.execute_action(doc_id, "Отправка", "Отправить")
    read = client.read_document(doc_id)
    assert read["Состояние"]["Название"] == "Отправлен"
    assert read["Этап"] == []
    assert [e["Название"] for e in read["Событие"]] == ["Отправка документа"]

    operations = [e.operation for e in exchanges]
    assert operations == [
        "СБИС.Аутентифицировать",
        "СБИС.ЗаписатьДокумент",
        "СБИС.ПодготовитьДействие",
        "СБИС.ВыполнитьДействие",
        "СБИС.ПрочитатьДокумент",
    ]
    # Neither the password nor the session id reaches the exchange log.
    for exchange in exchanges:
        assert PASSWORD not in (exchange.request_body or "") + (exchange.response_body or "")
        assert exchange.request_headers.get("x-sbissessionid", "***") == "***"
    assert exchanges[1].request_headers["content-type"].startswith("application/json-rpc")


def test_an_expired_session_logs_in_again_once(box: Sandbox, client: SbisClient) -> None:
    emulator = box.emulator("sbis")
    assert isinstance(emulator, SbisEmulator)
    doc_id = str(uuid.uuid4())
    client.write_document(document(doc_id))
    logins = emulator.logins
    assert httpx.post(box.url + "/_sandbox/sbis/sessions/expire").json()["expired"] >= 1
    assert client.read_document(doc_id)["Идентификатор"] == doc_id
    assert emulator.logins == logins + 1
    # The log records a status once the answer is sent, a moment after the client has it.
    wait_for(
        lambda: (
            [(e.path, e.status) for e in emulator.log.since()][-3:]
            == [("/sbis/service/", 401), ("/sbis/auth/service/", 200), ("/sbis/service/", 200)]
        ),
        timeout=10,
        what="the request log to show 401, login, retry",
    )


def test_an_idle_session_expires_in_sandbox_time(box: Sandbox, client: SbisClient) -> None:
    emulator = box.emulator("sbis")
    assert isinstance(emulator, SbisEmulator)
    emulator.knobs.extra["session_ttl_s"] = 3600
    client.write_document(document(str(uuid.uuid4())))
    logins = emulator.logins
    box.clock.advance(3601)
    client.write_document(document(str(uuid.uuid4()), "А-2"))
    assert emulator.logins == logins + 1


def test_wrong_credentials_are_permanent(box: Sandbox) -> None:
    bad = SbisClient(box.url + "/sbis", LOGIN, "wrong", recorder=lambda e: None, timeout=10)
    with pytest.raises(PermanentError, match="refused the login"):
        bad.read_document(str(uuid.uuid4()))


def test_json_rpc_errors(box: Sandbox, client: SbisClient) -> None:
    bad = document(str(uuid.uuid4()))
    del bad["Контрагент"]
    with pytest.raises(SbisRequestError, match="Контрагент") as caught:
        client.write_document(bad)
    assert caught.value.code == -32602
    assert isinstance(caught.value, PermanentError)
    with pytest.raises(DocumentNotFound):
        client.read_document(str(uuid.uuid4()))
    with pytest.raises(SbisRequestError, match="Method not found"):
        client.call("СБИС.НетТакогоМетода", {})
    doc_id = str(uuid.uuid4())
    client.write_document(document(doc_id))
    with pytest.raises(SbisTransientError, match="не подготовлено"):
        client.execute_action(doc_id, "Отправка", "Отправить")


def test_faults_are_transient(box: Sandbox, client: SbisClient) -> None:
    client.write_document(document(str(uuid.uuid4())))
    httpx.put(box.url + "/_sandbox/sbis/knobs", json={"fault": "rpc_error", "fault_next": 1})
    with pytest.raises(TransientError, match="HTTP 500"):
        client.read_document(str(uuid.uuid4()))
    httpx.put(box.url + "/_sandbox/sbis/knobs", json={"fault": "html_500", "fault_next": 1})
    with pytest.raises(TransientError):
        client.read_document(str(uuid.uuid4()))


def test_the_change_feed_pages_and_cursor(box: Sandbox, client: SbisClient) -> None:
    start = box.clock.now() - timedelta(seconds=5)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for i, doc_id in enumerate(ids):
        send(client, doc_id, f"А-{i}")
    httpx.post(
        box.url + "/_sandbox/sbis/scenario", json={"document": ids[0], "action": "sign", "after_s": 60}
    )
    httpx.post(box.url + "/_sandbox/sbis/scenario", json={"number": "А-1", "action": "refuse", "after_s": 30})

    first = client.list_changes(cursor=None, since=start, page_size=2)
    assert [e.kind for e in first.events] == ["sent", "sent"]
    assert first.has_more
    rest = client.list_changes(cursor=first.events[-1].event_id, since=None, page_size=2)
    assert [e.document_id for e in rest.events] == [ids[2]]
    assert not rest.has_more
    # Page 1 of the date query is the third event.
    assert client.list_changes(cursor=None, since=start, page_size=2, page=1).events == rest.events

    box.clock.advance(120)  # the counterparty acts; delivery notices come as well
    later = client.list_changes(cursor=rest.events[-1].event_id, since=None, page_size=50)
    kinds = {(e.document_id, e.kind) for e in later.events}
    assert (ids[0], "signed") in kinds and (ids[1], "refused") in kinds
    assert all(e.happened_at <= box.clock.now() for e in later.events)
    signed = next(e for e in later.events if e.kind == "signed")
    assert signed.state_code == "7"


def test_the_feed_refuses_a_bad_date_and_an_unknown_cursor(client: SbisClient) -> None:
    with pytest.raises(SbisRequestError, match="ДД.ММ.ГГГГ ЧЧ.ММ.СС"):
        client.call("СБИС.СписокИзменений", {"Фильтр": {"ДатаВремяС": "2025-10-27T10:00:00"}})
    with pytest.raises(SbisRequestError, match="Неизвестный идентификатор"):
        client.list_changes(cursor=str(uuid.uuid4()), since=None, page_size=10)

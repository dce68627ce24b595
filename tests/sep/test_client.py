"""The SEP client against the emulator over real HTTP: every answer becomes a typed outcome, and
hostile XML is refused without reading a file or fetching anything."""

from __future__ import annotations

import http.server
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from integrations.sep.client import WSDL, SepClient, SepClientConfig
from integrations.sep.messages import (
    FindCounterparty,
    LeaseChangeKind,
    QueueResult,
    QueueState,
    RegisterCounterparty,
    RequestApplicationData,
    SubmitLeaseChange,
)
from integrations.sep.outcomes import (
    Outcome,
    QueueNumberReceived,
    RequestError,
    ResponseReceived,
    SepExchange,
    XmlReadError,
)
from sandbox.server import Sandbox
from tests.harness.processes import free_port
from tests.sep.conftest import ORG, add_vehicle, sep, start_ownership_change


@pytest.fixture
def client(sep_box: Sandbox) -> Iterator[tuple[SepClient, list[SepExchange]]]:
    recorded: list[SepExchange] = []
    config = SepClientConfig(url=sep_box.url + "/sep", read_timeout_s=1.0, operation_timeout_s=2.0)
    sep_client = SepClient(config, recorder=recorded.append)  # type: ignore[arg-type]
    yield sep_client, recorded
    sep_client.close()


def _data_request(sep_box: Sandbox) -> RequestApplicationData:
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    return RequestApplicationData(organization_inn=ORG, application_number=number)


def test_the_sandbox_serves_the_pinned_wsdl(sep_box: Sandbox) -> None:
    served = httpx.get(sep_box.url + "/sep?wsdl").text
    assert f'<soap:address location="{sep_box.url}/sep"/>' in served
    unify = re.compile(r'<soap:address location="[^"]*"/>')
    assert unify.sub("", served) == unify.sub("", WSDL.read_text(encoding="utf-8"))


def test_queue_number_then_too_early_then_done_and_a_repeated_message_id_is_one_request(
    sep_box: Sandbox, client: tuple[SepClient, list[SepExchange]]
) -> None:
    sep_client, recorded = client
    sep(sep_box).knobs.update({"extra": {"min_delay_s": 60}})
    request, message_id = _data_request(sep_box), str(uuid.uuid4())
    first = sep_client.submit(request, message_id, request_id=7)
    again = sep_client.submit(request, message_id, request_id=7)
    assert isinstance(first, QueueNumberReceived) and first == again
    assert len(sep(sep_box).world.queue) == 1

    early = sep_client.get_queue_result(first.ticket.queue_number)
    assert isinstance(early, ResponseReceived) and early.result.state is QueueState.TOO_EARLY
    assert early.result.not_before is not None
    sep(sep_box).clock.advance(61)
    done = sep_client.get_queue_result(first.ticket.queue_number)
    assert isinstance(done, ResponseReceived) and done.result.state is QueueState.DONE
    assert done.result.application is not None
    assert done.result.application.number == request.application_number
    assert [(e.operation, e.request_status, e.queue_number) for e in recorded] == [
        ("RequestApplicationData", "Получен номер очереди", first.ticket.queue_number),
        ("RequestApplicationData", "Получен номер очереди", first.ticket.queue_number),
        ("GetQueueResult", "Получен ответ", first.ticket.queue_number),
        ("GetQueueResult", "Получен ответ", first.ticket.queue_number),
    ]
    assert recorded[0].request_id == 7 and recorded[0].message_id == message_id
    assert "<ns0:messageId>" in (recorded[0].request_body or "")


@pytest.mark.parametrize(
    ("fault", "kind", "retryable", "delivery", "status"),
    [
        ("soap_fault", RequestError, True, "refused", "Ошибка запроса"),
        ("soap_fault_client", RequestError, False, "refused", "Ошибка запроса"),
        ("html_500", RequestError, True, "maybe", "Ошибка запроса"),
        ("empty_200", XmlReadError, True, "maybe", "Ошибка чтения XML"),
        ("truncated", XmlReadError, True, "maybe", "Ошибка чтения XML"),
        ("slow_headers", RequestError, True, "maybe", "Ошибка запроса"),
        ("unknown_enum", XmlReadError, False, "maybe", "Ошибка чтения XML"),
        ("dtd", XmlReadError, False, "maybe", "Ошибка чтения XML"),
    ],
)
def test_faults_become_typed_outcomes(
    sep_box: Sandbox,
    client: tuple[SepClient, list[SepExchange]],
    fault: str,
    kind: type,
    retryable: bool,
    delivery: str,
    status: str,
) -> None:
    sep_client, recorded = client
    ticket = sep_client.submit(_data_request(sep_box), str(uuid.uuid4()))
    assert isinstance(ticket, QueueNumberReceived)
    sep(sep_box).knobs.update({"fault": fault, "fault_next": 1, "extra": {"slow_s": 2.5}})
    outcome = sep_client.get_queue_result(ticket.ticket.queue_number)
    assert isinstance(outcome, XmlReadError | RequestError) and isinstance(outcome, kind), outcome
    assert (outcome.retryable, outcome.delivery, outcome.request_status.value) == (
        retryable,
        delivery,
        status,
    )
    assert recorded[-1].request_status == status and recorded[-1].failures
    # The next poll is answered normally.
    assert isinstance(sep_client.get_queue_result(ticket.ticket.queue_number), ResponseReceived)


def test_unknown_enum_names_the_value(sep_box: Sandbox, client: tuple[SepClient, list[SepExchange]]) -> None:
    sep_client, _ = client
    ticket = sep_client.submit(_data_request(sep_box), str(uuid.uuid4()))
    assert isinstance(ticket, QueueNumberReceived)
    sep(sep_box).knobs.update({"fault": "unknown_enum", "fault_next": 1})
    outcome = sep_client.get_queue_result(ticket.ticket.queue_number)
    assert isinstance(outcome, XmlReadError) and "'Postponed'" in outcome.detail


def test_a_request_that_never_left_and_an_unknown_queue_number(
    sep_box: Sandbox, client: tuple[SepClient, list[SepExchange]]
) -> None:
    sep_client, recorded = client
    refused = sep_client.get_queue_result("Q-none")
    assert isinstance(refused, RequestError) and (refused.retryable, refused.fault_code) == (
        False,
        "UnknownQueueNumber",
    )
    assert recorded[-1].failures == [("soap_fault", "UnknownQueueNumber", refused.detail)]
    nowhere = SepClient(SepClientConfig(url=f"http://127.0.0.1:{free_port()}/sep", connect_timeout_s=1))
    outcome = nowhere.submit(_data_request(sep_box), str(uuid.uuid4()))
    assert isinstance(outcome, RequestError) and (outcome.retryable, outcome.delivery) == (True, "not_sent")


def test_an_answer_over_the_size_cap_is_not_read(sep_box: Sandbox) -> None:
    small = SepClient(SepClientConfig(url=sep_box.url + "/sep", max_response_bytes=300))
    outcome = small.submit(_data_request(sep_box), str(uuid.uuid4()))
    assert isinstance(outcome, XmlReadError) and "larger than 300 bytes" in outcome.detail
    assert not outcome.retryable


class _Listener(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Listener.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<!ENTITY stolen 'x'>")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("fault", ["file", "http"])
def test_external_entities_are_refused_without_reading_a_file_or_fetching(
    sep_box: Sandbox, client: tuple[SepClient, list[SepExchange]], fault: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    port = free_port()
    listener = http.server.HTTPServer(("127.0.0.1", port), _Listener)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    _Listener.hits = []
    sep_client, recorded = client
    try:
        ticket = sep_client.submit(_data_request(sep_box), str(uuid.uuid4()))
        assert isinstance(ticket, QueueNumberReceived)
        target = f"http://127.0.0.1:{port}/xxe" if fault == "http" else secret.as_uri()
        sep(sep_box).knobs.update({"fault": "entity", "fault_next": 1, "extra": {"entity_target": target}})
        outcome = sep_client.get_queue_result(ticket.ticket.queue_number)
    finally:
        listener.shutdown()
    assert isinstance(outcome, XmlReadError) and not outcome.retryable
    assert "DTD" in outcome.detail
    assert _Listener.hits == []
    assert "TOP-SECRET-CONTENT" not in repr(outcome) + repr(recorded[-1])
    assert target in (recorded[-1].response_body or "")  # the hostile answer is kept, as received


def _until_done(sep_client: SepClient, ticket: Outcome) -> QueueResult:
    assert isinstance(ticket, QueueNumberReceived)
    answer = sep_client.get_queue_result(ticket.ticket.queue_number)
    assert isinstance(answer, ResponseReceived)
    return answer.result


def test_lease_changes_sep_refuses_come_back_as_error_codes(
    sep_box: Sandbox, client: tuple[SepClient, list[SepExchange]]
) -> None:
    """What our registers check first, SEP checks too (they may be stale): each refusal is an Error
    answer with its code, as the contract says."""
    sep_client, _ = client
    world = sep(sep_box).world
    for epts, lessee in (("164301000000001", "7736050003"), ("164301000000002", "7728168971")):
        world.add_vehicle(epts, None, ORG).leased_to = lessee
    world.add_vehicle("164301000000003", None, ORG)

    def change(epts: list[str], kind: LeaseChangeKind, new: str | None = None) -> list[str]:
        args = SubmitLeaseChange(
            lessor_inn=ORG, kind=kind, lessee_inn="7736050003", new_lessee_inn=new, document_name="Д",
            document_number="1", document_date=date(2026, 12, 1), epts=epts, confirm_by=date(2099, 1, 1),
            notification_email="sep@example.ru",
        )  # fmt: skip
        result = _until_done(sep_client, sep_client.submit(args, str(uuid.uuid4())))
        return [e.code for e in result.errors] or [result.state.value]

    assert change(["164301000000003"], LeaseChangeKind.TERMINATION) == ["VehicleNotLeased"]
    assert change(["164301000000001", "164301000000002"], LeaseChangeKind.LEASE_END) == ["DifferentLessees"]
    assert change(["164301000000001"], LeaseChangeKind.LESSEE_CHANGE) == ["NewLesseeMissing"]
    assert change(["164301000000001"], LeaseChangeKind.LESSEE_CHANGE, "7704211201") == [
        "CounterpartyNotFound"
    ]
    assert change(["164301000000001"], LeaseChangeKind.TERMINATION) == ["Done"]


def test_a_counterparty_round_trips_through_find_and_register(
    sep_box: Sandbox, client: tuple[SepClient, list[SepExchange]]
) -> None:
    sep_client, _ = client
    find = FindCounterparty(organization_inn=ORG, inn="7736050003")
    assert [e.code for e in _until_done(sep_client, sep_client.submit(find, str(uuid.uuid4()))).errors] == [
        "CounterpartyNotFound"
    ]
    form = RegisterCounterparty(
        organization_inn=ORG, inn="7736050003", kpp="773601001", ogrn="1027700132195", name="ПАО «Партнёр»",
        address="Москва", email="edo@partner.example.ru",
    )  # fmt: skip
    registered = _until_done(sep_client, sep_client.submit(form, str(uuid.uuid4()))).counterparty
    found = _until_done(sep_client, sep_client.submit(find, str(uuid.uuid4()))).counterparty
    assert registered is not None and registered == found
    assert (found.sep_id, found.kpp, found.ogrn, found.address, found.email) == (
        "CP-000001", "773601001", "1027700132195", "Москва", "edo@partner.example.ru"
    )  # fmt: skip

"""The Synerdocs client against the emulator over real HTTP: every operation, every contract fault,
re-authentication, the deduplicated counterparty lookup, and what the exchange log keeps."""

from __future__ import annotations

import io
import uuid

import httpx
import pytest
from pypdf import PdfReader

from integrations.exchange import Exchange
from integrations.synerdocs.client import SynerdocsClient
from integrations.synerdocs.errors import (
    ContragentIsNotAuthorized,
    DocumentNotFound,
    InvalidRequest,
    PermanentFault,
    SignIsNotValid,
    SubscriberRejected,
    TransientFault,
    Unauthorized,
    Unreachable,
)
from integrations.synerdocs.model import (
    DeliveryStatus,
    NewSubscriber,
    OrganizationStatus,
    OrganizationType,
    OutgoingDocument,
    SignStatus,
)
from sandbox.server import Sandbox
from sandbox.synerdocs.emulator import COMPANY, CUSTOMER
from tests.edo import pki
from tests.edo.conftest import emulator, make_client
from tests.harness.processes import free_port

ROMASHKA = NewSubscriber(
    inn="3525004561",
    kpp="352501001",
    name="ООО «Ромашка»",
    organization_type=OrganizationType.LEGAL_ENTITY,
    emails=("edo@romashka.example.ru",),
    contact_person="Иванова А. А.",
)


def _documents(signer: pki.Signer, key: str, count: int = 2) -> list[OutgoingDocument]:
    documents = []
    for i in range(count):
        content = f"Заявка на технологическое присоединение № {key}-{i}\n".encode() * 50
        documents.append(
            OutgoingDocument(
                local_id=f"doc-{i}",
                file_name=f"zayavka-{i}.txt",
                content=content,
                signature=signer.sign(content),
                name=f"Заявка {i}",
                custom_field=key,
            )
        )
    return documents


def _romashka(client: SynerdocsClient) -> tuple[str, pki.Signer]:
    box = client.create_subscriber(ROMASHKA).box_address
    return box, pki.signer("Иванова Анна", "352500000193", organization_inn=ROMASHKA.inn)


def test_lookup_lists_a_subscriber_once_however_many_operators_list_it(
    client: SynerdocsClient, recorded: list[Exchange]
) -> None:
    found = client.find_organizations(CUSTOMER["inn"])
    assert [(o.inn, o.kpp, o.box_address, o.operator_code) for o in found] == [
        (CUSTOMER["inn"], None, CUSTOMER["box"], "2IG")
    ]
    assert found[0].status is OrganizationStatus.ACTIVE
    assert found[0].organization_type is OrganizationType.INDIVIDUAL_ENTREPRENEUR
    # The operator listed it twice (Synerdocs and a roaming operator): the answer is kept as it came.
    assert (
        recorded[-1].response_body is not None and recorded[-1].response_body.count("<a:Organization>") == 2
    )
    company = client.find_organizations(COMPANY["inn"], COMPANY["kpp"])
    assert [o.box_address for o in company] == [COMPANY["box"]]
    assert client.find_organizations("7707083893") == []


def test_a_member_a_newer_service_added_is_skipped(box: Sandbox, client: SynerdocsClient) -> None:
    client.authenticate()
    emulator(box).knobs.update({"fault": "extra_members", "fault_next": 1})
    found = client.find_organizations(COMPANY["inn"], COMPANY["kpp"])
    assert [(o.box_address, o.organization_type) for o in found] == [
        (COMPANY["box"], OrganizationType.LEGAL_ENTITY)
    ]
    assert emulator(box).log.since()[-1].fault == "extra_members"


def test_a_sole_trader_is_looked_up_without_kpp_and_bad_identifiers_never_leave(
    box: Sandbox, client: SynerdocsClient, recorded: list[Exchange]
) -> None:
    with pytest.raises(InvalidRequest, match="kpp: a sole trader"):
        client.find_organizations(CUSTOMER["inn"], "352501001")
    with pytest.raises(InvalidRequest, match="inn: .*checksum"):
        client.find_organizations("3525001233")
    assert recorded == []
    assert emulator(box).log.since() == []


def test_registering_a_subscriber_gives_a_box_the_company_may_send_from(
    box: Sandbox, client: SynerdocsClient
) -> None:
    created = client.create_subscriber(ROMASHKA)
    assert created.box_address.endswith("@synerdocs.ru") and created.kpp == ROMASHKA.kpp
    listed = client.find_organizations(ROMASHKA.inn, ROMASHKA.kpp)
    assert [(o.box_address, o.status) for o in listed] == [
        (created.box_address, OrganizationStatus.NON_ACTIVE)
    ]
    with pytest.raises(SubscriberRejected, match="уже зарегистрирована"):
        client.create_subscriber(ROMASHKA)
    sole_trader = client.create_subscriber(
        NewSubscriber(
            inn="352509876524",
            organization_type=OrganizationType.INDIVIDUAL_ENTREPRENEUR,
            last_name="Смирнов",
            first_name="Олег",
        )
    )
    assert sole_trader.kpp is None
    with pytest.raises(InvalidRequest, match="no КПП"):
        client.create_subscriber(
            NewSubscriber(
                inn="352501234518",
                organization_type=OrganizationType.INDIVIDUAL_ENTREPRENEUR,
                kpp="352501001",
            )
        )


def test_send_read_status_and_print_a_package(box: Sandbox, client: SynerdocsClient) -> None:
    from_box, signer = _romashka(client)
    key = f"pkg-{uuid.uuid4()}"
    documents = _documents(signer, key)
    sent = client.send_message(from_box, COMPANY["box"], documents, business_key=key)
    assert set(sent.document_ids) == {"doc-0", "doc-1"}
    assert emulator(box).world.send_calls == 1

    page = client.messages(to_box=COMPANY["box"])
    assert [(m.message_id, m.from_box, m.to_boxes) for m in page] == [
        (sent.message_id, from_box, (COMPANY["box"],))
    ]
    assert client.messages(after_message_id=sent.message_id, to_box=COMPANY["box"]) == []

    message = client.message(COMPANY["box"], sent.message_id)
    assert [d.content for d in message.documents] == [d.content for d in documents]
    assert {d.custom_field for d in message.documents} == {key}
    first = message.documents[0]
    signature = message.signature_of(first.id)
    assert signature is not None and signature.raw == documents[0].signature

    document_id = sent.document_ids["doc-0"]
    status = client.document_status(COMPANY["box"], document_id)
    assert (status.delivery, status.sign) == (DeliveryStatus.SENT_TO_RECIPIENT, SignStatus.WAITING_FOR_SIGN)
    assert status.sent_at == sent.sent_at and status.message_id == sent.message_id
    emulator(box).clock.advance(5)
    assert (
        client.document_status(COMPANY["box"], document_id).delivery is DeliveryStatus.DELIVERED_TO_RECIPIENT
    )

    form = client.print_document(COMPANY["box"], document_id)
    text = PdfReader(io.BytesIO(form.content)).pages[0].extract_text()
    assert form.name == "Заявка 0.pdf"
    assert "ДОКУМЕНТ ПОДПИСАН ЭЛЕКТРОННОЙ ПОДПИСЬЮ" in text
    assert f"Сертификат: {signer.serial}" in text and "Иванова Анна" in text
    legacy = client.download_pdf(COMPANY["box"], document_id)
    assert (
        legacy.content.startswith(b"%PDF-")
        and "ПОДПИСАН" in PdfReader(io.BytesIO(legacy.content)).pages[0].extract_text()
    )


def test_an_answer_is_signed_or_refused_by_the_customer_over_time(
    box: Sandbox, client: SynerdocsClient
) -> None:
    company_signer = pki.signer("Сидоров С. С.", "352500000193", organization_inn=COMPANY["inn"])
    emulator(box).knobs.update({"extra": {"delivery_s": 1, "answer_after_s": 60}})
    signed = client.send_message(COMPANY["box"], CUSTOMER["box"], _documents(company_signer, "answer-1", 1))
    emulator(box).knobs.update({"extra": {"recipient_answer": "reject"}})
    refused = client.send_message(COMPANY["box"], CUSTOMER["box"], _documents(company_signer, "answer-2", 1))
    signed_id, refused_id = signed.document_ids["doc-0"], refused.document_ids["doc-0"]

    assert client.document_status(COMPANY["box"], signed_id).sign is SignStatus.WAITING_FOR_SIGN
    emulator(box).clock.advance(62)
    done = client.document_status(COMPANY["box"], signed_id)
    assert (done.delivery, done.sign) == (DeliveryStatus.DELIVERED_TO_RECIPIENT, SignStatus.SIGNED)
    assert done.signed_at is not None and done.received_at is not None and done.signed_at > done.received_at
    assert done.recipient_signature is not None and done.recipient_signature.raw.startswith(b"0\x82")
    no = client.document_status(COMPANY["box"], refused_id)
    assert no.sign is SignStatus.SIGN_REJECTED and no.rejected_at is not None and no.comment
    # The print form now carries both stamps: the company's and the customer's.
    text = (
        PdfReader(io.BytesIO(client.print_document(COMPANY["box"], signed_id).content))
        .pages[0]
        .extract_text()
    )
    assert text.count("ДОКУМЕНТ ПОДПИСАН ЭЛЕКТРОННОЙ ПОДПИСЬЮ") == 2 and CUSTOMER["name"] in text


def test_a_message_sent_before_a_crash_is_found_by_its_key_not_sent_again(
    box: Sandbox, client: SynerdocsClient
) -> None:
    from_box, signer = _romashka(client)
    before = client.messages(from_box=from_box, to_box=COMPANY["box"])
    other = client.send_message(from_box, COMPANY["box"], _documents(signer, "pkg-other", 1))
    sent = client.send_message(from_box, COMPANY["box"], _documents(signer, "pkg-1"))
    # The worker died before committing `sent`; the next attempt looks before sending.
    found = client.find_sent(
        from_box, COMPANY["box"], "pkg-1", after_message_id=before[-1].message_id if before else None
    )
    assert found is not None and found.message_id == sent.message_id
    assert {d.id for d in found.documents} == set(sent.document_ids.values())
    assert client.find_sent(from_box, COMPANY["box"], "pkg-never-sent") is None
    assert client.find_sent(from_box, COMPANY["box"], "pkg-1", after_message_id=sent.message_id) is None
    assert other.message_id != sent.message_id and emulator(box).world.send_calls == 2


def test_an_expired_token_is_renewed_once_and_the_call_repeated(
    box: Sandbox, client: SynerdocsClient, recorded: list[Exchange]
) -> None:
    client.find_organizations(CUSTOMER["inn"])
    httpx.post(box.url + "/_sandbox/synerdocs/tokens/expire").raise_for_status()
    assert len(client.find_organizations(CUSTOMER["inn"])) == 1
    assert [e.operation for e in recorded] == [
        "Authenticate",
        "GetOrganizationListByInnKpp",
        "GetOrganizationListByInnKpp",
        "Authenticate",
        "GetOrganizationListByInnKpp",
    ]
    assert "Unauthorized" in (recorded[2].error or "")
    # By the sandbox clock too: the token lives token_ttl_s.
    emulator(box).knobs.update({"extra": {"token_ttl_s": 60}})
    client.authenticate()
    emulator(box).clock.advance(61)
    assert client.messages(to_box=COMPANY["box"]) == []
    assert [e.operation for e in recorded[-3:]] == ["GetMessages", "Authenticate", "GetMessages"]


def test_unauthorized_twice_is_an_error_not_a_loop(
    box: Sandbox, client: SynerdocsClient, recorded: list[Exchange]
) -> None:
    client.authenticate()
    emulator(box).knobs.update({"fault": "Unauthorized", "fault_next": 2})
    with pytest.raises(Unauthorized) as caught:
        client.messages(to_box=COMPANY["box"])
    assert caught.value.delivery == "refused" and caught.value.code == "Unauthorized"
    assert [e.operation for e in recorded[1:]] == ["GetMessages", "Authenticate"]
    wrong = make_client(box, recorded, password="wrong")
    with pytest.raises(Unauthorized, match="неверный логин или пароль"):
        wrong.find_organizations(CUSTOMER["inn"])


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("SignIsNotValid", SignIsNotValid),
        ("ContragentIsNotAuthorized", ContragentIsNotAuthorized),
        ("DocumentNotFound", DocumentNotFound),
        ("BoxAccessError", PermanentFault),
        ("UnexpectedError", TransientFault),
    ],
)
def test_contract_faults_are_typed_errors(
    box: Sandbox, client: SynerdocsClient, recorded: list[Exchange], fault: str, error: type[Exception]
) -> None:
    from_box, signer = _romashka(client)
    emulator(box).knobs.update({"fault": fault, "fault_next": 1})
    with pytest.raises(error) as caught:
        client.send_message(from_box, COMPANY["box"], _documents(signer, "pkg-f"))
    assert type(caught.value) is error
    assert caught.value.code == fault and caught.value.delivery == "refused"  # type: ignore[attr-defined]
    assert recorded[-1].response_status == 500 and "ServiceErrorFaultContract" in (
        recorded[-1].response_body or ""
    )
    assert emulator(box).world.send_calls == 0


def test_the_operator_refuses_a_signature_of_another_document_and_unknown_documents(
    box: Sandbox, client: SynerdocsClient
) -> None:
    from_box, signer = _romashka(client)
    content = b"the document"
    wrong = OutgoingDocument("d", "a.txt", content, signer.sign(b"another document"), custom_field="k")
    with pytest.raises(SignIsNotValid, match="message digest"):
        client.send_message(from_box, COMPANY["box"], [wrong])
    with pytest.raises(DocumentNotFound) as caught:
        client.document_status(COMPANY["box"], str(uuid.uuid4()))
    assert caught.value.field == "documentId"
    with pytest.raises(DocumentNotFound):
        client.print_document(COMPANY["box"], str(uuid.uuid4()))
    with pytest.raises(PermanentFault, match="BoxAccessError"):
        client.send_message(CUSTOMER["box"], COMPANY["box"], [wrong])
    assert emulator(box).world.send_calls == 0


def test_files_over_the_cap_and_incomplete_documents_never_leave(
    box: Sandbox, recorded: list[Exchange]
) -> None:
    small = make_client(box, recorded, max_file_bytes=1024)
    signer = pki.signer("Иванова Анна", "352500000193")
    big = OutgoingDocument("d", "big.pdf", b"x" * 1025, b"sig", custom_field="k")
    with pytest.raises(InvalidRequest, match=r"documents\[0\].content: 1025 bytes, over the cap of 1024"):
        small.send_message(COMPANY["box"], CUSTOMER["box"], [big])
    unsigned = OutgoingDocument("d", "a.txt", b"abc", b"", custom_field="k")
    with pytest.raises(InvalidRequest, match="signature"):
        small.send_message(COMPANY["box"], CUSTOMER["box"], [unsigned])
    long_key = OutgoingDocument("d", "a.txt", b"abc", signer.sign(b"abc"), custom_field="k" * 256)
    with pytest.raises(InvalidRequest, match="custom_field"):
        small.send_message(COMPANY["box"], CUSTOMER["box"], [long_key])
    assert recorded == [] and emulator(box).log.since() == []


def test_exchanges_are_recorded_with_secrets_and_files_summarized(
    client: SynerdocsClient, recorded: list[Exchange]
) -> None:
    from_box, signer = _romashka(client)
    documents = _documents(signer, "pkg-log", 1)
    client.send_message(from_box, COMPANY["box"], documents, business_key="pkg-log")
    authenticate, send = recorded[0], recorded[-1]
    assert authenticate.operation == "Authenticate" and authenticate.system == "synerdocs"
    everything = "".join(f"{e.request_body}{e.response_body}" for e in recorded)
    assert COMPANY["password"] not in everything
    assert "<ns0:password>***</ns0:password>" in (authenticate.request_body or "")
    assert "<AuthenticateResult>***</AuthenticateResult>" in (authenticate.response_body or "")
    assert "<ns0:authToken>***</ns0:authToken>" in (send.request_body or "")
    assert f"[{len(documents[0].content)} bytes, sha256 " in (send.request_body or "")
    assert (send.operation, send.business_key, send.response_status) == ("SendMessage", "pkg-log", 200)
    assert send.request_headers["soapaction"] == '"http://synerdocs.ru/IExchangeService/SendMessage"'
    assert all(
        e.duration_ms is not None and e.url and e.url.endswith("/ExchangeService.svc") for e in recorded
    )


def test_an_operator_that_is_not_there(box: Sandbox, recorded: list[Exchange]) -> None:
    nowhere = make_client(box, recorded, url=f"http://127.0.0.1:{free_port()}/synerdocs/ExchangeService.svc")
    with pytest.raises(Unreachable) as caught:
        nowhere.authenticate()
    assert caught.value.delivery == "not_sent" and recorded[-1].error and recorded[-1].response_status is None

"""The EDO flow step by step, in this process, against real Postgres and the emulator over HTTP: a
new customer registered and its package sent once, the company's cursor routing it with its
deadline, the answer sent with the stamped print form as version 2, tracked until signed; the
deadline fired when the answer is late; and every bad input refused clearly with nothing sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from config.settings import get_settings
from integrations.synerdocs.errors import UnsafeAnswer
from models.db import session_scope
from models.edo import (
    ANSWERED,
    PRINT_FORM,
    REFUSED,
    ROUTED,
    SENDING,
    SENT,
    SIGNED,
    STAMPED,
    STAMPING,
    EdoAnswerDeadline,
    EdoCounterparty,
    EdoDocumentVersion,
    EdoFile,
)
from models.exchange_log import ExchangeLog
from models.mail import OutgoingLetter
from sandbox.server import Sandbox
from sandbox.synerdocs.emulator import CUSTOMER as SEEDED
from tasks.edo import register, steps
from tasks.edo.clients import forget_clients
from tasks.edo.deadlines import sweep_deadlines
from tasks.edo.incoming import fetch
from tasks.edo.queries import xml_log
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import Outcome
from tests.edo.flow import (
    CUSTOMER,
    CUSTOMER_INN,
    PDF,
    TP_DAYS,
    answer,
    documents,
    documents_of,
    edo_settings,
    emulator,
    master_data,
    package,
    package_in,
    submit,
)
from tests.edo.pki import signer


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch, _sandbox: Sandbox) -> Iterator[Sandbox]:
    set_dispatch_mode("off")  # the steps are run by hand here
    try:
        with edo_settings(monkeypatch, _sandbox):
            master_data()
            yield _sandbox
    finally:
        set_dispatch_mode("inline")


def sent_count(box: Sandbox) -> int:
    return emulator(box).world.send_calls


def letters() -> list[OutgoingLetter]:
    with session_scope() as session:
        rows = list(session.scalars(select(OutgoingLetter).order_by(OutgoingLetter.id)))
        session.expunge_all()
        return rows


def sent_package(key: str = "cab-1") -> int:
    package_id = submit(package_in(key))
    assert steps.check_package.run(package_id) is Outcome.DONE
    assert steps.send_package.run(package_id) is Outcome.DONE
    return package_id


def test_a_new_customer_is_registered_and_its_package_sent_once_then_routed(box: Sandbox) -> None:
    package_id = submit(package_in())
    assert submit(package_in()) == package_id  # the same key again: the same package

    steps.check_package.run(package_id)
    checked = package(package_id)
    assert checked.status == SENDING and checked.message_id is None
    with session_scope() as session:
        customer = session.scalars(select(EdoCounterparty).where(EdoCounterparty.inn == CUSTOMER_INN)).one()
        assert customer.registered_by_us and customer.box_address == checked.from_box
    assert [d.signature_info["inns"] for d in documents_of(package_id)] == [[CUSTOMER_INN]] * 2  # type: ignore[index]

    steps.send_package.run(package_id)
    sent = package(package_id)
    assert (sent.status, sent_count(box)) == (SENT, 1)
    operator = emulator(box).world.messages[sent.message_id or ""]
    assert operator.sent_at == sent.sent_at and operator.to_box == sent.to_box
    assert all(d.operator_document_id and d.status == SENT for d in documents_of(package_id))
    assert steps.send_package.run(package_id) is Outcome.NOTHING_TO_DO  # a copy of the message

    report = fetch()
    assert dict(report.outcomes) == {"routed": 1}
    assert fetch().outcomes == {}  # each message once
    assert package(package_id).status == ROUTED
    first, second = documents_of(package_id)
    assert (first.status, first.responsible_id) == (ROUTED, "E1")
    assert first.answer_due_at is not None and sent.sent_at is not None
    assert first.answer_due_at - sent.sent_at > timedelta(days=TP_DAYS)  # working days, weekends off
    assert [letter.to_address for letter in letters()] == ["smirnov@voek.example"] * 2
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(EdoAnswerDeadline)) == 2
    # The «XML» tab: every exchange about the package, the password and token hidden.
    with session_scope() as session:
        log = xml_log(session, package_id)
    operations = {e.operation for e in log}
    assert {
        "GetOrganizationListByInnKpp",
        "CreateNonActiveSubscriber",
        "SendMessage",
    } <= operations
    send = next(e for e in log if e.operation == "SendMessage")
    assert "<" in (send.request_body or "") and "voek-sandbox-password" not in (send.request_body or "")


def test_the_answer_is_sent_stamped_as_version_2_mailed_and_tracked_until_signed(box: Sandbox) -> None:
    asked = sent_package()
    fetch()
    document = documents_of(asked)[0]
    answer_id = answer(document.id)
    steps.check_package.run(answer_id)
    steps.send_package.run(answer_id)
    sent = package(answer_id)
    assert sent.status == STAMPING and sent.to_box == package(asked).from_box
    answered = documents_of(asked)[0]
    assert (answered.status, answered.answered_at) == (ANSWERED, sent.sent_at)  # the operator's time
    with session_scope() as session:
        deadline = session.scalars(
            select(EdoAnswerDeadline).where(EdoAnswerDeadline.document_id == document.id)
        ).one()
        assert deadline.status == "cancelled"

    steps.print_package.run(answer_id)
    assert package(answer_id).status == STAMPED
    [answer_document] = documents_of(answer_id)
    with session_scope() as session:
        version = session.scalars(
            select(EdoDocumentVersion).where(
                EdoDocumentVersion.document_id == answer_document.id, EdoDocumentVersion.version == PRINT_FORM
            )
        ).one()
        pdf = session.get(EdoFile, version.sha256)
        assert pdf is not None and pdf.content.startswith(b"%PDF-")
    customer_letter = letters()[-1]
    assert customer_letter.to_address == "ivanov@example.ru"
    assert [a["content_type"] for a in customer_letter.attachments] == ["application/pdf"]

    emulator(box).clock.advance(3600)  # the customer signs in the cabinet (answer_after_s)
    steps.track_package.run(answer_id)
    assert package(answer_id).status == SIGNED
    [signed] = documents_of(answer_id)
    assert signed.status == SIGNED and signed.recipient_signature_sha256 and signed.signed_at


def test_a_refused_print_form_is_fetched_by_the_legacy_operation(box: Sandbox) -> None:
    asked = sent_package()
    fetch()
    answer_id = answer(documents_of(asked)[0].id)
    steps.check_package.run(answer_id)
    steps.send_package.run(answer_id)
    knobs = {"refuse_operation": "PrintDocument", "refuse_code": "PrintFormIsNotAvailable", "refuse_next": 1}
    emulator(box).knobs.update({"extra": knobs})
    steps.print_package.run(answer_id)
    assert package(answer_id).status == STAMPED
    with session_scope() as session:
        operations = [e.operation for e in xml_log(session, answer_id)]
        [version] = session.scalars(
            select(EdoDocumentVersion).where(EdoDocumentVersion.version == PRINT_FORM)
        )
        pdf = session.get(EdoFile, version.sha256)
        assert pdf is not None and pdf.content.startswith(b"%PDF-")
    assert operations[-2:] == ["PrintDocument", "DownloadPdfDocument"]


def test_an_unanswered_document_past_its_working_days_tells_its_responsible(box: Sandbox) -> None:
    asked = sent_package()
    fetch()
    first = documents_of(asked)[0]
    assert first.answer_due_at is not None
    assert sweep_deadlines(first.answer_due_at - timedelta(seconds=1)) == {"answer": 0, "cancelled": 0}
    fired = sweep_deadlines(first.answer_due_at + timedelta(seconds=1))
    assert fired == {"answer": 2, "cancelled": 0}
    with session_scope() as session:
        ids = list(session.scalars(select(EdoAnswerDeadline.id).order_by(EdoAnswerDeadline.id)))
    for deadline_id in ids:
        steps.fire_deadline.run(deadline_id)
    overdue = [letter for letter in letters() if letter.subject.startswith("ЭДО: истёк срок")]
    assert [letter.to_address for letter in overdue] == ["smirnov@voek.example"] * 2
    assert fetch().outcomes == {}


def test_a_found_customer_box_needs_an_account_that_may_send_from_it(box: Sandbox) -> None:
    petrov = signer("Петров Пётр Петрович", SEEDED["inn"])
    customer = {"inn": SEEDED["inn"], "name": SEEDED["name"]}
    data = package_in("cab-p", customer=customer, documents=documents(petrov, [("Жалоба", PDF)]))
    refused = submit(data)
    steps.check_package.run(refused)
    assert package(refused).status == REFUSED and "no account may send from box" in (
        package(refused).last_error or ""
    )

    with session_scope() as session:
        register.add_box(
            session,
            SEEDED["box"],
            SEEDED["login"],
            SEEDED["password"],
            inn=SEEDED["inn"],
            name=SEEDED["name"],
        )
    sent = submit(package_in("cab-p2", customer=customer, documents=documents(petrov, [("Жалоба", PDF)])))
    steps.check_package.run(sent)
    steps.send_package.run(sent)
    assert package(sent).status == SENT and package(sent).from_box == SEEDED["box"]


def test_bad_signatures_are_refused_by_name_and_nothing_is_sent(box: Sandbox) -> None:
    expired = signer("Иванов Иван Иванович", CUSTOMER_INN, valid_days=1)  # valid 30 to 29 days ago
    cases = {
        "other_document": documents(
            CUSTOMER, [("Заявка", PDF)], signature=CUSTOMER.sign(b"another document")
        ),
        "not_cms": documents(CUSTOMER, [("Заявка", PDF)], signature=b"not a CMS at all"),
        "wrong_inn": documents(signer("Чужой", "773371548106"), [("Заявка", PDF)]),
        "certificate_expired": documents(expired, [("Заявка", PDF)]),
        "attached": documents(CUSTOMER, [("Заявка", PDF)], signature=CUSTOMER.sign(PDF, detached=False)),
    }
    for reason, docs in cases.items():
        package_id = submit(package_in(f"bad-{reason}", documents=docs))
        steps.check_package.run(package_id)
        refused = package(package_id)
        assert refused.status == REFUSED and reason in (refused.last_error or ""), (
            reason,
            refused.last_error,
        )
        assert {d.status for d in documents_of(package_id)} == {REFUSED}
    assert sent_count(box) == 0


def test_a_lost_answer_to_send_message_leaves_the_message_for_the_cursor_to_adopt(box: Sandbox) -> None:
    package_id = submit(package_in())
    steps.check_package.run(package_id)
    # The operator takes the message but its answer comes after the client's deadline.
    emulator(box).knobs.update({"extra": {"hold_operation": "SendMessage", "hold_s": 2, "hold_next": 1}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(get_settings(), "synerdocs_deadline_s", 0.5)
        forget_clients()
        assert steps.send_package.run(package_id) is Outcome.RETRY
    forget_clients()
    lost = package(package_id)
    assert (lost.status, lost.message_id) == (SENDING, None) and "DeadlinePassed" in (lost.last_error or "")
    assert dict(fetch().outcomes) == {"adopted": 1}
    adopted = package(package_id)
    assert adopted.status == ROUTED and adopted.message_id in emulator(box).world.messages
    assert [d.responsible_id for d in documents_of(package_id)] == ["E1", "E1"]
    assert steps.send_package.run(package_id) is Outcome.NOTHING_TO_DO  # the retry finds it sent
    assert sent_count(box) == 1


def test_the_operator_refusing_a_signature_is_recorded_the_same_way(box: Sandbox) -> None:
    package_id = submit(package_in())
    steps.check_package.run(package_id)
    knobs = {"refuse_operation": "SendMessage", "refuse_code": "SignIsNotValid", "refuse_next": 1}
    emulator(box).knobs.update({"extra": knobs})
    assert steps.send_package.run(package_id) is Outcome.DONE
    refused = package(package_id)
    assert refused.status == REFUSED and "SignIsNotValid" in (refused.last_error or "")
    assert {d.status for d in documents_of(package_id)} == {REFUSED}
    assert sent_count(box) == 0


def test_bad_input_at_intake_is_refused_with_the_field(box: Sandbox) -> None:
    with pytest.raises(ValidationError, match="ИНН"):
        package_in(customer={"inn": "500100732258", "name": "ИП Иванов Иван"})  # a bad checksum
    with pytest.raises(register.Refused, match="unknown type 'poem'"):
        submit(package_in(documents=documents(CUSTOMER, [("Стихи", PDF)], document_type="poem")))
    with pytest.raises(register.Refused, match="over the cap"), pytest.MonkeyPatch.context() as patch:
        patch.setattr(get_settings(), "synerdocs_max_file_bytes", 100)
        submit(package_in("cab-big"))
    with pytest.raises(register.Refused, match="may not send"):
        sent = sent_package()
        fetch()
        answer(documents_of(sent)[0].id, sender="stranger")
    assert sent_count(box) == 1


@pytest.mark.parametrize("fault", ["dtd", "entity"])
def test_an_answer_with_a_dtd_or_entity_parks_the_step_with_nothing_half_sent(
    box: Sandbox, fault: str
) -> None:
    package_id = submit(package_in())
    emulator(box).knobs.update({"fault": fault, "fault_next": 1})
    assert steps.check_package.run(package_id) is Outcome.PARKED
    parked = package(package_id)
    assert parked.status == "received" and UnsafeAnswer.__name__ in (parked.last_error or "")
    assert sent_count(box) == 0
    with session_scope() as session:
        errors = session.scalars(select(ExchangeLog.error).where(ExchangeLog.error.is_not(None))).all()
        assert any("DOCTYPE" in (e or "") or "DTD" in (e or "") for e in errors), errors


def test_the_cli_sets_rules_and_senders_and_lists_what_the_api_lists(box: Sandbox) -> None:
    from click.testing import CliRunner

    from workers.cli import cli

    runner = CliRunner()
    ruled = runner.invoke(cli, ["edo", "rule", "complaint", "Жалоба", "E2", "10"])
    assert ruled.exit_code == 0, ruled.output
    assert runner.invoke(cli, ["edo", "sender", "petrova", "--employee", "E2"]).exit_code == 0
    asked = sent_package()
    fetch()
    listed = runner.invoke(cli, ["edo", "incoming", "--status", "routed", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [d["package_id"] for d in json.loads(listed.output)] == [asked, asked]
    assert runner.invoke(cli, ["edo", "overdue"]).output.strip() == "nothing"
    mine = runner.invoke(cli, ["edo", "packages", CUSTOMER_INN])
    assert "cab-1" in mine.output and ROUTED in mine.output
    with session_scope() as session:
        assert register.may_send(session, register.default_box(session), "petrova")


def test_a_message_sent_from_a_customers_own_account_is_kept_and_routed_as_other(box: Sandbox) -> None:
    from integrations.synerdocs.model import OutgoingDocument
    from sandbox.synerdocs.emulator import COMPANY
    from tests.edo.conftest import make_client

    petrov = signer("Петров Пётр Петрович", SEEDED["inn"])
    own = make_client(box, [], login=SEEDED["login"], password=SEEDED["password"])
    try:
        own.send_message(
            SEEDED["box"],
            COMPANY["box"],
            [OutgoingDocument("1", "pismo.pdf", PDF, petrov.sign(PDF), name="Письмо")],
        )
    finally:
        own.close()
    assert dict(fetch().outcomes) == {"foreign": 1}
    with session_scope() as session:
        [row] = session.scalars(select(EdoDocumentVersion)).all()
        assert session.get(EdoFile, row.sha256) is not None and row.size == len(PDF)
    [incoming] = documents_of(1)
    assert (incoming.document_type, incoming.responsible_id, incoming.title) == ("other", "E2", "Письмо")
    assert incoming.signature_sha256 is not None and incoming.answer_due_at is not None

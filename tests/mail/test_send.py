"""``mail.send`` over real SMTP to the sandbox sink: exactly once per business key, refusals park,
temporary failures retry, an accepted letter is never sent twice, and the exchange is logged."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from sqlalchemy import select

from integrations.mail.deadline import Watchdog
from integrations.mail.smtp import Attachment, SmtpSender, build_message
from models.db import session_scope
from models.exchange_log import ExchangeLog
from sandbox.harness import SandboxClock
from sandbox.mail import SmtpSink
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import STEPS, Outcome, run_step, run_steps
from tasks.mail.letters import SEND, queue_letter
from tests.harness.mail import letters, outbox, settings_env

SUBJECT = "СЭП: код 482913, заявление на смену собственника № 2026-000123, Scania R450 (OS-1)"


@pytest.fixture
def sink(obmen_app) -> Iterator[SmtpSink]:
    set_dispatch_mode("off")
    smtp = SmtpSink(SandboxClock())
    settings = smtp.client_settings("http://127.0.0.1:1")
    smtp.start("127.0.0.1")
    try:
        with settings_env(**settings, OBMEN_MAIL_FROM="obmen <obmen@leasing.example.ru>"):
            yield smtp
    finally:
        smtp.stop()
        set_dispatch_mode("inline")


def queue(key: str = "notice-1", **extra) -> int | None:
    with session_scope() as session:
        return queue_letter(
            session,
            business_key=key,
            to_address="anna@example.ru",
            to_name="Иванова Анна",
            subject=SUBJECT,
            text="Код подтверждения: 482913",
            html="<p>Код подтверждения: <b>482913</b></p>",
            source="test",
            **extra,
        )


def send(letter_id: int) -> Outcome:
    return run_step(STEPS[SEND], letter_id)


def smtp_log() -> list[ExchangeLog]:
    with session_scope() as session:
        return list(
            session.scalars(select(ExchangeLog).where(ExchangeLog.system == "smtp").order_by(ExchangeLog.id))
        )


def test_a_letter_is_sent_once_per_business_key(sink: SmtpSink) -> None:
    letter_id = queue()
    assert letter_id is not None
    assert queue() is None  # the same business key again: nothing new, nothing enqueued
    assert len(letters()) == 1 and [o.kwargs["kwargs"] for o in outbox(SEND)] == [{"id": letter_id}]

    assert send(letter_id) is Outcome.DONE
    assert send(letter_id) is Outcome.NOTHING_TO_DO
    [received] = sink.received()
    assert received.rcpt_tos == ["anna@example.ru"] and received.mail_from == "obmen@leasing.example.ru"
    message: EmailMessage = received.message()
    assert message["subject"] == SUBJECT  # the spaces survive folding
    assert str(message["to"]) == "Иванова Анна <anna@example.ru>"
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    [letter] = letters()
    assert letter.status == "sent" and letter.sent_at is not None
    assert (letter.smtp_response or "").startswith("250 2.0.0 OK: queued as SANDBOX")
    [exchange] = smtp_log()
    assert (exchange.operation, exchange.response_status, exchange.correlation_id) == (
        "send",
        250,
        letter.message_id,
    )
    assert exchange.business_key == "notice-1" and exchange.error is None
    assert message["message-id"] == letter.message_id


def test_a_refused_recipient_parks_the_letter(sink: SmtpSink) -> None:
    sink.knobs.update({"fault": "smtp_550", "fault_next": 1})
    letter_id = queue()
    assert letter_id is not None and send(letter_id) is Outcome.PARKED
    [letter] = letters()
    assert letter.status == "pending" and letter.parked_at is not None
    assert "550 5.1.1 <anna@example.ru>" in (letter.last_error or "")
    assert sink.received() == [] and "550" in (smtp_log()[0].error or "")


def test_temporary_refusals_and_a_dead_server_are_retried(sink: SmtpSink) -> None:
    sink.knobs.update({"fault": "smtp_451", "fault_next": 1})
    letter_id = queue()
    assert letter_id is not None and send(letter_id) is Outcome.RETRY
    assert "451" in (letters()[0].last_error or "")
    sink.stop()
    assert send(letter_id) is Outcome.RETRY
    assert "TransientError" in (letters()[0].last_error or "")
    sink.start("127.0.0.1")
    assert send(letter_id) is Outcome.DONE and len(sink.received()) == 1
    assert [e.error is None for e in smtp_log()] == [False, False, True]


def test_an_accepted_letter_is_not_sent_again_when_the_commit_was_lost(
    sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    letter_id = queue()
    assert letter_id is not None
    real = SmtpSender.send

    def accepted_then_lost(self, message, **kwargs):
        real(self, message, **kwargs)
        raise ConnectionError("the database connection dropped before the commit")

    monkeypatch.setattr(SmtpSender, "send", accepted_then_lost)
    assert send(letter_id) is Outcome.RETRY
    assert len(sink.received()) == 1 and letters()[0].status == "pending"
    monkeypatch.undo()
    assert send(letter_id) is Outcome.DONE
    assert len(sink.received()) == 1  # not sent a second time
    assert "exchange_log" in (letters()[0].smtp_response or "")


def test_attachments_go_out_with_the_letter(sink: SmtpSink) -> None:
    letter_id = queue("act-7", attachments=[Attachment("акт № 7.pdf", "application/pdf", b"%PDF-1.4 act")])
    assert letter_id is not None and send(letter_id) is Outcome.DONE
    message = sink.received()[0].message()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "акт № 7.pdf" and attachment.get_content() == b"%PDF-1.4 act"


def test_without_an_smtp_url_the_letter_is_parked_with_the_reason(sink: SmtpSink) -> None:
    letter_id = queue()
    assert letter_id is not None
    with settings_env(OBMEN_SMTP_URL=""):
        assert send(letter_id) is Outcome.PARKED
    assert "OBMEN_SMTP_URL is not set" in (letters()[0].last_error or "")


def test_a_batch_goes_over_one_connection_and_a_refused_letter_costs_only_itself(
    sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [queue(f"notice-{n}") for n in range(3)]
    assert all(ids)
    connects: list[object] = []
    connect = SmtpSender._connect

    def counted(self: SmtpSender, watchdog: Watchdog) -> smtplib.SMTP:
        connects.append(watchdog)
        return connect(self, watchdog)

    monkeypatch.setattr(SmtpSender, "_connect", counted)
    sink.knobs.update({"fault": "smtp_550", "fault_next": 1})  # the first RCPT only: then RSET, go on

    outcomes = run_steps(STEPS[SEND], [i for i in ids if i is not None])

    assert outcomes == {Outcome.PARKED: 1, Outcome.DONE: 2}
    assert len(connects) == 1
    statuses = {letter.id: (letter.status, letter.parked_at is not None) for letter in letters()}
    assert statuses == {ids[0]: ("pending", True), ids[1]: ("sent", False), ids[2]: ("sent", False)}
    assert sorted(r.rcpt_tos[0] for r in sink.received()) == ["anna@example.ru"] * 2
    log = smtp_log()
    assert [e.response_status for e in log] == [None, 250, 250] and "550" in (log[0].error or "")
    # Each exchange was committed on its own: the letters' business keys, in the order sent.
    assert [e.business_key for e in log] == ["notice-0", "notice-1", "notice-2"]


def test_a_letter_is_written_as_mime_reads_it() -> None:
    # Long enough to fold, with a character of four bytes in UTF-8 that no word may split.
    long_subject = SUBJECT + " 🚚 " + SUBJECT
    envelope = build_message(
        sender="obmen <obmen@leasing.example.ru>",
        to_address="anna@example.ru",
        to_name="Иванова Анна",
        subject=long_subject,
        text="Код подтверждения: 482913\n",
        html="<p>Код</p>",
        message_id="<1@leasing.example.ru>",
        attachments=[
            Attachment("акт выполненных работ № 7 за декабрь 2026 года.pdf", "application/pdf", b"%PDF")
        ],
    )
    assert (envelope.sender, envelope.recipient) == ("obmen@leasing.example.ru", "anna@example.ru")
    lines = envelope.data.split(b"\r\n")
    head = envelope.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert b"\n" not in b"".join(lines) and max(map(len, head)) <= 78 and max(map(len, lines)) <= 998
    message = BytesParser(policy=policy.default).parsebytes(envelope.data)
    assert message["subject"] == long_subject and message["message-id"] == "<1@leasing.example.ru>"
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]
    body = message.get_body(("plain",))
    assert body is not None and body.get_content() == "Код подтверждения: 482913\n"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "акт выполненных работ № 7 за декабрь 2026 года.pdf"
    assert attachment.get_content() == b"%PDF"

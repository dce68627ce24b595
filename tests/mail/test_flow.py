"""The whole intake with real processes: letters sent through the sandbox's mailroom (as the SEP
emulator sends them) are APPENDed to Dovecot; beat polls the mailbox; a worker stores, processes
and sends the personal notifications over SMTP to the sandbox sink — each person once per notice."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from models.db import session_scope
from models.exchange_log import ExchangeLog
from sandbox.harness import SandboxClock
from sandbox.mail import SandboxMailbox, SmtpSink
from sandbox.server import Sandbox
from tasks.machinery.outbox import set_dispatch_mode
from tests.harness.dovecot import DovecotServer
from tests.harness.mail import codes, letters, load_master, messages, outbox
from tests.harness.processes import OBMEN, Process, start_worker
from tests.harness.waiting import wait_for
from tests.mail import corpus


def test_letters_arrive_codes_are_filed_and_the_right_people_are_told(obmen_app) -> None:
    set_dispatch_mode("inline")
    load_master()
    clock = SandboxClock()
    sink, mailbox = SmtpSink(clock), SandboxMailbox(clock)
    with DovecotServer() as dovecot, Sandbox(emulators=[sink, mailbox]) as sandbox:
        mailbox.deliver_to = dovecot.url()
        env = {
            **sandbox.client_settings(),
            "OBMEN_MAIL_POLL_INTERVAL_S": "1",
            "OBMEN_OUTBOX_RELAY_INTERVAL_S": "1",
        }
        assert env["OBMEN_IMAP_URL"] == dovecot.url()
        worker = start_worker(env=env, concurrency=2, queues="mail,ops")
        beat = Process([OBMEN, "beat"], env=env)
        try:
            ownership = corpus.sep_letter(
                "ownership_change", "2026-000801", code="801801", message_id="<801@sep.elpts.ru>"
            )
            sandbox.mailroom.send(corpus.TECHNICAL, ownership)
            sandbox.mailroom.send(
                corpus.TECHNICAL,
                corpus.sep_letter("lease_application", "2026-000802", code="802802", vin="XTC*******1234567"),
            )
            sandbox.mailroom.send(
                corpus.TECHNICAL,
                corpus.sep_letter(number="2026-000803", code="803803", vin=None, epts="164301000011111"),
            )
            sandbox.mailroom.send(corpus.TECHNICAL, ownership)  # delivered twice
            sandbox.mailroom.send(corpus.TECHNICAL, corpus.not_sep())
            assert len(mailbox.delivered) == 5

            def settled() -> bool:
                found = messages()
                return len(found) == 5 and all(m.status != "new" for m in found) and len(sink.received()) >= 3

            wait_for(settled, timeout=90, what="five letters stored and processed, three notifications sent")
            wait_for(
                lambda: all(le.status == "sent" for le in letters()), timeout=30, what="letters marked sent"
            )
        finally:
            beat.stop()
            worker.stop()

        assert Counter(m.status for m in messages()) == {"processed": 3, "ignored": 2}
        assert sorted((c.application_number, c.code, c.responsible_id) for c in codes()) == [
            ("2026-000801", "801801", "E1"),
            ("2026-000802", "802802", "E3"),
            ("2026-000803", "803803", "E2"),
        ]
        received = Counter(tuple(m.rcpt_tos) for m in sink.received())
        assert received == {("anna@example.ru",): 1, ("maria@example.ru",): 1, ("petr@example.ru",): 1}
        assert set(dovecot.flags().values()) == {"\\Seen"}
        next_steps = outbox("sep.request_application_data")
        assert sorted(o.kwargs["kwargs"]["application_number"] for o in next_steps) == [
            "2026-000801",
            "2026-000802",
            "2026-000803",
        ]
        assert all(o.published_at is not None for o in next_steps)  # waiting in the sep queue
        with session_scope() as session:
            sends = list(session.scalars(select(ExchangeLog).where(ExchangeLog.system == "smtp")))
        assert [e.response_status for e in sends] == [250, 250, 250]

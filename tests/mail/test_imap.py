"""``mail.fetch`` against a real IMAP server (Dovecot on a loopback port): appended letters are
stored once in bounded batches, \\Seen is set only after the commit, a second fetch finds nothing,
a new UIDVALIDITY re-processes nothing, a 30 MB letter is never downloaded, IMAPS verifies, a folder
named in Cyrillic is found."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

import tasks.mail.intake
from integrations.errors import PermanentError
from models.db import session_scope
from models.exchange_log import ExchangeLog
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import STEPS, run_step
from tasks.mail.intake import PROCESS, fetch_mail
from tests.harness.dovecot import DovecotServer
from tests.harness.mail import codes, letters, load_master, messages, settings_env
from tests.mail import corpus


@pytest.fixture
def dovecot(obmen_app) -> Iterator[DovecotServer]:
    set_dispatch_mode("off")
    with DovecotServer() as server, settings_env(OBMEN_IMAP_URL=server.url(), OBMEN_MAIL_FETCH_BATCH="2"):
        yield server
    set_dispatch_mode("inline")


def mailbox_exchanges() -> list[ExchangeLog]:
    with session_scope() as session:
        return list(
            session.scalars(select(ExchangeLog).where(ExchangeLog.system == "mail").order_by(ExchangeLog.id))
        )


def test_appended_letters_are_stored_once_in_batches_then_nothing_is_new(dovecot: DovecotServer) -> None:
    dovecot.append(
        [corpus.sep_letter("ownership_change", f"2026-00100{i}", code=f"10000{i}") for i in range(5)]
    )
    report = fetch_mail()
    assert (report.found, report.stored, report.uidvalidity) == (5, 5, messages()[0].uidvalidity)
    assert [m.uid for m in messages()] == [1, 2, 3, 4, 5]
    assert all(m.mailbox == f"imap://sep@127.0.0.1:{dovecot.port}/INBOX" for m in messages())
    assert messages()[0].subject == "СЭП: заявление № 2026-001000 на смену собственника"
    assert set(dovecot.flags().values()) == {"\\Seen"}
    transcript = mailbox_exchanges()[0].request_body or ""
    assert "sep-secret" not in transcript and "UIDVALIDITY" in transcript
    assert [line.split(" -> ")[0] for line in transcript.splitlines() if line.startswith("UID FETCH")] == [
        "UID FETCH 2 UIDs",
        "UID FETCH 2 UIDs",
        "UID FETCH 1 UIDs",
    ]

    again = fetch_mail()
    assert (again.found, again.stored) == (0, 0) and len(messages()) == 5
    dovecot.append([corpus.not_sep()])
    assert fetch_mail().stored == 1 and [m.uid for m in messages()][-1] == 6


def test_flags_change_only_after_the_commit(dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    dovecot.append([corpus.sep_letter(message_id=f"<f{i}@sep.elpts.ru>") for i in range(4)])
    real = tasks.mail.intake.store_batch
    calls = []

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks.mail.intake, "store_batch", fail_second)
    with pytest.raises(RuntimeError):
        fetch_mail()
    assert [m.uid for m in messages()] == [1, 2]
    assert dovecot.flags() == {1: "\\Seen", 2: "\\Seen", 3: "", 4: ""}
    monkeypatch.setattr(tasks.mail.intake, "store_batch", real)
    assert fetch_mail().stored == 2  # the next poll picks up where the commit stopped
    assert set(dovecot.flags().values()) == {"\\Seen"}


def test_a_new_uidvalidity_processes_no_old_letter_again(dovecot: DovecotServer) -> None:
    load_master()
    dovecot.append([corpus.sep_letter(), corpus.not_sep()])
    fetch_mail()
    for message in messages():
        run_step(STEPS[PROCESS], message.id)
    dovecot.set_uidvalidity(4242)
    report = fetch_mail()
    assert (report.uidvalidity, report.found, report.stored, report.duplicates) == (4242, 2, 2, 2)
    assert [(m.uidvalidity == 4242, m.status) for m in messages()] == [
        (False, "processed"),
        (False, "ignored"),
        (True, "ignored"),
        (True, "ignored"),
    ]
    assert [m.duplicate_of_id for m in messages()[2:]] == [messages()[0].id, messages()[1].id]
    assert len(codes()) == 1 and len(letters()) == 1


def test_a_30_mb_letter_is_an_error_and_is_never_downloaded(dovecot: DovecotServer) -> None:
    big = corpus.big_letter(30 * 1024 * 1024)
    dovecot.append([big, corpus.sep_letter()])
    report = fetch_mail()
    assert (report.stored, report.oversize) == (2, 1)
    huge, small = messages()
    assert huge.status == "error" and huge.size >= 30 * 1024 * 1024
    assert f"{huge.size} bytes > OBMEN_MAIL_MAX_MESSAGE_BYTES" in (huge.reason or "")
    assert huge.subject == "СЭП: заявление № 2026-000299 на смену собственника" and "Message-ID" in (
        huge.headers or ""
    )
    assert small.status == "new"
    transcript = mailbox_exchanges()[0].request_body or ""
    assert "1 whole" in transcript and "1 over the cap: headers only" in transcript
    with session_scope() as session:
        assert session.get(type(huge), huge.id).raw is None  # type: ignore[union-attr]
    # After a new UIDVALIDITY the same over-size letter is known by its header block: no second error.
    dovecot.set_uidvalidity(777)
    assert (fetch_mail().duplicates, [m.status for m in messages()][2:]) == (2, ["ignored", "ignored"])


def test_imaps_verifies_the_server_certificate(obmen_app) -> None:
    set_dispatch_mode("off")
    with DovecotServer(tls=True) as server:
        server.append([corpus.sep_letter()])
        with settings_env(OBMEN_IMAP_URL=server.url(tls=True)):
            with pytest.raises(PermanentError, match="certificate refused"):
                fetch_mail()
            assert mailbox_exchanges()[-1].error is not None
            assert server.ca_file is not None
            with settings_env(OBMEN_MAIL_CA_FILE=server.ca_file):
                assert fetch_mail().stored == 1
    assert messages()[0].mailbox.startswith("imaps://sep@127.0.0.1:")
    set_dispatch_mode("inline")


def test_a_folder_named_in_cyrillic_is_read(dovecot: DovecotServer) -> None:
    dovecot.save([corpus.sep_letter(), corpus.not_sep()], folder="Уведомления СЭП")
    dovecot.append([corpus.not_sep()])  # INBOX is another folder: not read
    with settings_env(OBMEN_IMAP_URL=dovecot.url(folder="Уведомления%20СЭП")):
        report = fetch_mail()
    assert (report.found, report.stored) == (2, 2)
    assert all(m.mailbox.endswith("/Уведомления СЭП") for m in messages())
    assert set(dovecot.flags(folder="&BCMEMgQ1BDQEPgQ8BDsENQQ9BDgETw- &BCEELQQf-").values()) == {"\\Seen"}

"""Mail intake without Celery: the sandbox mailbox delivers into a Maildir, ``fetch_mail`` stores,
the ``mail.process`` step (run as a plain step) parses, matches, files codes, queues the
notification and the SEP next step — against real Postgres."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.db import session_scope
from models.mail import MailMessage
from sandbox.harness import Mailroom, SandboxClock
from sandbox.mail import SandboxMailbox
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import STEPS, Outcome, run_step, run_steps
from tasks.machinery.sweeper import redrive
from tasks.mail.intake import PROCESS, fetch_mail
from tests.harness.gateway import GatewayThread
from tests.harness.mail import codes, letters, load_master, messages, outbox, settings_env
from tests.harness.processes import obmen
from tests.mail import corpus


@pytest.fixture
def mailroom(tmp_path: Path, obmen_app) -> Iterator[Mailroom]:
    """A Maildir the sandbox mailbox delivers into and obmen reads; nothing is published."""
    set_dispatch_mode("off")
    room = Mailroom()
    box = SandboxMailbox(SandboxClock(), room)
    box.deliver_to = f"maildir://{tmp_path / 'maildir'}"
    box.start("127.0.0.1")
    with settings_env(OBMEN_IMAP_URL=box.deliver_to, OBMEN_MAIL_FETCH_BATCH="2"):
        yield room
    set_dispatch_mode("inline")


def deliver(room: Mailroom, *raws: bytes) -> None:
    for raw in raws:
        room.send(corpus.TECHNICAL, raw)


def process_all() -> list[Outcome]:
    return [run_step(STEPS[PROCESS], m.id) for m in messages() if m.status == "new"]


def only(message_status: str) -> MailMessage:
    found = [m for m in messages() if m.status == message_status]
    assert len(found) == 1, [(m.id, m.status, m.reason) for m in messages()]
    return found[0]


def test_letters_are_stored_once_processed_and_acted_on(mailroom: Mailroom, tmp_path: Path) -> None:
    load_master()
    deliver(mailroom, corpus.sep_letter(), corpus.not_sep(), corpus.garbage())
    report = fetch_mail()
    assert (report.found, report.stored) == (3, 3)
    assert [m.uid for m in messages()] == [1, 2, 3] and {m.status for m in messages()} == {"new"}
    # \Seen is set after the commit: every file moved to cur/ with the S flag.
    assert sorted(p.name.split(":")[1] for p in (tmp_path / "maildir" / "cur").iterdir()) == ["2,S"] * 3
    assert fetch_mail().found == 0  # the second fetch finds nothing new

    assert process_all() == [Outcome.DONE] * 3
    processed, ignored, error = only("processed"), only("ignored"), only("error")
    assert (processed.kind, processed.application_number) == ("ownership_change", "2026-000123")
    assert (processed.asset_inventory_number, processed.responsible_id) == ("OS-1", "E1")
    assert processed.match_reason == "full VIN XTA210990Y2765432 -> asset OS-1, its responsible E1"
    assert "news@shop.example.com is not a SEP sender" in (ignored.reason or "")
    assert (error.reason or "").startswith("unparseable")

    [code] = codes()
    assert (code.application_number, code.code, code.epts, code.vin) == (
        "2026-000123",
        "482913",
        "164301000012345",
        "XTA210990Y2765432",
    )
    assert (code.source_message_id, code.asset_inventory_number, code.responsible_id) == (
        processed.id,
        "OS-1",
        "E1",
    )
    assert str(code.valid_until) == "2026-12-02"

    [letter] = letters()
    assert (letter.to_address, letter.status, letter.source) == (
        "anna@example.ru",
        "pending",
        f"mail:{processed.id}",
    )
    assert "482913" in letter.subject and "Scania R450" in letter.subject
    assert "Код подтверждения: 482913" in letter.text_body and "<table" in (letter.html_body or "")
    assert [o.kwargs["kwargs"] for o in outbox("mail.send")] == [{"id": letter.id}]
    [next_step] = outbox("sep.request_application_data")
    assert next_step.kwargs["kwargs"] == {
        "application_number": "2026-000123",
        "source": f"mail:{processed.id}",
    }
    assert next_step.business_key == "sep-application:2026-000123"
    assert len(outbox("mail.process")) == 3
    # A second delivery of the step message finds nothing to do.
    assert run_step(STEPS[PROCESS], processed.id) is Outcome.NOTHING_TO_DO


@pytest.mark.parametrize(
    ("fields", "asset", "responsible", "reason"),
    [
        ({"vin": "XTA210990Y2765432"}, "OS-1", "E1", "full VIN XTA210990Y2765432"),
        ({"vin": "ХТА210990У2765432", "epts": None}, "OS-1", "E1", "full VIN XTA210990Y2765432"),
        ({"vin": "XTA********765432", "epts": None}, "OS-1", "E1", "masked VIN XTA********765432"),
        (
            {"vin": "Z9M********111111", "epts": None},
            None,
            "E2",
            "masked VIN Z9M********111111: 2 assets (OS-4, OS-5)",
        ),
        ({"vin": None, "epts": "164301000077777"}, "OS-7", "E3", "ЭПТС 164301000077777 -> asset OS-7"),
        ({"vin": None, "epts": "164301000011111"}, None, "E2", "ЭПТС 164301000011111: no asset"),
        (
            {"vin": "XTA210990Y0000001", "epts": "164301000099999"},
            "OS-3",
            "E3",
            "ЭПТС 164301000099999 -> asset OS-3",
        ),
        ({"vin": "X9L212300A0123456", "epts": None}, "OS-6", "E2", "asset OS-6 has no responsible"),
        ({"vin": None, "epts": None}, None, "E2", "neither a usable VIN nor an ЭПТС number"),
    ],
    ids=[
        "full-vin",
        "cyrillic-vin",
        "masked",
        "masked-ambiguous",
        "epts",
        "epts-unknown",
        "epts-after-vin",
        "no-responsible",
        "nothing",
    ],
)
def test_matching(
    mailroom: Mailroom, fields: dict[str, Any], asset: str | None, responsible: str, reason: str
) -> None:
    load_master()
    deliver(mailroom, corpus.sep_letter(**fields))
    fetch_mail()
    assert process_all() == [Outcome.DONE]
    message = only("processed")
    assert (message.asset_inventory_number, message.responsible_id) == (asset, responsible)
    assert reason in (message.match_reason or "")
    assert codes()[0].match_reason == message.match_reason
    assert (
        letters()[0].to_address
        == {"E1": "anna@example.ru", "E2": "petr@example.ru", "E3": "maria@example.ru"}[responsible]
    )


def test_a_cyrillic_vin_mapping_is_recorded(mailroom: Mailroom) -> None:
    load_master()
    deliver(mailroom, corpus.sep_letter(vin="ХТА210990У2765432"))
    fetch_mail()
    process_all()
    vin = only("processed").result["sep"]["vin"]  # type: ignore[index]
    assert vin["as_written"] == "ХТА210990У2765432" and vin["value"] == "XTA210990Y2765432"
    assert [m["cyrillic"] for m in vin["lookalikes"]] == ["Х", "Т", "А", "У"]


def test_the_same_letter_twice_gives_one_code_and_one_notification(mailroom: Mailroom) -> None:
    load_master()
    first = corpus.sep_letter(message_id="<once@sep.elpts.ru>")
    # The same letter again (a second delivery adds transit headers), and a resend with a new Message-ID.
    again = b"Received: from mx.example.ru; Tue, 1 Dec 2026 10:00:00 +0300\r\n" + first
    resent = corpus.sep_letter(message_id="<resent@sep.elpts.ru>")
    deliver(mailroom, first, again, resent)
    report = fetch_mail()
    assert (report.stored, report.duplicates) == (3, 1)
    duplicate = only("ignored")
    assert duplicate.duplicate_of_id == messages()[0].id and "same Message-ID and content" in (
        duplicate.reason or ""
    )
    process_all()
    assert [m.status for m in messages()] == ["processed", "ignored", "processed"]
    assert len(codes()) == 1 and len(letters()) == 1
    assert messages()[2].result["code_filed"] is False  # type: ignore[index]


def test_a_new_uidvalidity_does_not_process_old_letters_again(mailroom: Mailroom, tmp_path: Path) -> None:
    load_master()
    deliver(mailroom, corpus.sep_letter(), corpus.not_sep())
    fetch_mail()
    process_all()
    # The mailbox is rebuilt: the UID list is gone, so the same files get a new UIDVALIDITY.
    (tmp_path / "maildir" / "obmen-uidlist.json").unlink()
    deliver(mailroom, corpus.sep_letter("lease_entered", "2026-000500", code=None, until=None))
    report = fetch_mail()
    assert (report.found, report.stored, report.duplicates) == (3, 3, 2)
    assert len({m.uidvalidity for m in messages()}) == 2
    assert process_all() == [Outcome.DONE]  # only the new letter
    assert [m.status for m in messages()] == ["processed", "ignored", "ignored", "ignored", "processed"]
    assert len(codes()) == 1 and len(letters()) == 2


def test_an_oversize_letter_is_an_error_without_being_read(mailroom: Mailroom) -> None:
    with settings_env(OBMEN_MAIL_MAX_MESSAGE_BYTES="20000"):
        deliver(mailroom, corpus.big_letter(40_000))
        assert fetch_mail().oversize == 1
    message = only("error")
    assert "over the size cap" in (message.reason or "") and message.size > 40_000
    assert message.subject == "СЭП: заявление № 2026-000299 на смену собственника"
    assert outbox("mail.process") == []


def test_kinds_and_what_each_needs(mailroom: Mailroom) -> None:
    load_master()
    deliver(
        mailroom,
        corpus.sep_letter("lease_application", "2026-000601", code="765432"),
        corpus.sep_letter("lease_entered", "2026-000602", code=None, until=None),
        corpus.sep_letter("ownership_change", "2026-000603", code=None),
    )
    fetch_mail()
    process_all()
    lease, entered, no_code = messages()
    assert (lease.status, lease.kind) == ("processed", "lease_application")
    assert (entered.status, entered.kind) == ("processed", "lease_entered")
    assert no_code.status == "error" and "without a confirmation code" in (no_code.reason or "")
    assert [c.application_number for c in codes()] == ["2026-000601"]
    assert [len(outbox("sep.request_application_data")), len(letters())] == [2, 2]
    assert "сведения о лизинге внесены" in letters()[1].subject


def test_missing_master_data_parks_the_letter_until_fixed(mailroom: Mailroom) -> None:
    load_master(sep_settings={"organization_inn": "7707083893", "technical_email": "sep@example.ru"})
    deliver(
        mailroom,
        corpus.sep_letter(vin=None, epts="164301000011111"),
        corpus.sep_letter("ownership_change", "2026-000700", vin="X96330200A0654321"),
    )
    fetch_mail()
    assert process_all() == [Outcome.PARKED, Outcome.PARKED]
    first, second = messages()
    assert "name no SEP-responsible" in (first.last_error or "") and first.status == "new"
    assert "E4 (Кузнецов Олег) has no e-mail" in (second.last_error or "")
    assert codes() == [] and letters() == []  # nothing half-written

    load_master(
        employees=[{"id": "E4", "name": "Кузнецов Олег", "email": "oleg@example.ru"}],
        sep_settings={
            "organization_inn": "7707083893",
            "technical_email": "sep@example.ru",
            "responsible": "E2",
        },
    )
    assert redrive("mail_messages").ids == [first.id, second.id]
    assert process_all() == [Outcome.DONE, Outcome.DONE]
    assert [m.status for m in messages()] == ["processed", "processed"]
    assert sorted(le.to_address for le in letters()) == ["oleg@example.ru", "petr@example.ru"]


def test_nul_bytes_and_raw_8bit_names_are_stored_and_read(mailroom: Mailroom) -> None:
    load_master()
    deliver(mailroom, corpus.hostile())
    assert fetch_mail().stored == 1
    assert process_all() == [Outcome.DONE]
    message = only("processed")
    assert message.subject == "СЭП: заявление № 2026-000215" and message.application_number == "2026-000215"
    assert codes()[0].code == "151515"


def test_unreadable_content_never_raises_out_of_the_step(mailroom: Mailroom) -> None:
    with session_scope() as session:
        row = MailMessage(mailbox="test", uidvalidity=1, uid=1, content_hash="x", size=3, raw=b"\xff\xfe\x00")
        session.add(row)
        session.flush()
        row_id = row.id
    assert run_step(STEPS[PROCESS], row_id) is Outcome.DONE
    assert only("error").reason.startswith("unparseable")  # type: ignore[union-attr]


def test_obmen_fetch_mail_reads_the_mailbox_now(mailroom: Mailroom) -> None:
    deliver(mailroom, corpus.sep_letter(), corpus.not_sep())
    done = obmen("fetch-mail", env={"OBMEN_IMAP_URL": os.environ["OBMEN_IMAP_URL"]})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["found"], report["stored"]) == (2, 2) and report["mailbox"].startswith("maildir://")
    assert "fetching mail: 2/2" in done.stderr  # progress, as plain lines off a terminal
    assert [o.published_at is not None for o in outbox("mail.process")] == [True, True]
    assert obmen("fetch-mail", env={"OBMEN_IMAP_URL": ""}).returncode == 2


def test_metrics_count_letters_by_status_and_letters_waiting(mailroom: Mailroom) -> None:
    load_master()
    deliver(mailroom, corpus.sep_letter(), corpus.not_sep(), corpus.sep_letter(number="2026-000999"))
    fetch_mail()
    run_step(STEPS[PROCESS], messages()[0].id)
    run_step(STEPS[PROCESS], messages()[1].id)
    with GatewayThread() as gateway:
        text = httpx.get(gateway.url + "/metrics", headers={"Authorization": "Bearer test-read-token"}).text
    assert 'obmen_mail_messages{status="new"} 1.0' in text
    assert 'obmen_mail_messages{status="processed"} 1.0' in text
    assert 'obmen_mail_messages{status="ignored"} 1.0' in text
    assert "obmen_outgoing_letters_pending 1.0" in text


def test_a_batch_is_worked_set_wise_as_its_letters_would_be_one_by_one(mailroom: Mailroom) -> None:
    load_master()
    deliver(
        mailroom,
        corpus.sep_letter(message_id="<once@sep.elpts.ru>"),
        corpus.sep_letter(message_id="<resent@sep.elpts.ru>"),  # the same notice, resent
        corpus.sep_letter("lease_application", "2026-000802", code="802802", vin="XTC*******1234567"),
        corpus.not_sep(),
    )
    with settings_env(OBMEN_MAIL_FETCH_BATCH="10"):
        fetch_mail()

    assert run_steps(STEPS[PROCESS], [m.id for m in messages()]) == {Outcome.DONE: 4}

    assert [m.status for m in messages()] == ["processed", "processed", "processed", "ignored"]
    first, resent, lease, _ = messages()
    assert [m.result["code_filed"] for m in (first, resent, lease)] == [True, False, True]  # type: ignore[index]
    assert sorted((c.application_number, c.source_message_id) for c in codes()) == [
        ("2026-000123", first.id),
        ("2026-000802", lease.id),
    ]
    # One notification per notice (the resend's is the same one), each with its mail.send step due.
    assert first.result["notification"] == resent.result["notification"]  # type: ignore[index]
    assert [le.source for le in letters()] == [f"mail:{first.id}", f"mail:{lease.id}"]
    assert all(le.next_step_at is not None for le in letters())
    assert sorted(o.kwargs["kwargs"]["id"] for o in outbox("mail.send")) == sorted(le.id for le in letters())
    assert sorted(o.kwargs["kwargs"]["source"] for o in outbox("sep.request_application_data")) == [
        f"mail:{m.id}" for m in (first, resent, lease)
    ]

    # A letter that fails costs only itself: the batch runs again a letter at a time.
    deliver(
        mailroom,
        corpus.sep_letter("ownership_change", "2026-000700", vin="X96330200A0654321"),  # nobody to tell
        corpus.sep_letter("ownership_change", "2026-000701", code="701701"),
    )
    fetch_mail()
    assert run_steps(STEPS[PROCESS], [m.id for m in messages()[4:]]) == {Outcome.DONE: 1, Outcome.PARKED: 1}
    parked, done = messages()[4:]
    assert "has no e-mail" in (parked.last_error or "") and parked.status == "new" and parked.result is None
    assert done.status == "processed"
    assert sorted(c.application_number for c in codes()) == ["2026-000123", "2026-000701", "2026-000802"]
    assert len(letters()) == 3

"""SEP test set-up: the SEP emulator over real HTTP, compressed timings, master data, and a way to run
the outbox's due steps in this process (the plain functions, without Celery)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from config.settings import get_settings
from models.db import db_now, session_scope
from models.mail import MailMessage
from models.outbox import Outbox
from models.sep import SepRequest
from sandbox.harness import SandboxClock
from sandbox.mail import SandboxMailbox, SmtpSink
from sandbox.sep.emulator import SepEmulator
from sandbox.server import Sandbox
from tasks.machinery.master_data import import_master_data
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import ENTRIES, STEPS, run_step
from tasks.mail.intake import fetch_mail

DATA = Path(__file__).parents[1] / "data" / "master.json"
ORG = "7707083893"  # ours (master.json)
DEALER = "7702070139"
LESSEE = "7736050003"
EPTS = "164301000012345"  # OS-1, responsible E1
VIN = "XTA210990Y2765432"
EPTS_UNKNOWN = "164301000099999"

TIMINGS = {
    "OBMEN_SEP_MIN_POLL_DELAY_S": "0",
    "OBMEN_SEP_POLL_INTERVAL_S": "1",
    "OBMEN_SEP_MAX_POLLS": "5",
    "OBMEN_SEP_READ_TIMEOUT_S": "1.5",
    "OBMEN_SEP_OPERATION_TIMEOUT_S": "3",
    "OBMEN_SEP_CONNECT_TIMEOUT_S": "2",
}


@pytest.fixture(scope="session")
def _sandbox() -> Iterator[Sandbox]:
    clock = SandboxClock()
    with Sandbox([SepEmulator(clock), SandboxMailbox(clock), SmtpSink(clock)]) as box:
        yield box


@pytest.fixture
def sep_box(
    _sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, obmen_app: Any
) -> Iterator[Sandbox]:
    """The emulator, reset, lenient by default (SEP's own minimum delay 0); its letters delivered
    to a Maildir of this test's own, which mail intake reads; obmen pointed at all of it."""
    emulator = sep(_sandbox)
    emulator.reset()
    emulator.clock = SandboxClock()  # a test may have moved SEP's clock
    emulator.knobs.update({"extra": {"min_delay_s": 0}})
    mailbox = _sandbox.emulator("mailbox")
    assert isinstance(mailbox, SandboxMailbox)
    mailbox.deliver_to = f"maildir://{tmp_path / 'mail'}"
    for sub in ("new", "cur", "tmp"):
        (tmp_path / "mail" / sub).mkdir(parents=True)
    for key, value in {**TIMINGS, **_sandbox.client_settings()}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    set_dispatch_mode("off")
    yield _sandbox
    set_dispatch_mode("inline")
    get_settings.cache_clear()


def sep(box: Sandbox) -> SepEmulator:
    emulator = box.emulator("sep")
    assert isinstance(emulator, SepEmulator)
    return emulator


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture
def master() -> None:
    with session_scope() as session:
        report = import_master_data(session, json.loads(DATA.read_text()))
        assert report.errors == []


def add_vehicle(box: Sandbox, epts: str = EPTS, vin: str | None = VIN, owner: str = DEALER) -> None:
    response = httpx.post(
        box.url + "/_sandbox/sep/vehicles",
        json={"epts": epts, "vin": vin, "owner_inn": owner, "owner_name": "ООО «Дилер»"},
    )
    response.raise_for_status()


def start_ownership_change(box: Sandbox, epts: str = EPTS, **more: Any) -> dict[str, Any]:
    """The dealer starts handing the vehicle to us; SEP sends our technical mailbox the code."""
    response = httpx.post(
        box.url + "/_sandbox/sep/ownership-changes",
        json={"epts": epts, "new_owner_inn": ORG, "notify_email": "sep@example.ru", **more},
    )
    response.raise_for_status()
    return dict(response.json())


def intake() -> None:
    """Mail intake, for real: read the mailbox; ``mail.process`` then files each letter's code and
    asks for the application's data (``run_due`` runs it with the rest)."""
    report = fetch_mail()
    assert report.error is None, report.error


def mail_ids() -> list[int]:
    with session_scope() as session:
        return list(session.scalars(select(MailMessage.id).order_by(MailMessage.id)))


LETTER_FIELDS = {
    "application_number": "Номер заявления",
    "epts": "Номер ЭПТС",
    "vin": "VIN",
    "code": "Код подтверждения",
    "valid_until": "Подтвердить до",
}


def read_letter(raw: bytes) -> dict[str, str]:
    """Just enough of mail intake for these tests: the letter's fields."""
    import email
    from email import policy

    message = email.message_from_bytes(raw, policy=policy.default)
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = {"subject": str(message["Subject"])}
    for key, label in LETTER_FIELDS.items():
        match = re.search(rf"^{label}: (.+)$", body, re.M)
        if match:
            found[key] = match.group(1).strip()
    return found


def run_due(max_rounds: int = 200, until: Any = None, timeout: float = 30.0) -> list[str]:
    """Run the outbox's due rows in this process, as a worker would, until none is due (or ``until()``).

    Rows due later are waited for (the time itself is what is tested), up to ``timeout``.
    """
    ran: list[str] = []
    deadline = time.monotonic() + timeout
    for _ in range(max_rounds):
        if until is not None and until():
            return ran
        with session_scope() as session:
            now = db_now(session)
            row = session.scalars(
                select(Outbox)
                .where(Outbox.published_at.is_(None))
                .order_by(Outbox.not_before, Outbox.id)
                .limit(1)
            ).first()
            if row is None:
                return ran
            if row.not_before > now:
                wait = (row.not_before - now).total_seconds()
                if time.monotonic() + wait > deadline:
                    return ran
                time.sleep(min(wait, 0.5))
                continue
            row.published_at = now
            name, kwargs = row.task_name, dict(row.kwargs["kwargs"])
        ran.append(name)
        if name in STEPS:
            run_step(STEPS[name], kwargs["id"])
        else:
            with session_scope() as session:
                ENTRIES[name].call(session, **kwargs)
    raise AssertionError(f"the outbox did not drain in {max_rounds} rounds: {ran[-10:]}")


def requests_of(operation: str | None = None) -> list[SepRequest]:
    with session_scope() as session:
        query = select(SepRequest).order_by(SepRequest.id)
        if operation:
            query = query.where(SepRequest.operation == operation)
        return list(session.scalars(query))


def soap_requests(box: Sandbox, operation: str | None = None) -> list[str]:
    """The operations SEP was asked, in order (its own request log)."""
    found = []
    for entry in sep(box).log.since():
        match = re.search(r"<(?:\w+:)?(\w+) xmlns(?::\w+)?=\"urn:obmen:sep:v1\"", entry.body)
        if match and (operation is None or match.group(1) == operation):
            found.append(match.group(1))
    return found

"""Every client against every hostile answer its protocol can carry (sandbox/hostile.py): each ends
within its one deadline (here 1 s) in a typed error, recorded in ``exchange_log`` by the recorder
the flows use, whose ``error`` names the kind. Nothing is read from a file, fetched, inflated or
waited for past the deadline.

Before: the SEP client's DTD pattern backtracked exponentially on 30 processing instructions, and a
SEP answer whose headers trickled in ran to the task's soft time limit (httpx bounds each read, not
the request), as did Bitrix24's, СБИС's and a letter's SMTP session.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import select

from integrations.bitrix24.client import Bitrix24Client
from integrations.errors import IntegrationError
from integrations.exchange import Exchange
from integrations.mail.access import open_mailbox
from integrations.mail.smtp import Envelope, SmtpSender, build_message
from integrations.onec.client import OnecClient
from integrations.onec.sessions import RedisSessions
from integrations.sbis.client import SbisClient
from integrations.sep.client import SepClient, SepClientConfig
from integrations.sep.messages import RequestApplications
from integrations.sep.outcomes import QueueNumberReceived, RequestError, XmlReadError
from integrations.sms import SmscClient
from integrations.synerdocs.client import Credentials, SynerdocsClient, SynerdocsConfig
from models.db import session_scope
from models.exchange_log import ExchangeLog
from sandbox.server import Sandbox
from sandbox.synerdocs.emulator import ENDPOINT
from tasks.machinery.exchange import record_exchange
from tasks.sep.record import record_sep_exchange

DEADLINE_S = 0.5
CAP = 1_000_000
# Enough for the test's own bookkeeping around a call cut at the deadline, on a loaded machine.
SLACK_S = 1.5
KNOBS = {
    "slow_s": 5,
    "drip_interval_s": 0.5,
    "drip_total_s": 5,
    "huge_bytes": 3_000_000,
    "bomb_bytes": 50 << 20,
    "pi_count": 30_000,
}
XML_KINDS = ["dtd", "entity", "pi_flood"]
TRANSPORT_KINDS = ["slow_headers", "drip_body", "drip_headers", "huge", "gzip_bomb"]
DEADLINE_KINDS = {"slow_headers", "drip_body", "drip_headers"}


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    # The recorder's first connection and first insert are not the client's time.
    record_exchange(Exchange(system="warmup", operation="warmup"))
    with Sandbox() as sandbox:
        yield sandbox


def _base(box: Sandbox, system: str, kind: str) -> str:
    """Where the client is pointed: the sandbox, or the side port whose headers trickle."""
    if kind != "drip_headers":
        return box.url
    found = httpx.get(f"{box.url}/_sandbox/{system}/drip").json()
    return f"http://{found['host']}:{found['port']}"


# --- each client, pointed at ``base``: its one call, and how to close it ---------------------------
Call = tuple[Callable[[], Any], Callable[[], None]]


def _sep(box: Sandbox, base: str) -> Call:
    client = SepClient(
        SepClientConfig(url=base + "/sep", operation_timeout_s=DEADLINE_S, max_response_bytes=CAP),
        recorder=record_sep_exchange,
    )
    today = date.today()
    request = RequestApplications(organization_inn="7707083893", period_from=today, period_to=today)
    return (lambda: client.submit(request, str(uuid.uuid4()))), client.close


def _synerdocs(box: Sandbox, base: str) -> Call:
    settings = box.client_settings()
    config = SynerdocsConfig(
        url=base + "/synerdocs" + ENDPOINT,
        application_id=settings["OBMEN_SYNERDOCS_APPLICATION_ID"],
        deadline_s=DEADLINE_S,
        max_answer_bytes=CAP,
    )
    credentials = Credentials(settings["OBMEN_SYNERDOCS_LOGIN"], settings["OBMEN_SYNERDOCS_PASSWORD"])
    client = SynerdocsClient(config, credentials, recorder=record_exchange)
    return client.authenticate, client.close


def _bitrix24(box: Sandbox, base: str) -> Call:
    webhook = box.client_settings()["OBMEN_BITRIX24_WEBHOOK_URL"].replace(box.url, base)
    client = Bitrix24Client(webhook, recorder=record_exchange, timeout_s=DEADLINE_S, max_answer_bytes=CAP)
    return client.deal_list, client.close


def _sbis(box: Sandbox, base: str) -> Call:
    settings = box.client_settings()
    client = SbisClient(
        base + "/sbis",
        settings["OBMEN_SBIS_LOGIN"],
        settings["OBMEN_SBIS_PASSWORD"],
        recorder=record_exchange,
        timeout=DEADLINE_S,
        max_answer_bytes=CAP,
    )
    return client.authenticate, client.http.close


def _onec(box: Sandbox, base: str) -> Call:
    settings = box.client_settings()
    connection = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    client = OnecClient(
        settings["OBMEN_ONEC_URL"].replace(box.url, base),
        settings["OBMEN_ONEC_USER"],
        SecretStr(settings["OBMEN_ONEC_PASSWORD"]),
        sessions=RedisSessions(connection, f"hostile-{uuid.uuid4().hex[:6]}", 4),
        max_file_bytes=CAP // 2,
        recorder=record_exchange,
        deadline_s=DEADLINE_S,
    )

    def close() -> None:
        client.close()
        connection.close()

    return (lambda: client.changes(None, limit=10)), close


def _sms(box: Sandbox, base: str) -> Call:
    settings = box.client_settings()
    client = SmscClient(
        settings["OBMEN_SMS_URL"].replace(box.url, base),
        settings["OBMEN_SMS_LOGIN"],
        settings["OBMEN_SMS_PASSWORD"],
        recorder=record_exchange,
        timeout_s=DEADLINE_S,
        max_answer_bytes=CAP,
    )
    return client.balance, client.close


CLIENTS: dict[str, tuple[str, Callable[[Sandbox, str], Call]]] = {
    "sep": ("sep", _sep),
    "synerdocs": ("synerdocs", _synerdocs),
    "bitrix24": ("bitrix24", _bitrix24),
    "sbis": ("sbis", _sbis),
    "onec": ("onec", _onec),
    "sms": ("sms", _sms),
}
CASES = [
    *((client, kind) for client in ("sep", "synerdocs") for kind in XML_KINDS),
    *((client, kind) for client in CLIENTS for kind in TRANSPORT_KINDS),
    *((client, "deep_json") for client in ("bitrix24", "sbis", "onec", "sms")),
]


def _expected(client: str, kind: str) -> str | None:
    """How the exchange log names the error (None: the exchange itself went well)."""
    if kind in ("pi_flood", "deep_json"):
        return None
    if kind in DEADLINE_KINDS:
        return "DeadlinePassed: "
    if client == "synerdocs":
        return "UnsafeAnswer: "
    if kind in ("huge", "gzip_bomb"):
        return "AnswerTooLarge: "
    return "XmlRefused: "


def _last_exchange(system: str) -> ExchangeLog:
    with session_scope() as session:
        row = session.scalars(
            select(ExchangeLog).where(ExchangeLog.system == system).order_by(ExchangeLog.id.desc()).limit(1)
        ).first()
        assert row is not None, f"no exchange_log row of {system}"
        session.expunge(row)
        return row


@pytest.mark.parametrize(("client", "kind"), CASES)
def test_a_hostile_answer_ends_within_the_deadline_in_a_typed_error_in_the_exchange_log(
    box: Sandbox, client: str, kind: str
) -> None:
    system, make = CLIENTS[client]
    call, close = make(box, _base(box, system, kind))
    box.emulator(system).knobs.update({"fault": kind, "fault_next": 1, "extra": KNOBS})
    started = time.monotonic()
    try:
        outcome: Any = call()
    except IntegrationError as exc:
        outcome = exc
    finally:
        took = time.monotonic() - started
        close()
        box.emulator(system).knobs.update({"fault_next": 0})

    expected = _expected(client, kind)
    assert took < DEADLINE_S + SLACK_S, f"{client} × {kind} took {took:.1f} s"
    row = _last_exchange(system)
    if expected is None:
        assert row.error is None and row.response_status == 200
        if kind == "deep_json":  # read as JSON by the client, after the exchange: a typed refusal
            assert isinstance(outcome, IntegrationError), outcome
        else:  # legal XML, read as it should be
            assert not isinstance(outcome, IntegrationError | XmlReadError | RequestError), outcome
        return
    if client == "sep":
        assert isinstance(outcome, XmlReadError | RequestError) and outcome.detail.startswith(expected)
    else:
        assert isinstance(outcome, IntegrationError), outcome
    assert (row.error or "").startswith(expected), row.error
    assert row.duration_ms is not None and row.duration_ms < (DEADLINE_S + SLACK_S) * 1000


def test_a_sep_answer_after_a_processing_instruction_flood_is_read_in_milliseconds(box: Sandbox) -> None:
    call, close = _sep(box, box.url)
    box.emulator("sep").knobs.update({"fault": "pi_flood", "fault_next": 1, "extra": {"pi_count": 100_000}})
    started = time.monotonic()
    try:
        assert isinstance(call(), QueueNumberReceived)
    finally:
        close()
    assert time.monotonic() - started < 1.0


def _letter() -> Envelope:
    return build_message(
        sender="obmen@example.ru",
        to_address="a@example.ru",
        to_name=None,
        subject="test",
        text="hello",
        html=None,
        message_id=f"<{uuid.uuid4().hex}@example.ru>",
    )


def test_an_smtp_greeting_that_trickles_is_cut_at_the_deadline(box: Sandbox) -> None:
    box.emulator("smtp").knobs.update({"extra": KNOBS})
    found = httpx.get(f"{box.url}/_sandbox/smtp/drip").json()
    sender = SmtpSender(
        f"smtp://{found['host']}:{found['port']}", timeout=DEADLINE_S, recorder=record_exchange
    )
    started = time.monotonic()
    with pytest.raises(IntegrationError, match=f"within {DEADLINE_S} s"):
        sender.send(_letter())
    assert time.monotonic() - started < DEADLINE_S + SLACK_S
    assert (_last_exchange("smtp").error or "").startswith("DeadlinePassed: ")


def test_an_imap_greeting_that_trickles_is_cut_at_the_deadline(box: Sandbox) -> None:
    box.emulator("mailbox").knobs.update({"extra": KNOBS})
    found = httpx.get(f"{box.url}/_sandbox/mailbox/drip").json()
    url = f"imap://user:secret@{found['host']}:{found['port']}/INBOX"
    started = time.monotonic()
    with (
        pytest.raises(IntegrationError, match=f"within {DEADLINE_S} s"),
        open_mailbox(url, timeout=DEADLINE_S, recorder=record_exchange),
    ):
        pass
    assert time.monotonic() - started < DEADLINE_S + SLACK_S
    assert (_last_exchange("mail").error or "").startswith("DeadlinePassed: ")


def test_only_the_bounded_module_opens_http_connections() -> None:
    """Every outbound HTTP call goes through integrations/bounded_http.py: nothing else in the code
    that runs in production builds an httpx client or calls httpx, urllib or requests directly."""
    root = Path(__file__).resolve().parents[2]
    direct = re.compile(
        r"httpx\.(?:Client|AsyncClient|get|post|put|request|stream)\(|urlopen\(|\brequests\.(?:get|post|put|request|Session)\("
    )
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for package in ("integrations", "tasks", "workers", "config", "models")
        for path in sorted((root / package).rglob("*.py"))
        if path.name != "bounded_http.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if direct.search(line)
    ]
    assert offenders == []

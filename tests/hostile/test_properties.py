"""The parsers of untrusted bytes never raise anything but our typed errors (bounded property tests).

* the XML gate (``integrations.xmlsafe``): any bytes → an element, ``XmlRefused`` or ``XmlMalformed``;
* SEP's answers, read by the client end to end over real HTTP: real answers of the emulator, cut,
  spliced with hostile fragments, their texts replaced → always a typed outcome, never an exception;
* Synerdocs' answers, the same way → a ``SynerdocsError`` at most;
* letters (``integrations.mail``): any bytes → a ``Letter`` (the parser never raises), and the SEP
  recognition over it never raises.

Examples are derandomized (the same on every run) and few enough to take seconds.
"""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.exchange import Exchange
from integrations.mail.parse import content_hash, parse_letter, read_headers
from integrations.mail.sep import recognise
from integrations.sep.client import SepClient, SepClientConfig
from integrations.sep.messages import RequestApplicationData
from integrations.sep.outcomes import QueueNumberReceived, RequestError, ResponseReceived, XmlReadError
from integrations.synerdocs.client import Credentials, SynerdocsClient, SynerdocsConfig
from integrations.synerdocs.errors import SynerdocsError
from integrations.xmlsafe import XmlMalformed, XmlRefused, parse_untrusted
from sandbox.server import Sandbox
from sandbox.synerdocs.emulator import COMPANY, CUSTOMER, ENDPOINT
from tests.sep.conftest import ORG, add_vehicle, start_ownership_change

BOUNDED = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Each SOAP example is a request over loopback and a zeep read: fewer of them.
OVER_HTTP = settings(BOUNDED, max_examples=60)
FRAGMENTS = st.sampled_from(
    [
        b'<!DOCTYPE a [<!ENTITY x "y">]>',
        b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/x.dtd">',
        b"&x;",
        b"&lol6;",
        b"<?x?>" * 30,
        b"<!--",
        b"]]>",
        b"<![CDATA[",
        b"<a>",
        b"</b>",
        b"\x00",
        b"\xff\xfe",
        b"&#0;",
        b"&#x110000;",
        b'<?xml version="1.0" encoding="koi8-r"?>',
        b"9999-12-31T23:59:59+00:00",
        b"0001-01-01T00:00:00",
        b"Postponed",
        b' xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
        b"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>x</faultstring></soap:Fault>",
    ]
) | st.binary(max_size=24)
_TEXT = re.compile(rb">([^<>]{1,80})<")


@st.composite
def spoilt(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real answer, cut, spliced or with one of its texts replaced, up to three times."""
    doc = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(doc)))
        how = draw(st.sampled_from(["cut", "insert", "text", "delete"]))
        if how == "cut":
            doc = doc[:at]
        elif how == "insert":
            doc = doc[:at] + draw(FRAGMENTS) + doc[at:]
        elif how == "delete":
            doc = doc[:at] + doc[min(len(doc), at + draw(st.integers(1, 200))) :]
        else:
            texts = list(_TEXT.finditer(doc))
            if texts:
                found = texts[draw(st.integers(0, len(texts) - 1))]
                new = draw(st.text(max_size=30)).encode("utf-8", "surrogatepass")
                doc = doc[: found.start(1)] + new + doc[found.end(1) :]
    return doc


# --- the gate ---------------------------------------------------------------------------------------
@BOUNDED
@given(st.binary(max_size=400) | st.lists(FRAGMENTS, max_size=8).map(b"".join))
def test_the_xml_gate_answers_an_element_or_a_typed_refusal(content: bytes) -> None:
    with contextlib.suppress(XmlRefused, XmlMalformed):
        parse_untrusted(content, max_bytes=10_000)


def test_the_gate_refuses_a_dtd_before_any_entity_is_declared() -> None:
    with pytest.raises(XmlRefused, match="declares a DTD"):
        parse_untrusted(
            b'<?x?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>', max_bytes=1000
        )
    with pytest.raises(XmlRefused, match="larger than 10 bytes"):
        parse_untrusted(b"<a>0123456789</a>", max_bytes=10)
    assert parse_untrusted(b"<?x?>" * 1000 + b"<a>ok</a>", max_bytes=100_000).text == "ok"


# --- SOAP answers over real HTTP ------------------------------------------------------------------------
class _Answers(http.server.ThreadingHTTPServer):
    """Answers every POST with ``body`` (and ``fixed[soap action]`` where given)."""

    body = b""
    fixed: dict[str, bytes] = {}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Answers

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        action = (self.headers.get("soapaction") or "").strip('"').rsplit("/", 1)[-1]
        body = self.server.fixed.get(action, self.server.body)
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def answers() -> Iterator[_Answers]:
    server = _Answers(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


def _bodies(recorded: list[Exchange]) -> list[bytes]:
    return [(e.response_body or "").encode() for e in recorded if e.response_body]


@pytest.fixture(scope="module")
def sep_answers(sandbox: Sandbox) -> list[bytes]:
    """Real answers of the emulator: a ticket, TooEarly, Done with an application, a fault."""
    recorded: list[Any] = []
    client = SepClient(SepClientConfig(url=sandbox.url + "/sep"), recorder=recorded.append)
    add_vehicle(sandbox)
    number = start_ownership_change(sandbox)["application_number"]
    request = RequestApplicationData(organization_inn=ORG, application_number=number)
    ticket = client.submit(request, str(uuid.uuid4()))
    assert isinstance(ticket, QueueNumberReceived)
    client.get_queue_result(ticket.ticket.queue_number)
    sandbox.clock.advance(3600)
    client.get_queue_result(ticket.ticket.queue_number)
    client.get_queue_result("Q-unknown")
    client.close()
    return _bodies(recorded)


@pytest.fixture(scope="module")
def synerdocs_answers(sandbox: Sandbox) -> dict[str, Any]:
    settings_ = sandbox.client_settings()
    recorded: list[Exchange] = []
    config = SynerdocsConfig(
        url=settings_["OBMEN_SYNERDOCS_URL"], application_id=settings_["OBMEN_SYNERDOCS_APPLICATION_ID"]
    )
    client = SynerdocsClient(
        config, Credentials(COMPANY["login"], COMPANY["password"]), recorder=recorded.append
    )
    client.find_organizations(CUSTOMER["inn"])
    client.messages(to_box=COMPANY["box"])
    client.close()
    return {"answers": _bodies(recorded[1:]), "settings": settings_}


@pytest.fixture(scope="module")
def sep_client(answers: _Answers) -> Iterator[SepClient]:
    config = SepClientConfig(url=f"http://127.0.0.1:{answers.server_address[1]}/sep", operation_timeout_s=5)
    client = SepClient(config)
    yield client
    client.close()


@OVER_HTTP
@given(data=st.data())
def test_a_spoilt_sep_answer_is_always_a_typed_outcome(
    answers: _Answers, sep_client: SepClient, sep_answers: list[bytes], data: st.DataObject
) -> None:
    answers.fixed = {}
    answers.body = data.draw(spoilt(sep_answers))
    outcome = sep_client.get_queue_result("Q-1")
    assert isinstance(outcome, ResponseReceived | XmlReadError | RequestError | QueueNumberReceived)


@pytest.fixture(scope="module")
def synerdocs_client(answers: _Answers, synerdocs_answers: dict[str, Any]) -> Iterator[SynerdocsClient]:
    config = SynerdocsConfig(
        url=f"http://127.0.0.1:{answers.server_address[1]}/synerdocs{ENDPOINT}",
        application_id=synerdocs_answers["settings"]["OBMEN_SYNERDOCS_APPLICATION_ID"],
        deadline_s=5,
    )
    client = SynerdocsClient(config, Credentials(COMPANY["login"], COMPANY["password"]))
    yield client
    client.close()


TOKEN = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    b'<AuthenticateResponse xmlns="http://synerdocs.ru"><AuthenticateResult>t</AuthenticateResult>'
    b"</AuthenticateResponse></s:Body></s:Envelope>"
)


@OVER_HTTP
@given(data=st.data())
def test_a_spoilt_synerdocs_answer_is_at_most_a_synerdocs_error(
    answers: _Answers,
    synerdocs_client: SynerdocsClient,
    synerdocs_answers: dict[str, Any],
    data: st.DataObject,
) -> None:
    answers.fixed = {"Authenticate": TOKEN}
    answers.body = data.draw(spoilt(synerdocs_answers["answers"]))
    with contextlib.suppress(SynerdocsError):
        synerdocs_client.find_organizations(CUSTOMER["inn"])
    with contextlib.suppress(SynerdocsError):
        synerdocs_client.messages(to_box=COMPANY["box"])


# --- letters ------------------------------------------------------------------------------------------
HEADER_PARTS = st.sampled_from(
    [
        b"From: =?utf-8?B?0KHQrdCf?= <notify@sep.elpts.ru>\r\n",
        b"From: \xd0\xa1\xd0\xad\xd0\x9f <a@b>\r\n",
        b"Subject: =?windows-1251?Q?=D1=DD=CF?= \r\n",
        b"Subject: =?bogus?X?zz?=\r\n",
        b"Subject: =?utf-8?B?not base64?=\r\n",
        b"Message-ID: <\x00@x>\r\n",
        b"Date: 00 Foo 0000 99:99:99 +9999\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: text/plain; charset=x-unknown\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"\r\n",
        b"--b\r\n",
        b"--b--\r\n",
        "Номер заявления: 2026-000123\r\nКод подтверждения: 482913\r\nVIN: XTA********765432\r\n".encode(),
        b"=D0=\r\n",
        b"////\r\n",
        b"<html><body><p>\xd0\xa1\xd0\xad\xd0\x9f</body>",
    ]
) | st.binary(max_size=40)


@BOUNDED
@given(st.binary(max_size=600) | st.lists(HEADER_PARTS, max_size=14).map(b"".join))
def test_any_bytes_are_a_letter_and_its_recognition_never_raises(raw: bytes) -> None:
    letter = parse_letter(raw)
    read_headers(raw)
    content_hash(raw)
    recognise(letter, ["@elpts.ru"])
    letter.summary()

"""Hostile and broken answers: each ends in a typed error within the deadline, with the exchange
recorded, and nothing is read from a file, fetched, or inflated into memory."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from integrations.exchange import Exchange
from integrations.synerdocs.errors import (
    ContractViolation,
    DeadlinePassed,
    MalformedAnswer,
    SynerdocsError,
    TransientHttpError,
    UnsafeAnswer,
)
from integrations.synerdocs.model import OutgoingDocument
from sandbox.server import Sandbox
from sandbox.synerdocs.emulator import COMPANY, CUSTOMER, ENDPOINT
from tests.edo import pki
from tests.edo.conftest import emulator, make_client

DEADLINE = 1.5


def _ask_with_fault(
    box: Sandbox, recorded: list[Exchange], fault: str, **extra: object
) -> tuple[SynerdocsError, float]:
    client = make_client(box, recorded, deadline_s=DEADLINE, max_answer_bytes=1_000_000)
    client.authenticate()
    emulator(box).knobs.update({"fault": fault, "fault_next": 1, "extra": extra})
    started = time.monotonic()
    try:
        with pytest.raises(SynerdocsError) as caught:
            client.messages(to_box=COMPANY["box"])
    finally:
        client.close()
    return caught.value, time.monotonic() - started


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ("dtd", UnsafeAnswer, "declares a DTD"),
        ("huge", UnsafeAnswer, "larger than 1000000 bytes"),
        ("gzip_bomb", UnsafeAnswer, "larger than 1000000 bytes (as decoded)"),
        ("drip_body", DeadlinePassed, f"within {DEADLINE} s"),
        ("slow_headers", DeadlinePassed, f"within {DEADLINE} s"),
        ("truncated", MalformedAnswer, "not well-formed"),
        ("empty_200", MalformedAnswer, "empty body"),
        ("html_500", TransientHttpError, "HTTP 500"),
    ],
)
def test_a_hostile_answer_is_a_typed_error_within_the_deadline(
    box: Sandbox, recorded: list[Exchange], fault: str, error: type[SynerdocsError], words: str
) -> None:
    caught, took = _ask_with_fault(
        box, recorded, fault, huge_bytes=5_000_000, bomb_bytes=100 << 20, drip_interval_s=0.2, slow_s=10
    )
    assert type(caught) is error and words in str(caught)
    assert caught.delivery == "maybe"
    assert took < DEADLINE + 1.0
    last = recorded[-1]
    assert (last.operation, last.error) == ("GetMessages", f"{type(caught).__name__}: {caught}")
    assert last.duration_ms is not None and last.request_body


def test_an_external_entity_is_refused_without_reading_the_file(
    box: Sandbox, recorded: list[Exchange], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    caught, _ = _ask_with_fault(box, recorded, "entity", entity_target=secret.as_uri())
    assert isinstance(caught, UnsafeAnswer) and "DTD" in str(caught)
    assert "TOP-SECRET-CONTENT" not in repr(caught) + repr(recorded[-1])
    assert secret.as_uri() in (recorded[-1].response_body or "")  # the hostile answer is kept as it came


def test_headers_that_trickle_byte_by_byte_are_cut_at_the_deadline(
    box: Sandbox, recorded: list[Exchange]
) -> None:
    drip_url = httpx.get(box.url + "/_sandbox/synerdocs/drip").json()["url"] + ENDPOINT
    emulator(box).knobs.update({"extra": {"drip_interval_s": 0.1}})
    client = make_client(box, recorded, url=drip_url, deadline_s=DEADLINE)
    started = time.monotonic()
    with pytest.raises(DeadlinePassed, match=f"no complete answer within {DEADLINE} s") as caught:
        client.authenticate()
    assert time.monotonic() - started < DEADLINE + 1.0
    assert caught.value.delivery == "maybe" and recorded[-1].operation == "Authenticate"
    assert recorded[-1].response_status is None and recorded[-1].error


def test_an_unknown_enum_name_is_a_contract_violation(box: Sandbox, recorded: list[Exchange]) -> None:
    client = make_client(box, recorded)
    signer = pki.signer("Сидоров С. С.", "352500000193", organization_inn=COMPANY["inn"])
    content = b"answer"
    document = OutgoingDocument("d", "a.txt", content, signer.sign(content), custom_field="k")
    sent = client.send_message(COMPANY["box"], CUSTOMER["box"], [document])
    emulator(box).knobs.update({"fault": "unknown_enum", "fault_next": 1})
    with pytest.raises(ContractViolation, match="unknown DeliveryStatus 'Teleported'"):
        client.document_status(COMPANY["box"], sent.document_ids["d"])

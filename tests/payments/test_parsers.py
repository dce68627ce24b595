"""The parsers that read the bank's untrusted bytes raise nothing but their typed errors (property tests).

``osmp.parse_request`` reads a raw query string and raises only ``OsmpError``; ``read_payment``
reads a raw body and returns the payment or the errors naming its fields. Whatever they accept, the
register store can hold and the content hash can be computed. Bounded, with a fixed seed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from hypothesis import example, given, settings
from hypothesis import strategies as st

from integrations.bank import osmp
from integrations.bank.schema import PaymentIn, read_payment
from integrations.storable import refuse_unstorable
from tests.harness.bank import inn12

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MAX_SUM = Decimal("10000000.00")
TOLERANCE_S = 300
INN = inn12(1)
BOUNDED = settings(max_examples=200, derandomize=True, deadline=None, database=None)

osmp_keys = st.sampled_from(["command", "txn_id", "account", "sum", "txn_date", "prv_id"]) | st.text(
    max_size=8
)
osmp_values = (
    st.sampled_from(
        ["check", "pay", INN, "1500.00", "١.00", "-1", "0", "1e3", "20261120101500", "19991231235959"]
        + ["00010101000000", "99991231235959", "20261320101500", "١٢", "１２", "12\x00", "\ud800"]
    )
    | st.from_regex(r"[0-9]{1,25}(\.[0-9]{1,3})?", fullmatch=True)
    | st.text(max_size=30)
)
osmp_queries = (
    st.lists(st.tuples(osmp_keys, osmp_values), max_size=12).map(
        lambda pairs: urlencode(pairs, errors="surrogatepass")
    )
    | st.text(max_size=200)
    | st.binary(max_size=200).map(lambda raw: raw.decode("latin-1"))
)


@BOUNDED
@given(osmp_queries)
@example("command=pay&txn_id=1&txn_date=00010101000000&account=" + INN + "&sum=1.00")
@example("command=pay&txn_id=1&txn_date=99991231235959&account=" + INN + "&sum=1.00")
@example("command=pay&txn_id=%D9%A1%D9%A2&txn_date=20261120101500&account=" + INN + "&sum=1.00")
@example("command=check&txn_id=1&txn_id=2&account=" + INN + "&sum=1.00")
@example("&" * 5000)
def test_the_osmp_parser_raises_only_osmp_errors(query: str) -> None:
    try:
        request = osmp.parse_request(query, MAX_SUM, NOW, TOLERANCE_S)
    except osmp.OsmpError as exc:
        osmp.render(exc.result, exc.comment, txn_id=osmp.echo_txn_id(query)).encode("utf-8")
        return
    assert request.txn_id.isascii() and request.txn_id.isdigit()
    assert Decimal(0) < request.sum <= MAX_SUM
    refuse_unstorable([request.transaction_id, request.account, request.command])
    if request.command == "pay":
        assert request.txn_date is not None and request.txn_date.year >= 2000
        request.txn_date.astimezone(UTC).isoformat()
    osmp.render(osmp.OK, "OK", txn_id=request.txn_id, prv_txn=1, amount=request.sum).encode("utf-8")


def _body(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


GOOD: dict[str, Any] = {
    "transaction_id": "T-1",
    "inn": INN,
    "amount": "1500.00",
    "paid_at": "2026-11-20T10:15:00+03:00",
    "purpose": "Оплата услуг связи",
}
json_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(
        ["٣.00", "1500", "1e3", "0001-01-01T00:00:00+03:00", "9999-12-31T23:59:59-05:00", "\ud800"]
    )
)
payments = st.dictionaries(
    st.sampled_from([*GOOD, "payer_name", "currency", "extra"]), json_values, max_size=8
).map(lambda changes: _body({**GOOD, **changes}))
bodies = payments | st.binary(max_size=300) | st.recursive(json_values, st.lists, max_leaves=10).map(_body)


@BOUNDED
@given(bodies)
@example(_body({**GOOD, "payer_name": "\ud800"}))
@example(_body({**GOOD, "paid_at": "0001-01-01T00:00:00+03:00"}))
@example(_body({**GOOD, "paid_at": "9999-12-31T23:59:59-05:00"}))
@example(_body({**GOOD, "amount": "٣.00"}))
@example(_body(GOOD)[:-1] + b', "amount": "20.00"}')
@example(b'{"amount": NaN}')
@example(b"[" * 100_000)
@example("{}".encode("utf-16"))
def test_the_payment_parser_returns_a_payment_or_field_errors(raw: bytes) -> None:
    parsed = read_payment(raw, MAX_SUM, NOW, TOLERANCE_S)
    if isinstance(parsed, PaymentIn):
        refuse_unstorable(parsed.model_dump(mode="json"))
        assert len(parsed.content_hash()) == 64
        assert parsed.amount.is_finite() and Decimal(0) < parsed.amount <= MAX_SUM
    else:
        assert parsed and all(set(error) == {"field", "message"} for error in parsed)
        refuse_unstorable(parsed)

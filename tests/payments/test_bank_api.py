"""The bank API and the OSMP protocol over real HTTP: signatures, validation, idempotency, storms."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from models.db import session_scope
from models.outbox import Outbox
from models.payments import Payment
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import STEPS, run_step
from tests.harness.bank import OLD_SECRET, Bank, bank_settings, inn12, payment, seed_subscribers, signed
from tests.harness.gateway import GatewayThread

WRITE = {"Authorization": "Bearer test-write-token"}
UNKNOWN_INN = "7707083893"  # valid, but nobody's


@pytest.fixture
def bank(obmen_app, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bank]:
    with bank_settings(monkeypatch), GatewayThread() as gateway:
        # Publishing is not what these tests are about: the rows stay for the assertions.
        set_dispatch_mode("off")
        yield Bank(gateway.url)
    set_dispatch_mode("inline")


def count(model: type, *where: object) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


def test_debt_by_inn(bank: Bank) -> None:
    inn = seed_subscribers(1)[0]
    answer = bank.debt(inn)
    assert answer.status_code == 200
    assert answer.json() == {"inn": inn, "name": "Абонент 0", "debt": "1500.00", "currency": "RUB"}
    assert bank.debt(UNKNOWN_INN).status_code == 404


@pytest.mark.parametrize(
    ("inn", "why"),
    [
        ("500100732250", "checksum"),
        ("77012345678", "11 digits"),
        ("5001 00732259", "spaces"),
        ("５００１００７３２２５９", "full-width"),
        ("5ОО1ОО732259", "Cyrillic О"),
    ],
)
def test_malformed_inn_is_422_naming_the_field(bank: Bank, inn: str, why: str) -> None:
    path = "/bank/v1/customers/" + httpx.URL("/" + inn).raw_path.decode()[1:]
    debt = bank.http.get(path, headers=signed("GET", path))
    assert debt.status_code == 422, why
    assert debt.json()["errors"][0]["field"] == "inn"
    paid = bank.pay(payment(inn))
    assert paid.status_code == 422, why
    assert [e["field"] for e in paid.json()["errors"]] == ["inn"]
    assert count(Payment) == 0


@pytest.mark.parametrize(
    "amount",
    ["0", "-1", "1.005", "1e3", "1,50", " 15", "1000000000000.00", "10000000.01", "", 1.5, 100, None],
)
def test_bad_amounts_are_422_naming_the_field(bank: Bank, amount: object) -> None:
    answer = bank.pay(payment(inn12(1), amount=amount))  # type: ignore[arg-type]
    assert answer.status_code == 422, amount
    assert [e["field"] for e in answer.json()["errors"]] == ["amount"]
    assert count(Payment) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"paid_at": "2099-01-01T00:00:00+03:00"}, "paid_at"),
        ({"paid_at": "2026-11-20T10:15:00"}, "paid_at"),
        ({"currency": "USD"}, "currency"),
        ({"transaction_id": ""}, "transaction_id"),
        ({"transaction_id": "x" * 65}, "transaction_id"),
        ({"transaction_id": 12345}, "transaction_id"),
        ({"purpose": "a\x00b"}, "purpose"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_other_bad_fields_are_named(bank: Bank, change: dict[str, Any], field: str) -> None:
    answer = bank.pay(payment(inn12(1), **change))
    assert answer.status_code == 422
    assert field in [e["field"] for e in answer.json()["errors"]]


def test_body_rules(bank: Bank) -> None:
    assert bank.pay(b"{not json").status_code == 422
    assert bank.pay(b"[1, 2]").json()["errors"] == [{"field": "body", "message": "must be a JSON object"}]
    body = json.dumps(payment(inn12(1))).encode()
    headers = signed("POST", "/bank/v1/payments", body)
    assert bank.http.post("/bank/v1/payments", content=body, headers=headers).status_code == 415
    huge = json.dumps(payment(inn12(1), purpose="я" * 20_000)).encode()
    too_big = bank.http.post(
        "/bank/v1/payments",
        content=huge,
        headers={"Content-Type": "application/json", **signed("POST", "/bank/v1/payments", huge)},
    )
    assert too_big.status_code == 413
    assert count(Payment) == 0


def test_strict_where_lenient_booked_money(bank: Bank) -> None:
    """Issue 16 finding 7: each of these was booked (or accepted) on main."""
    inn = seed_subscribers(1)[0]
    bad_digits = bank.pay(payment(inn, "T-AR", amount="٣.00"))
    assert [e["field"] for e in bad_digits.json()["errors"]] == ["amount"]
    twice = json.dumps(payment(inn, "T-DUP", amount="10.00"))[:-1] + ', "amount": "20.00"}'
    assert bank.pay(twice.encode()).json()["errors"][0]["field"] == "body"
    surrogate = json.dumps(payment(inn, "T-SUR"), ensure_ascii=False).replace(
        "Иванов Иван Иванович", "\\ud800"
    )
    assert [e["field"] for e in bank.pay(surrogate.encode()).json()["errors"]] == ["payer_name"]
    for paid_at in ("1999-12-31T23:00:00+03:00", "0001-01-01T00:00:00+03:00", "9999-12-31T23:59:59-05:00"):
        answer = bank.pay(payment(inn, "T-DATE", paid_at=paid_at))
        assert [e["field"] for e in answer.json()["errors"]] == ["paid_at"], paid_at
    body = json.dumps(payment(inn, "T-CT")).encode()
    for content_type, status in [
        ("text/x-application/json-nope", 415),
        ("application/json-patch", 415),
        ("application/jsonx", 415),
        ("Application/JSON; charset=utf-8", 201),
    ]:
        headers = {"Content-Type": content_type, **signed("POST", "/bank/v1/payments", body)}
        answer = bank.http.post("/bank/v1/payments", content=body, headers=headers)
        assert answer.status_code == status, content_type
    pay = {"command": "pay", "account": inn, "sum": "1.00", "txn_date": "20261120101500"}
    for query, result in [
        ({**pay, "txn_id": "١٢"}, 300),
        ({**pay, "txn_id": "13", "sum": "١.00"}, 300),
        ({**pay, "txn_id": "14", "txn_date": "19990101101500"}, 7),
        ({**pay, "txn_id": "15", "txn_date": "00010101000000"}, 7),
    ]:
        assert f"<result>{result}</result>" in bank.osmp(**query).text, query
    repeated = "command=pay&txn_id=16&txn_id=17&account=" + inn + "&sum=1.00&txn_date=20261120101500"
    answer = bank.http.get(f"/bank/osmp?{repeated}", headers=signed("GET", f"/bank/osmp?{repeated}"))
    assert "<result>300</result>" in answer.text
    with session_scope() as s:
        assert s.scalars(select(Payment.transaction_id)).all() == ["T-CT"]


def test_signatures(bank: Bank) -> None:
    body = json.dumps(payment(inn12(1))).encode()
    url = "/bank/v1/payments"
    good = signed("POST", url, body)
    cases = {
        "missing": {},
        "no timestamp": {"X-Obmen-Signature": good["X-Obmen-Signature"]},
        "bad signature": {**good, "X-Obmen-Signature": "sha256=" + "0" * 64},
        "not hex prefix": {**good, "X-Obmen-Signature": good["X-Obmen-Signature"].removeprefix("sha256=")},
        "wrong secret": signed("POST", url, body, secret="guess"),
        "expired": signed("POST", url, body, at=time.time() - 301),
        # Whole seconds and a slow machine eat into the margin: well past the 300 s window.
        "from the future": signed("POST", url, body, at=time.time() + 330),
        "other path": signed("POST", "/bank/v1/payments?x=1", body),
        "other method": signed("PUT", url, body),
        "other body": signed("POST", url, body + b" "),
        "garbage timestamp": {**good, "X-Obmen-Timestamp": "tomorrow"},
    }
    for name, headers in cases.items():
        answer = bank.http.post(url, content=body, headers={"Content-Type": "application/json", **headers})
        assert answer.status_code == 401, name
    # Unauthenticated garbage is refused before it is parsed: 401, not 422.
    assert bank.http.post(url, content=b"{", headers={"Content-Type": "application/json"}).status_code == 401
    assert bank.http.get("/bank/v1/customers/7707083893").status_code == 401
    assert count(Payment) == 0
    # The previous secret still works during a rotation.
    assert bank.pay(payment(inn12(1)), secret=OLD_SECRET).status_code == 201


def test_a_replayed_request_is_a_harmless_duplicate_then_expires(bank: Bank) -> None:
    body = json.dumps(payment(inn12(1))).encode()
    headers = {
        "Content-Type": "application/json",
        **signed("POST", "/bank/v1/payments", body, at=time.time() - 250),
    }
    first = bank.http.post("/bank/v1/payments", content=body, headers=headers)
    replay = bank.http.post("/bank/v1/payments", content=body, headers=headers)
    assert (first.status_code, replay.status_code) == (201, 200) and first.json() == replay.json()
    stale = {
        "Content-Type": "application/json",
        **signed("POST", "/bank/v1/payments", body, at=time.time() - 400),
    }
    assert bank.http.post("/bank/v1/payments", content=body, headers=stale).status_code == 401
    assert count(Payment) == 1


def test_idempotency_201_200_409(bank: Bank) -> None:
    inn = seed_subscribers(1)[0]
    first = bank.pay(payment(inn))
    assert first.status_code == 201
    assert first.json() == {"payment_id": first.json()["payment_id"], "status": "accepted"}
    again = bank.pay(payment(inn, amount="1500"))  # the same money, written differently
    assert (again.status_code, again.json()) == (200, first.json())
    other = bank.pay(payment(inn, amount="1499.99"))
    assert other.status_code == 409 and other.json()["payment_id"] == first.json()["payment_id"]
    # Committed before the answer: the payment event and the outbox row of its posting step.
    assert count(Payment) == 1
    assert count(Outbox, Outbox.task_name == "payments.post") == 1


def test_duplicate_storm_gives_one_payment_and_identical_answers(bank: Bank) -> None:
    inn = seed_subscribers(1)[0]
    body = json.dumps(payment(inn, transaction_id="STORM-1")).encode()
    barrier = threading.Barrier(50)

    def deliver(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=str(bank.http.base_url), timeout=60) as http:
            headers = {"Content-Type": "application/json", **signed("POST", "/bank/v1/payments", body)}
            barrier.wait()
            answer = http.post("/bank/v1/payments", content=body, headers=headers)
            return answer.status_code, answer.text

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(deliver, range(50)))
    assert sorted(status for status, _ in answers) == [200] * 49 + [201]
    assert len({text for _, text in answers}) == 1
    assert count(Payment) == 1
    assert count(Outbox) == 1


def test_an_unknown_inn_is_accepted_kept_unallocated_and_assignable(bank: Bank, obmen_app) -> None:
    inn = seed_subscribers(1)[0]
    answer = bank.pay(payment(UNKNOWN_INN, transaction_id="LOST-1"))
    assert answer.status_code == 201
    payment_id = answer.json()["payment_id"]
    run_step(STEPS["payments.post"], payment_id)
    listed = bank.http.get("/ops/payments", params={"status": "unallocated"}, headers=WRITE).json()
    assert [(p["id"], p["inn"], p["amount"]) for p in listed] == [(payment_id, UNKNOWN_INN, "1500.00")]
    assert bank.http.get("/ops/payments").status_code == 401
    assign = bank.http.post(f"/ops/payments/{payment_id}/assign", json={"inn": inn}, headers=WRITE)
    assert assign.status_code == 200, assign.text
    run_step(STEPS["payments.post"], payment_id)
    with session_scope() as s:
        row = s.get(Payment, payment_id)
        assert row is not None and (row.status, row.subscriber_inn, row.remainder) == ("posted", inn, 0)
    assert bank.debt(inn).json()["debt"] == "0.00"
    again = bank.http.post(f"/ops/payments/{payment_id}/assign", json={"inn": inn}, headers=WRITE)
    assert again.status_code == 404


def test_osmp_check_and_pay(bank: Bank) -> None:
    inn = seed_subscribers(1)[0]
    check = bank.osmp(command="check", txn_id="1001", account=inn, sum="1500.00")
    assert check.status_code == 200 and check.headers["content-type"].startswith("text/xml")
    assert "<result>0</result>" in check.text and "Задолженность 1500.00 руб." in check.text
    for params, result in [
        ({"account": UNKNOWN_INN}, 5),
        ({"account": "12345"}, 4),
        ({"sum": "0.00"}, 241),
        ({"sum": "99999999999.00"}, 242),
        ({"sum": "1,50"}, 300),
        ({"txn_id": "abc"}, 300),
        ({"command": "refund"}, 300),
    ]:
        query = {"command": "check", "txn_id": "1001", "account": inn, "sum": "10.00", **params}
        assert f"<result>{result}</result>" in bank.osmp(**query).text, params

    pay = {"command": "pay", "txn_id": "1002", "txn_date": "20261120101500", "account": inn, "sum": "1500.00"}
    first = bank.osmp(**pay)
    assert "<result>0</result>" in first.text and "<prv_txn>" in first.text
    assert bank.osmp(**pay).text == first.text  # txn_id is the idempotency key
    assert "<result>300</result>" in bank.osmp(**{**pay, "sum": "10.00"}).text
    assert "<result>7</result>" in bank.osmp(**{**pay, "txn_id": "1003", "txn_date": "20990101000000"}).text
    assert "<result>300</result>" in bank.osmp(**{**pay, "txn_id": "1004", "txn_date": "yesterday"}).text
    assert "<result>0</result>" in bank.osmp(**{**pay, "txn_id": "1005", "account": UNKNOWN_INN}).text
    assert bank.http.get("/bank/osmp?command=check&txn_id=1&account=" + inn + "&sum=1").status_code == 401
    with session_scope() as s:
        rows = s.execute(select(Payment.transaction_id, Payment.source, Payment.amount)).all()
    assert sorted(rows) == [("osmp-1002", "osmp", 1500), ("osmp-1005", "osmp", 1500)]


def test_openapi_documents_the_bank_api(bank: Bank) -> None:
    schema = bank.http.get("/openapi.json").json()
    post = schema["paths"]["/bank/v1/payments"]["post"]
    assert set(post["responses"]) >= {"200", "201", "401", "409", "422", "503"}
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) >= {"transaction_id", "inn", "amount", "paid_at", "purpose"}
    assert post["security"] == [{"bank_signature": []}]
    assert schema["components"]["securitySchemes"]["bank_signature"]["name"] == "X-Obmen-Signature"
    assert "X-Obmen-Timestamp" in {p["name"] for p in post["parameters"]}

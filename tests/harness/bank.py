"""The bank's side in tests: its own signing code (not obmen's), subscribers seeded in bulk."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

SECRET = "bank-secret-2026"
OLD_SECRET = "bank-secret-2025"
SECRETS_ENV = f"{SECRET},{OLD_SECRET}"
FEE = Decimal("1500.00")
PERIOD = date(2026, 11, 1)


def signature(secret: str, timestamp: str, method: str, path_with_query: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + method.encode() + b"\n" + path_with_query.encode() + b"\n" + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed(
    method: str, path_with_query: str, body: bytes = b"", secret: str = SECRET, at: float | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "X-Obmen-Timestamp": timestamp,
        "X-Obmen-Signature": signature(secret, timestamp, method, path_with_query, body),
    }


class Bank:
    """What the bank's application does: ask a debt, report a payment, speak OSMP."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def debt(self, inn: str, **kw: Any) -> httpx.Response:
        path = f"/bank/v1/customers/{inn}"
        return self.http.get(path, headers=signed("GET", path, **kw))

    def pay(self, payment: dict[str, Any] | bytes, **kw: Any) -> httpx.Response:
        body = payment if isinstance(payment, bytes) else json.dumps(payment).encode()
        headers = {"Content-Type": "application/json", **signed("POST", "/bank/v1/payments", body, **kw)}
        return self.http.post("/bank/v1/payments", content=body, headers=headers)

    def osmp(self, **params: str) -> httpx.Response:
        query = str(httpx.QueryParams(params))
        return self.http.get(f"/bank/osmp?{query}", headers=signed("GET", f"/bank/osmp?{query}"))


def payment(inn: str, transaction_id: str = "T-1", amount: str = "1500.00", **extra: Any) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "inn": inn,
        "amount": amount,
        "paid_at": "2026-11-20T10:15:00+03:00",
        "purpose": "Оплата услуг связи за ноябрь 2026",
        "payer_name": "Иванов Иван Иванович",
        **extra,
    }


def inn12(n: int) -> str:
    """A valid 12-digit ИНН of a person, numbered."""
    digits = f"77{n:08d}"
    for weights in ((7, 2, 4, 10, 3, 5, 9, 4, 6, 8), (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)):
        digits += str(sum(int(c) * w for c, w in zip(digits, weights, strict=True)) % 11 % 10)
    return digits


def seed_subscribers(
    count: int, *, first_deal: int | None = 1000, accrued: bool = True, responsible_user: int | None = 11
) -> list[str]:
    """``count`` subscribers on a 1500 ₽ tariff, each owing one unpaid accrual (in bulk, not via import)."""
    from models.db import session_scope
    from models.master import Employee, Subscriber, Tariff
    from models.payments import Accrual, SubscriberBalance

    inns = [inn12(i) for i in range(1, count + 1)]
    with session_scope() as s:
        s.execute(insert(Tariff), [{"code": "BASE", "name": "Базовый", "monthly_fee": FEE}])
        s.execute(
            insert(Employee), [{"id": "E1", "name": "Иванова Анна", "bitrix24_user_id": responsible_user}]
        )
        s.execute(
            insert(Subscriber),
            [
                {
                    "inn": inn,
                    "name": f"Абонент {i}",
                    "tariff": "BASE",
                    "contract": f"Д-{i}",
                    "bitrix24_deal_id": None if first_deal is None else first_deal + i,
                    "responsible_id": "E1",
                }
                for i, inn in enumerate(inns)
            ],
        )
        if accrued:
            s.execute(insert(SubscriberBalance), [{"inn": inn, "debt": FEE, "advance": 0} for inn in inns])
            s.execute(
                insert(Accrual),
                [
                    {
                        "subscriber_inn": inn,
                        "period": PERIOD,
                        "tariff": "BASE",
                        "amount": FEE,
                        "paid_amount": 0,
                        "status": "unpaid",
                    }
                    for inn in inns
                ],
            )
    return inns


def pay_and_post(inn: str, amount: str, transaction_id: str) -> int:
    """A payment accepted as the gateway accepts it, then posted by its step in this process."""
    from models.db import session_scope
    from tasks.machinery.steps import STEPS, Outcome, run_step
    from tasks.payments.register import Incoming, accept_payment

    with session_scope() as s:
        accepted = accept_payment(
            s,
            Incoming(
                transaction_id=transaction_id,
                source="bank",
                inn=inn,
                amount=Decimal(amount),
                paid_at=datetime(2026, 11, 20, 7, 15, tzinfo=UTC),
                purpose="test",
                payer_name=None,
                content_hash=transaction_id,
            ),
        )
    assert run_step(STEPS["payments.post"], accepted.payment_id) is Outcome.DONE
    return accepted.payment_id


@contextmanager
def bank_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[None]:
    """Point this process's settings at the test's secrets and sandboxes, and back afterwards."""
    from config.settings import get_settings
    from tasks.machinery.bitrix24 import forget_clients

    monkeypatch.setenv("OBMEN_BANK_HMAC_SECRETS", SECRETS_ENV)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    forget_clients()
    try:
        yield
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        forget_clients()
